"""KV-cached decoding on tvlens' own block: a prompt run once, then one new column per generated token.

Generation asks the model for the next token again and again, each time of a prompt one token longer.
Attention is causal, so every column already run keeps its keys and values: :class:`KVDecoder` runs the
prompt once through :class:`~tvlens.models.engine.OwnBlock` (the block the query engine's cached path runs,
checked against each architecture's own forward), keeps each layer's keys and values, and then runs only the
new token's column, attending to them::

    prefill:  x⁰ = embed(prompt);  per layer l:  x ← edits(x);  K_l, V_l ← k(x), v(x);  x ← block_l(x)
    step:     x⁰ = embed(token at position p);  per layer:  x ← edits(x);  K_l ← [K_l; k(x)], V_l ← [V_l; v(x)]

Edits are changes of the stream entering block ``l`` (``l = n_layers``: the final stream) at chosen columns
(:class:`ColumnEdit`): a vector added, or the stream replaced. An edit of the prompt changes the keys and
values every later token attends to, exactly as a forward of the whole sequence with the same edit would.

Left padding is read from the attention mask: padded columns are never attended to, and positions count
real tokens (the new token of a row with ``k`` real tokens sits at position ``k``). The new token's stream
entering block 0 is the model's embedding of the token alone, moved to its position on a model with learned
absolute positions (``+ W_pos[p] − W_pos[0]``; a rotary model rotates keys and queries in the block).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tvlens.models.engine import OwnBlock, _bias
from tvlens.models.hooked import HookedModel


@dataclass(frozen=True, eq=False)
class ColumnEdit:
    """One change of the stream entering block ``layer`` at some columns.

    Attributes:
        layer: the stream entering block ``layer`` (``n_layers``: the final stream, before ``ln_final``).
        rows: ``[k]`` the rows of the batch.
        columns: ``[k]`` their columns (ignored by :meth:`KVDecoder.step`, which runs one column).
        values: ``[k, d_model]`` what is added (``mode="add"``) or what the stream becomes (``"replace"``).
        mode: ``"add"`` or ``"replace"``.
    """

    layer: int
    rows: Int[Tensor, " k"]
    columns: Int[Tensor, " k"] | None
    values: Float[Tensor, "k d_model"]
    mode: str = "add"

    def apply(self, x: Float[Tensor, "n N d_model"]) -> Float[Tensor, "n N d_model"]:
        """``x`` with this edit (out of place; gradients reach ``values``)."""
        columns = self.columns if self.columns is not None else torch.zeros_like(self.rows)
        return x.index_put((self.rows, columns), self.values.to(x.dtype), accumulate=self.mode == "add")


class KVDecoder(OwnBlock):
    """A batch of prompts decoded one column at a time with each layer's keys and values kept.

    Args:
        model: a model whose ``capabilities.cached_suffix`` holds (the block is checked against its forward).
        capacity: the most columns a row will hold (prompt plus new tokens): the caches are allocated once.
    """

    def __init__(self, model: HookedModel, capacity: int) -> None:
        if not model.capabilities.cached_suffix:
            raise ValueError(f"KVDecoder: tvlens' block does not reproduce this model ({model.capabilities.reason})")
        super().__init__(model)
        self.capacity = capacity
        self.length = 0

    @torch.no_grad()
    def prefill(self, inputs: Int[Tensor, "n N"], mask: Int[Tensor, "n N"] | None,
                edits: Sequence[ColumnEdit] = ()) -> Float[Tensor, "n d_vocab"]:
        """Run the prompts (left padded: each prompt's last token in the last column), keep every layer's keys
        and values, and return the logits at the last column."""
        model, caps = self.model, self.caps
        n, width = inputs.shape
        if width > self.capacity:
            raise ValueError(f"inputs has {width} columns; the decoder holds {self.capacity}")
        real = torch.ones(n, width, dtype=torch.bool, device=model.device) if mask is None else mask.bool()
        position = model.position_ids(n, width, mask)
        x = self.entering(inputs, mask).masked_fill(~real[..., None], 0)
        dtype = x.dtype
        trig = None if self.rotary is None else self.rotary.tables(position)
        self.keys = x.new_zeros(model.n_layers, n, self.capacity, self.heads, self.d_head)
        self.values = x.new_zeros(model.n_layers, n, self.capacity, self.heads, self.d_head)
        self.real = torch.zeros(n, self.capacity, dtype=torch.bool, device=model.device)
        self.position = torch.zeros(n, self.capacity, dtype=torch.long, device=model.device)
        self.real[:, :width], self.position[:, :width], self.length = real, position, width
        self.next_position = real.sum(1)
        cols = torch.arange(width, device=model.device)
        bias = {w: _bias(real, position, cols, w, dtype) for w in set(caps.sliding_windows)}  # [n, 1, N, N]
        for layer in range(model.n_layers + 1):
            x = _apply(x, edits, layer)
            if layer == model.n_layers:
                break
            q, k, v = self._qkv(layer, x, trig)
            self.keys[layer, :, :width], self.values[layer, :, :width] = k, v
            pattern = self._pattern(torch.einsum("bshk,bthk->bhst", q, k), bias[caps.sliding_windows[layer]])
            x = self._after_attention(layer, x, torch.einsum("bhst,bthk->bshk", pattern, v))
        return self._logits(x[:, -1], False)

    @torch.no_grad()
    def step(self, tokens: Int[Tensor, " n"], edits: Sequence[ColumnEdit] = ()) -> Float[Tensor, "n d_vocab"]:
        """Append one token per row (at each row's next position), run its column attending to every kept key and
        value, keep its own, and return its logits."""
        model, caps = self.model, self.caps
        if self.length >= self.capacity:
            raise ValueError(f"the decoder is full: it holds {self.capacity} columns")
        at, position = self.length, self.next_position
        x = self.entering(tokens[:, None], None)  # the token alone, at position 0
        if caps.learned_positions:  # moved to its position (positions enter nowhere else)
            W_pos = model.W_pos.detach()
            x = x + (W_pos[position] - W_pos[0])[:, None].to(x.dtype)
        trig = None if self.rotary is None else self.rotary.tables(position[:, None])
        self.real[:, at], self.position[:, at] = True, position
        real, key_position = self.real[:, : at + 1], self.position[:, : at + 1]
        query = torch.tensor([at], device=model.device)
        bias = {w: _bias(real, key_position, query, w, x.dtype) for w in set(caps.sliding_windows)}  # [n, 1, 1, T]
        for layer in range(model.n_layers + 1):
            x = _apply(x, edits, layer)
            if layer == model.n_layers:
                break
            q, k, v = self._qkv(layer, x, trig)
            self.keys[layer, :, at], self.values[layer, :, at] = k[:, 0], v[:, 0]
            keys, values = self.keys[layer, :, : at + 1], self.values[layer, :, : at + 1]
            pattern = self._pattern(torch.einsum("bshk,bthk->bhst", q, keys), bias[caps.sliding_windows[layer]])
            x = self._after_attention(layer, x, torch.einsum("bhst,bthk->bshk", pattern, values))
        self.length, self.next_position = at + 1, position + 1
        return self._logits(x[:, 0], False)


def _apply(x: Tensor, edits: Sequence[ColumnEdit], layer: int) -> Tensor:
    """``x`` with the edits of ``layer``, in the order given."""
    for edit in edits:
        if edit.layer == layer:
            x = edit.apply(x)
    return x


__all__ = ["ColumnEdit", "KVDecoder"]
