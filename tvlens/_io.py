"""Atomic file writes: a file is either the old one or the complete new one, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through a temporary sibling file and rename it into place.

    Args:
        path: destination file.
        write: called with the temporary path; it must write the whole file there.

    Returns:
        The destination path. On any exception the temporary file is removed and the
        destination is left as it was.
    """
    dest = Path(path)
    check_output_file(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as error:  # name the file the caller asked for, not a temporary one
        raise OSError(f"path={str(dest)!r}: cannot write there ({error.strerror or error})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)  # atomic on POSIX when both live on one file system
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def first_line(error: BaseException, limit: int | None = None) -> str:
    """A one-line summary of ``error`` for a message that names a file: its first line (at most ``limit``
    characters), or its type when it has no text."""
    text = str(error)
    return text.splitlines()[0][:limit] if text.strip() else type(error).__name__


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_output_file(path: str | os.PathLike, argument: str = "path") -> Path:
    """Fail before any work if a file cannot be written at ``path``.

    Raises:
        ValueError: ``path`` is a directory, or one of its ancestors is a file.
        PermissionError: the nearest existing directory above it is not writable.
    """
    dest = Path(path).expanduser().absolute()
    if dest.is_dir():
        raise ValueError(f"{argument}={str(path)!r}: is a directory; expected a file path")
    return _check_parent(dest.parent, argument, path)


def check_output_dir(path: str | os.PathLike, argument: str = "path") -> Path:
    """Fail before any work if ``path`` cannot be (made and) written as a directory."""
    dest = Path(path).expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{argument}={str(path)!r}: is a file; expected a directory")
    return _check_parent(dest, argument, path)


def _check_parent(directory: Path, argument: str, shown: str | os.PathLike) -> Path:
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        raise ValueError(f"{argument}={str(shown)!r}: {str(existing)!r} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{argument}={str(shown)!r}: the directory {str(existing)!r} is not writable")
    return Path(shown)
