"""The report's stage cache: each stage's result on disk, keyed by content, never trusted blindly.

A stage's result is stored under ``<stage>-<hash>.pt`` with its full key (stage, parameters, the model's
fingerprint, the tvlens version) beside it. It is read back with ``weights_only=True`` and an allow-list of
tvlens' own plain-data classes: a file that would run code is refused, a damaged or foreign file is recomputed
with one warning naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tvlens._io import atomic_write, first_line, safe_torch_load
from tvlens._version import __version__
from tvlens.models.hooked import HookedModel


class CacheWarning(UserWarning):
    """A cached stage result could not be used (unreadable, damaged, or made for other inputs)."""


def cacheable_types() -> list[type]:
    """The allow-list of classes a cache entry may hold: tvlens' own plain-data result classes (the
    dataclasses of every loaded ``tvlens`` module). Nothing else in an entry is ever constructed or called
    (see :func:`tvlens._io.safe_torch_load`)."""
    import dataclasses
    import sys

    types = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "tvlens" or name.startswith("tvlens.")):
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == name and dataclasses.is_dataclass(obj):
                types.append(obj)
    return types


class StageCache:
    """Stage results on disk, keyed by content: (stage, parameters, model fingerprint, tvlens version).

    Each file stores its full key next to the value and is read with ``weights_only=True`` and the
    allow-list :func:`cacheable_types`: a planted file that would run code is refused, never executed. A
    file that cannot be read, holds another key (another model's result under the same name) or a value
    of the wrong type is not trusted: the stage is recomputed with a one-line :class:`CacheWarning` naming
    the file, and the file replaced. Something that is not a regular file under an entry's name (a
    directory) is moved aside with a warning; if it cannot be, the result is used without being cached.
    """

    def __init__(self, directory: str | None) -> None:
        self.directory = Path(directory) if directory else None
        if self.directory is not None and self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"cache_dir={directory!r}: is a file; expected a directory")
        self.hits = 0
        # A fingerprint hashes every weight: once per model, not once per stage. The model is kept with
        # its fingerprint so that its id cannot be reused by another model while the cache lives.
        self._fingerprints: dict[int, tuple[HookedModel, dict[str, Any]]] = {}

    def _fingerprint(self, model: HookedModel) -> dict[str, Any]:
        if id(model) not in self._fingerprints:
            self._fingerprints[id(model)] = (model, model.fingerprint())
        return self._fingerprints[id(model)][1]

    @staticmethod
    def _read(path: Path, key: str, expect: type) -> Any:
        """The cached value, or ``None`` (with a warning naming the file) when it cannot be trusted."""
        try:
            entry = safe_torch_load(path, cacheable_types())
        except Exception as error:  # truncated, empty, random bytes, a planted pickle: all recomputed
            reason = f"unreadable: {first_line(error, 120)}"
        else:
            if not isinstance(entry, dict) or set(entry) != {"key", "value"}:
                reason = "not a tvlens cache entry"
            elif entry["key"] != key:
                reason = "made for another model, setting or tvlens version"
            elif not isinstance(entry["value"], expect):
                reason = f"holds a {type(entry['value']).__name__}, expected a {expect.__name__}"
            else:
                return entry["value"]
        warnings.warn(f"ignoring the cache file {str(path)!r} ({reason}); recomputing it", CacheWarning, stacklevel=4)
        return None

    @staticmethod
    def _move_aside(path: Path) -> bool:
        """Rename a non-file under an entry's name out of the way; whether the name is free now."""
        aside = path.with_name(f"{path.name}.not-a-cache-entry-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            path.rename(aside)
        except OSError as error:
            warnings.warn(f"the cache entry {str(path)!r} is not a regular file and cannot be moved aside "
                          f"({error.strerror or error}); the stage is not cached", CacheWarning, stacklevel=4)
            return False
        warnings.warn(f"the cache entry {str(path)!r} is not a regular file; moved it to {str(aside)!r}",
                      CacheWarning, stacklevel=4)
        return True

    def get(self, stage: str, params: dict[str, Any], model: HookedModel | None, compute: Callable[[], Any],
            expect: type = object) -> Any:
        """``compute()``, or its cached value for the same key (checked to be a ``expect``)."""
        if self.directory is None:
            return compute()
        key = json.dumps({"stage": stage, "params": params, "version": __version__,
                          "model": None if model is None else self._fingerprint(model)}, sort_keys=True, default=str)
        path = self.directory / f"{stage}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
        writable = True
        if path.is_symlink() or (path.exists() and not path.is_file()):
            writable = self._move_aside(path)
        elif path.exists():
            value = self._read(path, key, expect)
            if value is not None:
                self.hits += 1
                return value
        value = compute()
        if writable:
            buffer = io.BytesIO()
            torch.save({"key": key, "value": value}, buffer)
            try:
                atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()), "cache entry")
            except (OSError, ValueError) as error:  # a full disk loses the cache entry, not the report
                warnings.warn(f"could not cache the stage {stage!r} ({first_line(error, 200)})", CacheWarning,
                              stacklevel=3)
        return value


__all__ = ["CacheWarning", "StageCache", "cacheable_types"]
