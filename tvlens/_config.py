"""The base of every tvlens config: ``to_dict`` and one strict ``from_dict`` (unknown keys are an error
that names them).

A config read back from a file (a saved vector's hyper-parameters, a zoo card, a report's settings)
must not silently drop a misspelt or obsolete key, nor fail deep inside ``__init__`` with a bare
``TypeError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound="Config")


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


class Config:
    """Mixin for a dataclass config: its plain-dict form and the strict inverse."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; unknown keys raise a ``ValueError`` naming them."""
        return config_from_dict(cls, data)


__all__ = ["Config", "config_from_dict"]
