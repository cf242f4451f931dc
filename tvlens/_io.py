"""File safety: what tvlens writes and what it reads back from its own caches.

* **Writes are atomic.** A file is either the old one or the complete new one, never half-written: the
  bytes go to a temporary sibling that is renamed over the destination.
* **Nothing a user owns is replaced by accident.** A symlink is followed (its target is replaced and the
  link kept); a directory, device, FIFO or socket at the destination is refused before any work; ``-``
  means standard output where a text file is written.
* **Nothing a run reads is its output.** :func:`check_output_file` takes the files and directories the run
  reads (``reads``: a model file or directory, a task CSV, a vector, the cache) and refuses an output that
  resolves to one of them, or into one of the directories, before any work.
* **A full disk or a vanished directory** is an :class:`OSError` naming the user's path, whatever library
  did the writing (safetensors raises its own error type).
* **Nothing is unpickled freely.** :func:`safe_torch_load` reads ``torch.save`` files with
  ``weights_only=True``: tensors and plain containers, plus the allow-listed classes the caller names;
  a pickle that would call any other function (``os.system``, ``eval``) is refused, not run.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: The command-line spelling of standard output for a text file.
STDOUT = "-"


def is_stdout(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is ``-`` (standard output)."""
    return path is not None and str(path) == STDOUT


def _resolved(path: Path) -> Path:
    """``path`` with its symlinks followed (a dangling link gives its target's path)."""
    return Path(os.path.realpath(path.expanduser()))


def _kind(mode: int) -> str | None:
    """The name of a non-regular file kind (``None`` for a regular file)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_destination(dest: Path, argument: str, shown: str | os.PathLike) -> None:
    try:
        mode = os.stat(dest).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet (the parent check names a file parent)
        return
    except OSError as error:
        raise OSError(f"{argument}={str(shown)!r}: cannot inspect it ({error.strerror or error})") from None
    kind = _kind(mode)
    if kind is not None:
        raise ValueError(f"{argument}={str(shown)!r}: is {kind}; expected a regular file path (it is never replaced)")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], argument: str = "path") -> Path:
    """Write ``path`` through a temporary sibling file and rename it into place.

    A symlink at ``path`` is followed: its target is written atomically and the link stays. A directory,
    device, FIFO or socket there is refused (``ValueError``) before ``write`` runs.

    Args:
        path: destination file.
        write: called with the temporary path; it must write the whole file there.
        argument: the name the caller knows ``path`` by (``--out``), for error messages.

    Returns:
        The destination path as given. On any exception the temporary file is removed and the destination
        is left as it was; a write error of any library (a full disk) is an ``OSError`` naming ``path``.
    """
    shown = Path(path)
    check_output_file(shown, argument)
    dest = _resolved(shown)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as error:  # name the file the caller asked for, not a temporary one
        raise OSError(f"{argument}={str(shown)!r}: cannot write there ({error.strerror or error})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            write(tmp)
        except OSError as error:
            raise OSError(f"{argument}={str(shown)!r}: cannot write it ({error.strerror or first_line(error)})") \
                from None
        except Exception as error:
            if type(error).__name__ != "SafetensorError":  # safetensors' I/O error is not an OSError
                raise
            raise OSError(f"{argument}={str(shown)!r}: cannot write it ({first_line(error, 200)})") from None
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        _check_destination(dest, argument, shown)  # nothing became a device or FIFO meanwhile
        os.replace(tmp, dest)  # atomic on POSIX when both live on one file system
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return shown


def atomic_write_text(path: str | os.PathLike, text: str, argument: str = "path") -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``; ``-`` writes it to standard output instead."""
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return Path(STDOUT)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), argument)


def first_line(error: BaseException, limit: int | None = None) -> str:
    """A one-line summary of ``error`` for a message that names a file: its first line (at most ``limit``
    characters, cut at a word and ended by ``…``), or its type when it has no text."""
    text = str(error)
    if not text.strip():
        return type(error).__name__
    line = text.strip().splitlines()[0]
    if limit is not None and len(line) > limit:  # cut at a word boundary, and say it was cut
        cut = line[: limit - 1]
        if line[limit - 1] != " " and " " in cut:  # the cut falls inside a word: drop that word
            cut = cut.rsplit(" ", 1)[0]
        line = cut.rstrip(" ,;:") + "…"
    return line


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


#: What a run reads, for :func:`check_output_file`: ``(the argument that names it, its path)`` pairs.
Reads = Iterable[tuple[str, "str | os.PathLike | None"]]


def check_output_file(path: str | os.PathLike, argument: str = "path", *, stdout: bool = False,
                      reads: Reads = ()) -> Path:
    """Fail before any work if a file cannot be written at ``path``, or if writing it would replace what the
    run reads.

    Args:
        path: the destination; a symlink is judged by its target.
        argument: the name the caller knows ``path`` by, for the message.
        stdout: accept ``-`` (standard output; for text files).
        reads: ``(argument, path)`` of every file or directory the run reads (``None`` paths and names that
            are not on disk, such as zoo names, are skipped). ``path`` may be none of these files, nor lie
            inside one of these directories (a model directory's ``config.json``, a cache's entries).

    Raises:
        ValueError: ``path`` is a directory, device, FIFO or socket (or a link to one), ``-`` where a
            file is needed, one of its ancestors is a file, or it is (or lies in) something the run reads.
        PermissionError: the nearest existing directory above it is not writable.
    """
    if is_stdout(path):
        if stdout:
            return Path(STDOUT)
        raise ValueError(f"{argument}='-': standard output cannot take this binary file; expected a file path")
    dest = _resolved(Path(path).absolute())
    _check_not_read(dest, reads, argument, path)
    _check_destination(dest, argument, path)
    return _check_parent(dest.parent, argument, path)


def _check_not_read(dest: Path, reads: Reads, argument: str, shown: str | os.PathLike) -> None:
    """Refuse ``dest`` when it is one of the files the run reads or lies in one of its directories."""
    for name, source in reads:
        if source is None or is_stdout(source):
            continue
        read = _resolved(Path(source).absolute())
        if not read.exists():  # a zoo name, a built-in task: nothing on disk to overwrite
            continue
        inside = read.is_dir() and (dest == read or read in dest.parents)
        if dest == read or inside:
            what = f"lies in {name}={str(source)!r}" if inside else f"is {name}={str(source)!r}"
            raise ValueError(f"{argument}={str(shown)!r}: {what}, which this run reads; expected another path "
                             "(it would be overwritten)")


def check_output_dir(path: str | os.PathLike, argument: str = "path", *, reads: Reads = ()) -> Path:
    """Fail before any work if ``path`` cannot be (made and) written as a directory, or is (or lies in) one
    of the directories the run reads (``reads``, as in :func:`check_output_file`)."""
    dest = _resolved(Path(path).absolute())
    _check_not_read(dest, reads, argument, path)
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


def safe_torch_load(path: str | os.PathLike, allowed: Iterable[Any] = ()) -> Any:
    """Read a ``torch.save`` file without running code from it.

    ``torch.load(weights_only=True)``: tensors, numbers, strings and the built-in containers, plus the
    classes and functions in ``allowed`` (plain-data classes: instances are made with ``__new__`` and their
    ``__dict__`` filled; no method of theirs runs). Any other global in the file — ``os.system``,
    ``builtins.eval``, a class of another package — raises ``pickle.UnpicklingError`` before it is called.
    """
    import torch

    with torch.serialization.safe_globals(list(allowed)):
        return torch.load(path, map_location="cpu", weights_only=True)
