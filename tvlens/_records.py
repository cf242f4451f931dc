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

import torch
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


def scalar(value: Any) -> Any:
    """A plain Python number for a 0-d tensor (or a tensor entry), the value itself otherwise."""
    return value.item() if isinstance(value, Tensor) and value.numel() == 1 else value


def head_records(tables: dict[str, Tensor], **fixed: Any) -> list[dict[str, Any]]:
    """One row per ``(layer, head)`` of ``[n_layers, n_heads]`` tensors, with ``fixed`` columns first."""
    first = next(iter(tables.values()))
    return [{**fixed, "layer": layer, "head": head,
             **{name: float(table[layer, head]) for name, table in tables.items()}}
            for layer in range(first.shape[0]) for head in range(first.shape[1])]


def layer_records(tables: dict[str, Tensor | list[float]], **fixed: Any) -> list[dict[str, Any]]:
    """One row per layer of 1-D tensors or lists, with ``fixed`` columns first."""
    columns = {name: torch.as_tensor(values, dtype=torch.float64) for name, values in tables.items()}
    n = len(next(iter(columns.values())))
    return [{**fixed, "layer": layer, **{name: float(values[layer]) for name, values in columns.items()}}
            for layer in range(n)]


__all__ = ["Records", "head_records", "layer_records", "scalar"]
