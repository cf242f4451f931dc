"""Results as tidy rows: every tvlens result object exports ``to_records()`` and ``to_pandas()``.

A result holds tensors shaped for the analysis (``[n_layers, n_heads]``, per prompt, per epoch …);
:meth:`Records.to_records` flattens it into a list of flat dicts — one row per layer, head, prompt or
epoch, whichever the result is indexed by, each naming its index — so results of different methods,
models and seeds concatenate into one table. :meth:`Records.to_pandas` is that table as a
``pandas.DataFrame`` (pandas is optional).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor


class Records(ABC):
    """A result that exports as rows."""

    @abstractmethod
    def to_records(self) -> list[dict[str, Any]]:
        """The result as a list of flat dicts (one per layer, head, prompt or epoch)."""

    def to_pandas(self) -> Any:
        """:meth:`to_records` as a ``pandas.DataFrame``.

        Raises:
            ImportError: pandas is not installed (the message says how to install it).
        """
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(f"{type(self).__name__}.to_pandas() needs pandas: pip install pandas") from error
        return pd.DataFrame(self.to_records())


def head_records(tables: dict[str, Tensor], **fixed: Any) -> list[dict[str, Any]]:
    """One row per ``(layer, head)`` of ``[n_layers, n_heads]`` tensors, with ``fixed`` columns first."""
    first = next(iter(tables.values()))
    return [{**fixed, "layer": layer, "head": head,
             **{name: float(table[layer, head]) for name, table in tables.items()}}
            for layer in range(first.shape[0]) for head in range(first.shape[1])]


__all__ = ["Records", "head_records"]
