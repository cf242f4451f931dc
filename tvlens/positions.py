"""Token positions of an intervention, resolved per example and aware of padding.

A *position spec* says where in each prompt a vector goes:

* an ``int`` — ``0`` is the first real token, negative counts from the end (``-1`` = last);
* a list/tuple of ints — several positions (each at most once);
* a ``slice`` — applied to each example's real tokens, e.g. ``slice(-5, None)``;
* ``"last"`` — each example's last real token; ``"all"`` — every real token;
* a LongTensor ``[batch]`` — one position per example, read like an int.

Positions count **real tokens only**. With an attention mask and left padding, position 0 is
the first real token of each example and ``"last"`` its last one, so a padded batch is treated
exactly like its unpadded examples. Padding may sit on the left or on the right, but the real
tokens of an example must be contiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from jaxtyping import Int
from torch import Tensor

PositionSpec = Union[int, Sequence[int], slice, str, Tensor]
_NAMED = ("last", "all")
_EXPECTED = "an int, a list of ints, a slice, 'last', 'all' or a LongTensor [batch]"


def check_position_spec(positions: PositionSpec, argument: str = "positions") -> PositionSpec:
    """Validate the *form* of a position spec (not its range) and return it normalised.

    Lists become tuples; a LongTensor must be 1-D.

    Raises:
        TypeError: the spec has the wrong type; the message names ``argument``, the value and what was expected.
        ValueError: the spec has the right type but a bad value (same message form).
    """
    if isinstance(positions, bool):
        raise TypeError(f"{argument}={positions!r}: expected {_EXPECTED}")
    if isinstance(positions, int):
        return positions
    if isinstance(positions, str):
        if positions not in _NAMED:
            raise ValueError(f"{argument}={positions!r}: expected 'last' or 'all' (or {_EXPECTED})")
        return positions
    if isinstance(positions, slice):
        for part in (positions.start, positions.stop, positions.step):
            if part is not None and (not isinstance(part, int) or isinstance(part, bool)):
                raise TypeError(f"{argument}={positions!r}: slice bounds must be ints or None")
        if positions.step is not None and positions.step <= 0:
            raise ValueError(f"{argument}={positions!r}: slice step must be positive")
        return positions
    if isinstance(positions, Tensor):
        if positions.dtype not in (torch.int64, torch.int32) or positions.ndim != 1:
            raise TypeError(
                f"{argument}: a tensor of positions must be a 1-D integer tensor [batch]; "
                f"got dtype {positions.dtype} and shape {tuple(positions.shape)}"
            )
        return positions.long()
    if isinstance(positions, Sequence):
        items = tuple(positions)
        if not items:
            raise ValueError(f"{argument}=[]: expected at least one position")
        for p in items:
            if not isinstance(p, int) or isinstance(p, bool):
                raise TypeError(f"{argument}={list(items)!r}: every position must be an int, got {p!r}")
        return items
    raise TypeError(f"{argument}={positions!r}: expected {_EXPECTED}")


def real_token_span(
    batch: int, seq_len: int, attention_mask: Int[Tensor, "batch pos"] | None, device: torch.device | None = None
) -> tuple[Int[Tensor, " batch"], Int[Tensor, " batch"]]:
    """First real position and number of real tokens of each example.

    Raises:
        ValueError: an example has no real token or its real tokens are not contiguous.
    """
    if attention_mask is None:
        return (torch.zeros(batch, dtype=torch.long, device=device), torch.full((batch,), seq_len, device=device))
    if attention_mask.shape != (batch, seq_len):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected ({batch}, {seq_len})")
    mask = attention_mask.bool()
    lengths = mask.sum(-1)
    if (lengths == 0).any():
        empty = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"attention_mask: examples {empty} have no real token")
    start = mask.long().argmax(-1)
    idx = torch.arange(seq_len, device=mask.device)
    inside = (idx >= start[:, None]) & (idx < (start + lengths)[:, None])
    if not torch.equal(inside, mask):
        raise ValueError("attention_mask: the real tokens of every example must be contiguous (left or right padding)")
    return start, lengths


def resolve_positions(
    positions: PositionSpec,
    batch: int,
    seq_len: int,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    device: torch.device | None = None,
) -> tuple[Int[Tensor, " n"], Int[Tensor, " n"]]:
    """Turn a position spec into ``(batch_index, position_index)`` pairs of the padded batch.

    Args:
        positions: a position spec (see module docstring).
        batch: batch size.
        seq_len: padded prompt length.
        attention_mask: ``[batch, seq_len]``, 1 for real tokens; ``None`` = no padding.

    Returns:
        Two LongTensors of equal length: row ``i`` selects ``act[batch_index[i], position_index[i]]``.
        Rows are grouped by example, in the order the spec lists positions.

    Raises:
        ValueError: a position is outside an example's real tokens, or names one token twice (the
            message names the position, the example and the valid range).
    """
    positions = check_position_spec(positions)
    start, lengths = real_token_span(batch, seq_len, attention_mask, device)
    device = start.device
    rows = torch.arange(batch, device=device)

    if isinstance(positions, str):
        if positions == "last":
            return rows, start + lengths - 1
        rel = torch.arange(seq_len, device=device).expand(batch, seq_len)
        keep = rel < lengths[:, None]
        b_idx, col = keep.nonzero(as_tuple=True)
        return b_idx, start[b_idx] + col

    if isinstance(positions, slice):
        b_parts, p_parts = [], []
        for b in range(batch):
            n = int(lengths[b])
            rel = torch.arange(*positions.indices(n), device=device)
            b_parts.append(torch.full_like(rel, b))
            p_parts.append(start[b] + rel)
        b_idx, p_idx = torch.cat(b_parts), torch.cat(p_parts)
        if b_idx.numel() == 0:
            raise ValueError(f"positions={positions!r} selects no token in prompts of {lengths.tolist()} real tokens")
        return b_idx, p_idx

    if isinstance(positions, int):
        rel = torch.full((batch, 1), positions, dtype=torch.long, device=device)
        shown = positions
    elif isinstance(positions, Tensor):
        if positions.shape[0] != batch:
            raise ValueError(f"positions is a tensor of {positions.shape[0]} entries; the batch has {batch} examples")
        rel = positions.to(device)[:, None]
        shown = None
    else:
        rel = torch.tensor(positions, dtype=torch.long, device=device).expand(batch, len(positions))
        shown = list(positions)

    absolute_rel = torch.where(rel < 0, rel + lengths[:, None], rel)
    bad = (absolute_rel < 0) | (absolute_rel >= lengths[:, None])
    if bad.any():
        b, j = (int(v) for v in bad.nonzero()[0])
        n = int(lengths[b])
        value = int(rel[b, j])
        raise ValueError(
            f"positions={shown if shown is not None else value!r}: position {value} is out of range for "
            f"example {b}, a prompt of {n} real tokens; expected {-n} <= position < {n}"
        )
    if absolute_rel.shape[1] > 1:
        sorted_rel = absolute_rel.sort(-1).values
        dup = (sorted_rel[:, 1:] == sorted_rel[:, :-1]).any(-1)
        if dup.any():
            b = int(dup.nonzero()[0])
            raise ValueError(
                f"positions={shown!r} names the same token twice in example {b} "
                f"(a prompt of {int(lengths[b])} real tokens); list each position once"
            )
    b_idx = rows[:, None].expand_as(absolute_rel).reshape(-1)
    return b_idx, (start[:, None] + absolute_rel).reshape(-1)


def at_columns(x: Tensor, columns: Int[Tensor, " rows"], dim: int = 1) -> Tensor:
    """Each row of ``x`` at its own column: ``x[i, …, columns[i], …]`` with the position axis ``dim`` removed.

    The one gather of a tensor at one position per row (a prompt's query, the last real token):
    :meth:`~tvlens.tasks.ICLBatch.at_query` and the query engine read through it.

    Raises:
        ValueError: ``columns`` does not hold one column per row, or ``dim`` is not a position axis of ``x``.
    """
    if columns.ndim != 1 or x.shape[0] != columns.shape[0]:
        raise ValueError(f"columns has shape {tuple(columns.shape)}; expected [{x.shape[0]}] (one column per row of x)")
    if not 1 <= dim < x.ndim:
        raise ValueError(f"dim={dim!r}: expected a position axis of x (1 … {x.ndim - 1})")
    rows = torch.arange(columns.shape[0], device=x.device)
    return x.movedim(dim, 1)[rows, columns.to(x.device)]
