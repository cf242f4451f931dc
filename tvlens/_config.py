"""One strict ``from_dict`` for every tvlens config: unknown keys are an error that names them.

A config read back from a file (a saved vector's hyper-parameters, a zoo card, a report's settings)
must not silently drop a misspelt or obsolete key, nor fail deep inside ``__init__`` with a bare
``TypeError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """``cls(**data)`` for a dataclass config, refusing keys that are not its fields.

    Raises:
        TypeError: ``data`` is not a mapping.
        ValueError: ``data`` has keys that are not fields of ``cls`` (the message names them and the fields).
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}.from_dict: expected a dict, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}.from_dict: unknown keys {unknown}; expected a subset of {sorted(known)}")
    return cls(**data)


__all__ = ["config_from_dict"]
