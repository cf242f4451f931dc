"""The query engine: fixed prompts run to their query with edits, on a cached suffix or the full forward.

Almost everything tvlens measures is one question asked many times of the same prompts: *what
are the logits at the query when the stream (or a head) is changed here?* — a learned vector
during training (every step), every head ablated alone (hundreds of copies), thousands of
perturbed vectors for the dynamics. :class:`QueryEngine` answers it for a fixed set of prompts:

* **stream edits** (:class:`StreamEdit`): add a vector to, or replace, the stream entering block
  ``l`` (``blocks.{l}.hook_resid_pre``; ``l = n_layers`` is the final stream) at a token position;
* **head edits** (``z_edit``): change the query's per-head attention results ``z`` (as at
  ``blocks.{l}.attn.hook_z``) — ablations with masks, means, or a resumed intact run;
* from layer ``start`` on, returning query logits and, on request, the query's streams.

**Which path** — decided in one place, :func:`choose_path`, from the model's
:class:`~tvlens.models.capabilities.Capabilities` and the edit positions:

* *cached*: attention is causal, so the columns before the first edited position ``c₀`` are the
  same for every edit. The engine takes the stream entering block 0 from the model (its
  embedding: the forward stops there) and runs the prompts once through tvlens' own block,
  keeping the keys and values of the columns before ``c₀`` at every layer from ``start``; each
  call then runs only columns ``c₀ … N−1`` through blocks ``start … L−1``, attending to the
  cached keys/values. A vector at the last position (the common case) runs one column; a vector
  at position 1 runs the rest of the prompt. The prompts run once in chunks of similar length,
  each from its earliest real column, with one fused attention kernel (measured on a 4-layer
  Llama with grouped K/V heads, 600 left-padded 16-shot word-pair prompts of 90–172 tokens, 2
  CPU threads: 0.8 s, where the forward of the same prompts through the TransformerLens bridge,
  stopped before the last block, took 1.7–4.3 s).
* *full*: one forward of the hooked model per call, with the edits as TransformerLens hooks
  (through :meth:`HookedModel.hooks`). Used where the cached block is not verified for the
  architecture, or when the query is not the last column (right padding).

Both paths take the same arguments and return the same tensors; tests check them equal (float64,
1e-5) on every architecture family the cached path allows.

**Repeated prompts run once.** The zero-shot view of a task has few distinct prompts (one per query
input: 600 training prompts of a 32-token permutation task hold 16), so the cached path keeps one
copy of each distinct prompt in its cache, and a call whose rows repeat a prompt with the same edits
runs each such row once and hands its logits (and streams) to its repeats. Rows carry the same edits
when every edit vector is one ``[d_model]`` vector, or when the call says so (``variants``: equal
labels, equal edits — e.g. the copies of one learned vector over a minibatch). Gradients flow to every
repeat's edit as before (the repeats' gradients are summed where they used to be summed in the
vector). Rows whose edits may differ (per-row vectors without ``variants``, ``z_edit``, ``resume``) run
one by one as before.

**Why tvlens' own block and not a key/value cache.** Hugging Face's ``past_key_values`` (and
TransformerLens 4.x's KV cache for ``AttentionBridge``) would reuse each architecture's own
modules, but (1) a cached forward still starts at the embedding: a vector at layer ``l`` would
re-run layers ``< l`` for the suffix, and a copy that ablates a head at layer ``f`` could not start
at ``f`` from the intact run; (2) many copies of one prompt would need the cache copied per copy,
where the own block broadcasts one cache over all copies in one batched product; (3) it is slower:
measured on a 4-layer Llama with grouped K/V heads (d_model 128, 32 left-padded 16-shot word-pair
prompts of ~170 tokens, one vector at layer 1, 2 CPU threads), a one-token forward of the
Hugging Face model itself with its ``past_key_values`` took 5.1–5.2 ms, the engine's suffix
2.7–3.1 ms — before any TransformerLens hook runs. The own block reads the TransformerLens-layout
weights, works the same on TL 3.x and 4.x, and every family it allows is checked against the full
forward through the hooked model.

The block per layer (row vectors, TransformerLens conventions; ``R_p`` is rotary at position ``p``)::

    a = LN1(x);  q, k, v = a W_{Q,K,V} + b;  q, k ← R_p q, R_p k       (grouped K/V heads shared)
    s = cap·tanh((q·[K_prefix; k]) / scale / cap)  + mask (causal, padding, sliding window)
    z = softmax(s) [V_prefix; v];   o = Σ_h z_h W_O[h] + b_O           (o ← LN_post(o) on Gemma-2)
    x ← x + o + MLP(LN2(x))   if parallel (GPT-NeoX; GPT-J/Phi use LN1), else x ← x + o; x ← x + MLP(LN2(x))
    MLP(a) = act(a W_in + b_in) W_out + b_out,  gated: (act(a W_gate) ⊙ (a W_in + b_in)) W_out + b_out
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from tvlens._checks import check_int
from tvlens.models.hooked import HookedModel
from tvlens.models.norm import apply_norm
from tvlens.positions import at_columns, resolve_positions

ZEdit = Callable[[int, Tensor], Tensor]
"""``z_edit(layer, z)``: the query's per-head results ``z [rows, n_heads, d_head]`` at ``layer`` → new ``z``."""

Path = Literal["cached", "full"]

_ACT = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


@dataclass(frozen=True, eq=False)
class StreamEdit:
    """One change of the residual stream.

    Attributes:
        layer: the stream entering block ``layer`` (``blocks.{layer}.hook_resid_pre``); ``n_layers``
            means the final stream (``blocks.{L-1}.hook_resid_post``, the input of ``ln_final``).
        vector: ``[d_model]``, or ``[rows, d_model]`` with one row per row of the call.
        position: ``"last"`` or an int counted over real tokens (negative from the end); it must be
            one of the engine's declared ``positions``.
        mode: ``"add"`` the vector, or ``"replace"`` the stream with it.
    """

    layer: int
    vector: Tensor
    position: int | str = "last"
    mode: str = "add"

    def __post_init__(self) -> None:
        if self.mode not in ("add", "replace"):
            raise ValueError(f"StreamEdit.mode={self.mode!r}: expected 'add' or 'replace'")


#: What a ``path`` argument may ask for.
PATHS = ("auto", "cached", "full")

#: About how many bytes the largest activation of one chunk of the engine's prefix takes (its attention scores or its
#: MLP's hidden layer). Prompts run in chunks sorted by length (a chunk of prompts of similar length runs without
#: most of their left padding), and temporaries this small are reused by the allocator instead of faulting in fresh
#: pages: 9000 two-shot prompts of an 11-token task built in 0.9 s instead of 1.3–1.5 s with 16 MiB chunks.
PREFIX_CHUNK_BYTES = 2**22


def check_path(path: object) -> str:
    """Refuse a ``path`` that is not one of :data:`PATHS`, before any work (a one-line error)."""
    if path not in PATHS:
        raise ValueError(f"path={path!r}: expected 'auto', 'cached' or 'full'")
    return path  # type: ignore[return-value]


def _first_occurrences(key: Tensor) -> tuple[Int[Tensor, " distinct"], Int[Tensor, " rows"]] | None:
    """The distinct rows of ``key`` (1-D values, or the rows of a 2-D tensor): the first row of each, in order of
    first appearance, and each row's index among them — ``None`` when every row is distinct."""
    n = key.shape[0]
    inverse = torch.unique(key, dim=0 if key.ndim > 1 else None, return_inverse=True)[1]
    k = int(inverse.max()) + 1 if n else 0
    if k == n:
        return None
    first = torch.full((k,), n, device=inverse.device).scatter_reduce(
        0, inverse, torch.arange(n, device=inverse.device), "amin")
    first, order = first.sort()  # by first appearance
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k, device=order.device)
    return first, rank[inverse]


def _distinct_rows(inputs: Tensor, attention_mask: Tensor | None = None
                  ) -> tuple[Int[Tensor, " distinct"], Int[Tensor, " batch"]] | None:
    """The distinct prompts of ``inputs`` (rows equal in every token, or input vector, and in the mask):
    :func:`_first_occurrences` of their rows."""
    key = inputs.reshape(inputs.shape[0], -1)
    if attention_mask is not None:
        key = torch.cat([key, attention_mask.to(key.dtype)], 1)
    return _first_occurrences(key)


def choose_path(
    model: HookedModel, attention_mask: Tensor | None, requested: str = "auto", hooks: bool = False,
) -> tuple[Path, str]:
    """The one decision between the cached and the full path, and the reason for it.

    Args:
        requested: ``"auto"`` (cached wherever it is exact), ``"cached"`` (an error where it is not)
            or ``"full"``.
        hooks: whether some edits come as TransformerLens hooks (hook points the cached block has no
            place for).
    """
    check_path(requested)
    if requested == "full":
        return "full", "requested"
    caps = model.capabilities
    reason = "" if caps.cached_suffix else caps.reason
    if not reason and hooks:
        reason = "some edits are hooks at points other than the residual stream (see tvlens.interventions.engine_edits)"
    if not reason and attention_mask is not None and not bool(attention_mask[:, -1].bool().all()):
        reason = "the query is not the last column of every prompt (right padding)"
    if reason and requested == "cached":
        raise ValueError(f"path='cached' is not possible here: {reason}")
    return ("full", reason) if reason else ("cached", "")


class QueryEngine:
    """Query logits of fixed prompts under stream and head edits, from layer ``start`` on.

    Args:
        model: the model (read, never changed).
        inputs: token ids ``[batch, pos]`` or regression inputs ``[batch, pos, d_input]``.
        attention_mask: padding mask (1 = real token).
        start: the first layer any edit touches (edits below it are an error).
        positions: every position an edit may use (``"last"`` or ints over real tokens).
        path: ``"auto"`` (see :func:`choose_path`), ``"cached"`` or ``"full"``.
        hooks: edits the stream edits cannot express, as ``(hook_name, fn)`` pairs attached to every
            run (e.g. a vector at ``attn_out``); they make the engine run the full forward.

    Attributes:
        path: the path this engine runs, ``"cached"`` or ``"full"``.
        reason: why it runs the full path (empty on the cached one).
    """

    def __init__(
        self,
        model: HookedModel,
        inputs: Tensor,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        *,
        start: int = 0,
        positions: Sequence[int | str] = ("last",),
        path: str = "auto",
        hooks: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.model, self.start = model, model.check_layer(start, "start")
        self.inputs = inputs.to(model.device)
        self.attention_mask = None if attention_mask is None else attention_mask.to(model.device)
        n, n_pos = inputs.shape[:2]
        positions = list(positions)
        if not positions:
            raise ValueError("positions=[]: expected at least one position")
        self.columns: dict[int | str, Tensor] = {}
        for p in positions:
            if not (p == "last" or (isinstance(p, int) and not isinstance(p, bool))):
                raise ValueError(f"positions: {p!r} is not 'last' or an int")
            rows, cols = resolve_positions(p, n, n_pos, self.attention_mask, model.device)
            self.columns[p] = cols
        self.query = resolve_positions("last", n, n_pos, self.attention_mask, model.device)[1]
        self.hooks = list(hooks)
        self.path, self.reason = choose_path(model, self.attention_mask, path, bool(self.hooks))
        first = min(int(c.min()) for c in self.columns.values())
        self._suffix, self._distinct = None, None
        if self.path == "cached":
            #: each prompt's row among the distinct prompts the cache holds (``None``: every prompt is distinct)
            self._distinct = _distinct_rows(self.inputs, self.attention_mask)
            keep = slice(None) if self._distinct is None else self._distinct[0]
            self._suffix = _CachedSuffix(model, self.inputs[keep], None if self.attention_mask is None
                                   else self.attention_mask[keep], self.start, first,
                                   {p: c[keep] for p, c in self.columns.items()})

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def run(
        self,
        edits: Sequence[StreamEdit] = (),
        *,
        rows: Tensor | None = None,
        copies: int | None = None,
        z_edit: ZEdit | None = None,
        resume: tuple[int, Tensor] | tuple[int, Tensor, Tensor] | None = None,
        streams: list[Tensor] | None = None,
        return_resid: bool = False,
        variants: Int[Tensor, " rows"] | None = None,
        enter: Int[Tensor, " rows"] | None = None,
    ) -> Float[Tensor, "rows d_vocab"] | tuple[Float[Tensor, "rows d_vocab"], Float[Tensor, "rows d_model"]]:
        """Query logits with ``edits`` in the stream.

        Args:
            edits: the stream edits (at layers ``start … n_layers``).
            rows: a subset of the prompts (a minibatch), possibly repeated.
            copies: run ``copies`` variants over every prompt: the rows are ``copies × prompts``
                (copy-major); edit vectors and ``z_edit`` see that many rows. On the cached path the
                prompts' cache is shared by all copies, never copied. Not together with ``rows``.
            z_edit: changes the query's per-head results at every layer ``≥ start`` (see :data:`ZEdit`).
            resume: ``(layer, stream)`` or ``(layer, stream, z)`` from an earlier call over the same
                prompts that did not differ before ``layer``: the query stream ``[prompts, d_model]``
                entering ``layer`` (as ``streams`` recorded it) and optionally the query's ``z`` there
                (as ``z_edit`` saw it). A one-column cached suffix (edits at the last position)
                starts there instead of recomputing; otherwise the layers are recomputed, which
                gives the same numbers.
            streams: if a list, the query's stream is appended at every ``resid_pre`` from ``start``
                (after that layer's edits), then the final stream.
            return_resid: also return the final stream at the query.
            variants: ``[rows]`` labels of the call's rows (copy-major with ``copies``): rows with equal labels
                carry equal edits (their rows of the edit vectors are equal), so a prompt repeated under one
                label runs once (see the module docstring). ``None``: rows carry equal edits only when every
                edit vector is one ``[d_model]`` vector.
            enter: ``[rows]`` non-decreasing layers from ``start`` to ``n_layers``: row ``r`` has no edit before
                layer ``enter[r]`` (e.g. learned vectors of several layers side by side, sorted by layer). On a
                one-column cached suffix without ``copies``, ``z_edit`` or ``resume``, a row then runs only the
                blocks from its layer, joining there with its prompt's intact stream; elsewhere it changes nothing.
                The numbers are the same either way.

        Returns:
            Logits ``[rows, d_vocab]`` at each prompt's query (and the final stream if asked).
        """
        if copies is not None and rows is not None:
            raise ValueError("pass either rows or copies, not both")
        if copies is not None:
            check_int("copies", copies, 1)
        n_rows = (len(self) if rows is None else len(rows)) * (copies or 1)
        if variants is not None and (variants.dtype in (torch.bool,) or variants.is_floating_point()
                                     or tuple(variants.shape) != (n_rows,)):
            raise ValueError(f"variants: a {variants.dtype} tensor of shape {tuple(variants.shape)}; expected "
                             f"integer labels of shape ({n_rows},), one per row of the call")
        if enter is not None and (enter.dtype == torch.bool or enter.is_floating_point()
                                  or tuple(enter.shape) != (n_rows,) or bool((enter.diff() < 0).any())
                                  or (n_rows and not self.start <= int(enter.min()) <= int(enter.max())
                                      <= self.model.n_layers)):
            raise ValueError(f"enter: a {enter.dtype} tensor of shape {tuple(enter.shape)}; expected ({n_rows},) "
                             f"non-decreasing integer layers in [{self.start}, {self.model.n_layers}]")
        for edit in edits:
            if not self.start <= edit.layer <= self.model.n_layers:
                raise ValueError(f"StreamEdit.layer={edit.layer} is outside this engine's range "
                                 f"[{self.start}, {self.model.n_layers}] (start={self.start})")
            if edit.position not in self.columns:
                raise ValueError(f"StreamEdit.position={edit.position!r} was not declared; this engine's positions "
                                 f"are {list(self.columns)}")
        for edit in edits if enter is not None else ():  # a row's edits must not come before its layer
            later = enter.to(edit.vector.device) > edit.layer
            if bool(later.any()) and (edit.vector.ndim == 1 or edit.mode == "replace" or (
                    edit.vector.shape[0] == len(later) and bool(edit.vector.detach()[later].any()))):
                raise ValueError(f"enter: {int(later.sum())} rows enter after layer {edit.layer}, where a StreamEdit "
                                 f"({edit.mode}) changes them; expected every row's edits at layers >= its enter")
        # all prompts as a slice: the cached keys/values are then views, not gathered copies, at every layer
        index = slice(None) if rows is None else rows.to(self.model.device)
        if self._suffix is not None:
            return self._run_cached(edits, index, copies or 1, z_edit, resume, streams, return_resid, variants,
                                    enter)
        return self._run_full(edits, index, copies or 1, z_edit, streams, return_resid)

    # ------------------------------------------------------------------ cached path
    def _run_cached(self, edits: Sequence[StreamEdit], index: Tensor | slice, copies: int, z_edit: ZEdit | None,
                    resume: Any, streams: list[Tensor] | None, return_resid: bool, variants: Tensor | None,
                    enter: Tensor | None) -> Any:
        """The cached suffix over the distinct prompts: each (prompt, edits) pair of the call runs once when the
        rows' edits are known to be equal, and rows with a later first edit join at its layer (see :meth:`run`)."""
        suffix = self._suffix
        staged = enter is not None and suffix.width == 1 and z_edit is None and resume is None
        prompt = index if self._distinct is None else self._distinct[1][index]  # each row's prompt in the cache
        same = variants is not None or all(edit.vector.ndim == 1 for edit in edits)
        if self._distinct is None or z_edit is not None or resume is not None or not same:
            if staged and copies == 1:
                rows = torch.arange(len(suffix.window), device=enter.device)[prompt] if isinstance(prompt, slice) \
                    else prompt
                return suffix.run_staged(edits, rows, enter.to(rows.device), streams, return_resid)
            return suffix.run(edits, prompt, copies, z_edit, resume, streams, return_resid)
        prompt = prompt.repeat(copies)
        enter = None if not staged else enter.to(prompt.device)

        def each_row(edits: Sequence[StreamEdit], rows: Tensor, enter: Tensor | None, streams: Any) -> Any:
            return suffix.run(edits, rows, 1, None, None, streams, return_resid) if enter is None else \
                suffix.run_staged(edits, rows, enter, streams, return_resid)

        key = prompt if variants is None else variants.to(prompt.device) * len(self._distinct[0]) + prompt
        found = _first_occurrences(key)  # one row per (prompt, edits), in the call's order (``enter`` stays sorted)
        if found is None:  # nothing repeats in this call
            return each_row(edits, prompt, enter, streams)
        first, inverse = found
        edits = [edit if edit.vector.ndim == 1 else StreamEdit(edit.layer, edit.vector[first], edit.position,
                                                               edit.mode) for edit in edits]
        recorded: list[Tensor] | None = None if streams is None else []
        out = each_row(edits, prompt[first], None if enter is None else enter[first], recorded)
        if recorded is not None:
            streams.extend(x[inverse] for x in recorded)
        return (out[0][inverse], out[1][inverse]) if return_resid else out[inverse]

    # ------------------------------------------------------------------ full path
    def _run_full(self, edits: Sequence[StreamEdit], index: Tensor | slice, copies: int, z_edit: ZEdit | None,
                  streams: list[Tensor] | None, return_resid: bool) -> Any:
        model, n_layers = self.model, self.model.n_layers
        inputs = self.inputs[index].repeat(copies, *([1] * (self.inputs.ndim - 1)))
        mask = None if self.attention_mask is None else self.attention_mask[index].repeat(copies, 1)
        query = self.query[index].repeat(copies)
        recorded: dict[int, Tensor] = {}

        def stream_hook(layer: int) -> Callable[[Tensor, Any], Tensor]:
            def hook(act: Tensor, hook: Any) -> Tensor:
                for edit in edits:
                    if edit.layer == layer:
                        cols = self.columns[edit.position][index].repeat(copies)
                        act = _edit_columns(act, edit, cols)
                recorded[layer] = at_columns(act, query)
                return act

            return hook

        def z_hook(layer: int) -> Callable[[Tensor, Any], Tensor]:
            def hook(z: Tensor, hook: Any) -> Tensor:
                at_query = at_columns(z, query)
                changed = z_edit(layer, at_query)
                onehot = F.one_hot(query, z.shape[1]).to(z.dtype)[:, :, None, None]
                return z + onehot * (changed - at_query)[:, None]

            return hook

        hooks = [(model.hook_name(layer, "resid_pre"), stream_hook(layer)) for layer in range(self.start, n_layers)]
        hooks.append((model.hook_name(n_layers - 1, "resid_post"), stream_hook(n_layers)))
        if z_edit is not None:
            hooks += [(model.hook_name(layer, "attn.hook_z"), z_hook(layer)) for layer in range(self.start, n_layers)]
        logits = at_columns(model(inputs, attention_mask=mask, hooks=[*self.hooks, *hooks]), query)
        if streams is not None:
            streams.extend(recorded[layer] for layer in range(self.start, n_layers + 1))
        return (logits, recorded[n_layers]) if return_resid else logits


def _edit_columns(x: Float[Tensor, "rows *pos d_model"], edit: StreamEdit, cols: Int[Tensor, " rows"] | None,
                  width: int | None = None) -> Tensor:
    """``x`` with ``edit`` applied at column ``cols[r]`` of each row (differentiable, out of place); a 2-D
    ``x`` is the query column alone: the last of ``width`` columns (rows whose ``cols`` is another column are
    left as they are; ``cols=None``: every row's edit is at the query)."""
    vector = edit.vector.to(x.dtype)
    vector = vector.expand(x.shape[0], -1) if vector.ndim == 1 else vector
    if vector.shape != (x.shape[0], x.shape[-1]):
        raise ValueError(f"StreamEdit.vector has shape {tuple(edit.vector.shape)}; expected [{x.shape[-1]}] or "
                         f"[{x.shape[0]}, {x.shape[-1]}] (one row per row of the call)")
    if x.ndim == 2:  # the query alone
        edited = x + vector if edit.mode == "add" else vector.expand_as(x)
        if cols is None or width is None:
            return edited
        return torch.where((cols == width - 1)[:, None], edited, x)
    onehot = F.one_hot(cols, x.shape[1]).to(x.dtype)[..., None]
    if edit.mode == "add":
        return x + onehot * vector[:, None]
    return x * (1 - onehot) + onehot * vector[:, None]


class OwnBlock:
    """tvlens' own transformer block over a model's TransformerLens-layout weights (the block in the module
    docstring): the pieces the cached path (:class:`_CachedSuffix`) and KV-cached generation
    (:mod:`tvlens.models.decoder`) run columns through. Only models whose ``capabilities.cached_suffix`` holds
    are run on it (checked against the model's own forward)."""

    def __init__(self, model: HookedModel) -> None:
        self.model = model
        caps = self.caps = model.capabilities
        self.heads, self.d_head = model.n_heads, model.d_head
        self.w = _block_weights(model)
        # looked up once, not by name at every step
        self.norms = {name.removesuffix(".w"): (value, self.w.get(name.removesuffix(".w") + ".b"))
                      for name, value in self.w.items() if name.endswith(".w")}
        self.norms.update({name.removesuffix(".b"): (None, value) for name, value in self.w.items()
                           if name.endswith(".b") and name.removesuffix(".b") not in self.norms})
        self.act = _ACT[caps.act_fn or "gelu"]
        self.mlp = {layer: (self.w.get(f"blocks.{layer}.mlp.W_gate") if caps.gated_mlp else None,
                            self.w.get(f"blocks.{layer}.mlp.W_in"), self.w.get(f"blocks.{layer}.mlp.b_in", 0),
                            self.w.get(f"blocks.{layer}.mlp.W_out"), self.w.get(f"blocks.{layer}.mlp.b_out", 0))
                    for layer in range(model.n_layers)}
        self.rotary = _Rotary(caps, self.d_head, model.dtype) if caps.positional == "rotary" else None

    def entering(self, inputs: Tensor, mask: Tensor | None) -> Float[Tensor, "n N d_model"]:
        """The stream entering block 0 of ``inputs`` (the model itself runs only its embedding)."""
        name = self.model.hook_name(0, "resid_pre")
        with torch.no_grad():
            return self.model.activations(inputs, [name], attention_mask=mask)[name]

    def _norm(self, x: Tensor, name: str, kind: str | None = None) -> Tensor:
        weight, bias = self.norms.get(name, (None, None))
        return apply_norm(x, self.caps.norm if kind is None else kind, self.caps.eps, weight, bias)

    def _qkv(self, layer: int, x: Tensor, trig: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor, Tensor]:
        """``q, k, v [..., n_heads, d_head]`` of streams ``x [..., d]``, rotated by ``trig`` (the rotary tables of
        their positions, :meth:`_Rotary.tables`; ``None`` without rotary)."""
        weight, bias = self.w[f"blocks.{layer}.qkv"]
        qkv = self._norm(x, f"blocks.{layer}.ln1") @ weight + bias
        q, k, v = qkv.unflatten(-1, (3, self.heads, self.d_head)).unbind(-3)
        if self.rotary is not None:
            q, k = self.rotary.rotate(q, *trig), self.rotary.rotate(k, *trig)
        return q, k, v

    def _pattern(self, scores: Float[Tensor, "... keys"], bias: Tensor | None) -> Float[Tensor, "... keys"]:
        """Attention weights from raw scores ``q·k``: ``softmax(cap·tanh(s / scale / cap) + bias)`` (the cap on
        Gemma-2 only; ``bias`` the additive mask, ``None`` for none)."""
        scores = scores / self.caps.attn_scale
        if self.caps.attn_soft_cap is not None:
            scores = self.caps.attn_soft_cap * torch.tanh(scores / self.caps.attn_soft_cap)
        return (scores if bias is None else scores + bias).softmax(-1)

    def _mlp(self, layer: int, a: Tensor) -> Tensor:
        gate, w_in, b_in, w_out, b_out = self.mlp[layer]
        hidden = self.act(a @ w_in + b_in) if gate is None else self.act(a @ gate) * (a @ w_in + b_in)
        return hidden @ w_out + b_out

    def _after_attention(self, layer: int, x: Tensor, z: Tensor) -> Tensor:
        """The rest of block ``layer`` once its heads' results ``z [..., n_heads, d_head]`` are known: output
        projection, MLP and the residual sums (``x [..., d]``, the stream entering the block)."""
        caps, p = self.caps, f"blocks.{layer}"
        weight_o, bias_o = self.w[f"{p}.o"]
        out = z.flatten(-2) @ weight_o + bias_o
        if caps.post_norms:
            out = self._norm(out, f"{p}.ln1_post", "RMS")
        if caps.attn_only:
            return x + out
        if caps.parallel_attn_mlp:
            ln = f"{p}.ln1" if caps.parallel_norm == "shared" else f"{p}.ln2"
            return x + out + self._mlp(layer, self._norm(x, ln))
        x = x + out
        mlp = self._mlp(layer, self._norm(x, f"{p}.ln2"))
        if caps.post_norms:
            mlp = self._norm(mlp, f"{p}.ln2_post", "RMS")
        return x + mlp

    # ------------------------------------------------------------------ run
    def _logits(self, final: Float[Tensor, "rows d_model"], return_resid: bool) -> Any:
        """The query logits of the final streams ``final`` (and ``final`` itself with ``return_resid``)."""
        logits = self._norm(final, "ln_final", self.caps.final_norm) @ self.w["unembed.W_U"]
        if "unembed.b_U" in self.w:
            logits = logits + self.w["unembed.b_U"]
        if self.caps.logit_soft_cap is not None:
            logits = self.caps.logit_soft_cap * torch.tanh(logits / self.caps.logit_soft_cap)
        return (logits, final) if return_resid else logits


class _CachedSuffix(OwnBlock):
    """The cached path: the prompts' columns before ``first`` kept as keys/values, the rest run by tvlens' block."""

    def __init__(self, model: HookedModel, inputs: Tensor, mask: Tensor | None, start: int, first: int,
                 columns: dict[int | str, Tensor]) -> None:
        super().__init__(model)
        self.start, self.first = start, first
        #: each declared position's column in each of these prompts
        self.columns = columns
        self._intact: list[Tensor] | None = None
        caps = self.caps
        n, n_pos = inputs.shape[:2]
        self.width = n_pos - first
        entering = self.entering(inputs, mask)
        dtype = entering.dtype
        position = model.position_ids(n, n_pos, mask)
        real = torch.ones(n, n_pos, dtype=torch.bool, device=model.device) if mask is None else mask.bool()
        #: the suffix columns' rotary cosines and sines (computed once: every step reads them)
        self.trig = None if self.rotary is None else self.rotary.tables(position[:, first:])
        windows = set(caps.sliding_windows)
        with torch.no_grad():
            self._prefix(entering.masked_fill(~real[..., None], 0), position, real, windows)
        # Additive masks [n, 1, S, T + S] per distinct sliding window: padding, causality, window.
        self.bias: dict[int | None, Tensor | None] = {}
        for window in set(caps.sliding_windows[start:]):
            bias = _bias(real, position, torch.arange(first, n_pos, device=model.device), window, dtype)
            # no mask at all (no padding, no window reached, one column): nothing to add each step
            self.bias[window] = None if self.width == 1 and bool((bias == 0).all()) else bias

    def _prefix(self, x: Float[Tensor, "n N d_model"], position: Int[Tensor, "n N"], real: Bool[Tensor, "n N"],
                windows: set[int | None]) -> None:
        """The cache, from the stream entering block 0 ``x`` (padding zeroed): tvlens' block runs every column
        through the blocks before ``start`` and the prefix columns (before ``first``, causal among themselves)
        from ``start`` on; :attr:`window` is the suffix columns' stream entering ``start``, :attr:`keys` [n, h,
        d_head, T] and :attr:`values` [n, h, T, d_head] the prefix columns' keys and values at each layer from
        ``start`` (what the suffix's own block would compute for them).

        The prompts run in chunks of similar length, longest first, whose largest activation (attention scores or
        the MLP's hidden layer) stays near :data:`PREFIX_CHUNK_BYTES`; each chunk runs only from its earliest real
        column (left padding before it is never computed: its keys and values stay zero, and the mask hides
        them)."""
        n, width = x.shape[:2]
        start, first, n_layers = self.start, self.first, self.model.n_layers
        heads, d_head = self.heads, self.d_head
        self.window = x.new_zeros(n, width - first, x.shape[-1])
        self.keys = {layer: x.new_zeros(n, heads, d_head, first) for layer in range(start, n_layers)}
        self.values = {layer: x.new_zeros(n, heads, first, d_head) for layer in range(start, n_layers)}
        first_real = torch.where(real.any(1), real.to(torch.int8).argmax(1), width).clamp(max=first)
        hidden = max([x.shape[-1], *(w_in.shape[-1] for _, w_in, _, _, _ in self.mlp.values() if w_in is not None)])
        size = max(1, PREFIX_CHUNK_BYTES // max(1, width * max(heads * width, hidden) * x.element_size()))
        for rows in torch.argsort(first_real, stable=True).split(size):
            lo = int(first_real[rows].min())
            chunk, at = x[rows, lo:], position[rows, lo:]
            trig = None if self.rotary is None else self.rotary.tables(at)
            bias = {w: _bias(real[rows, lo:], at, torch.arange(width - lo, device=x.device), w, x.dtype)
                    for w in windows}
            # no padding and no window reached: the mask is causality alone, which the fused kernel knows itself
            unpadded = bool(real[rows, lo:].all())
            causal = {w: unpadded and (w is None or w >= width - lo) for w in windows}
            for layer in range(n_layers):
                if layer == start:  # from here on only the prefix columns
                    self.window[rows] = chunk[:, first - lo:].masked_fill(~real[rows, first:, None], 0)
                    chunk = chunk[:, : first - lo]
                    trig = None if trig is None else (trig[0][:, : first - lo], trig[1][:, : first - lo])
                    bias = {w: b[..., : first - lo, : first - lo] for w, b in bias.items()}
                    if first == lo:  # no prefix column in these prompts
                        break
                q, k, v = self._qkv(layer, chunk, trig)
                if layer >= start:
                    self.keys[layer][rows, :, :, lo:] = k.permute(0, 2, 3, 1)
                    self.values[layer][rows, :, lo:] = v.permute(0, 2, 1, 3)
                if layer == n_layers - 1:
                    break  # the last block's output is never read
                window = self.caps.sliding_windows[layer]
                mask = bias[window]
                if self.caps.attn_soft_cap is None:  # one fused kernel
                    z = F.scaled_dot_product_attention(
                        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=None if causal[window]
                        else mask, is_causal=causal[window], scale=1 / self.caps.attn_scale).transpose(1, 2)
                else:
                    z = torch.einsum("bhst,bthk->bshk", self._pattern(torch.einsum("bshk,bthk->bhst", q, k), mask), v)
                chunk = self._after_attention(layer, chunk, z)

    def _attend_one(self, layer: int, x: Tensor, trig: Any, index: Tensor | slice, copies: int) -> Tensor:
        """The query's ``z [rows, n_heads, d_head]`` when the suffix is the query alone (``x [rows, d]``).

        One batched matrix product per row and head (measured 3–10× faster than broadcast products on 2 CPU
        threads, torch 2.13); copies share their prompt's cache."""
        caps = self.caps
        q, k, v = self._qkv(layer, x, trig)
        keys, values = self.keys[layer][index], self.values[layer][index]  # [P, h, dk, T], [P, h, T, dk]
        n_prompts, heads, d_head, n_prefix = keys.shape
        if copies == 1:
            prefix = (q[:, :, None, :] @ keys)[:, :, 0]  # [rows, h, T]
        else:
            prefix = torch.einsum("cphk,phkt->cpht", q.view(copies, n_prompts, heads, d_head), keys)
            prefix = prefix.reshape(copies * n_prompts, heads, n_prefix)  # explicit: T may be 0
        bias = self.bias[caps.sliding_windows[layer]]
        if bias is not None:
            bias = bias[index][:, :, 0]  # [P, 1, T + 1]
            bias = bias.repeat(copies, 1, 1) if copies > 1 else bias
        pattern = self._pattern(torch.cat([prefix, (q * k).sum(-1, keepdim=True)], -1), bias)
        if copies == 1:
            z = (pattern[:, :, None, :-1] @ values)[:, :, 0]
        else:
            z = torch.einsum("cpht,phtk->cphk", pattern[..., :-1].reshape(copies, n_prompts, heads, n_prefix), values)
            z = z.reshape(copies * n_prompts, heads, d_head)
        return z + pattern[..., -1:] * v

    def _attend(self, layer: int, x: Tensor, trig: Any, index: Tensor | slice, copies: int,
                last: bool = False) -> Tensor:
        """``z [rows, S, n_heads, d_head]`` of the suffix columns ``x [rows, S, d]``: the cached prefix plus
        the suffix itself (causal); with ``last``, of the last column alone (``[rows, 1, n_heads, d_head]``: the
        other columns give only their keys and values)."""
        caps = self.caps
        q, k, v = self._qkv(layer, x, trig)
        keys, values = self.keys[layer][index], self.values[layer][index]
        n_prompts, heads, d_head, n_prefix = keys.shape
        bias = self.bias[caps.sliding_windows[layer]][index]
        if last:
            q, bias = q[:, -1:], bias[:, :, -1:]
        rows, width = q.shape[:2]
        prefix = torch.einsum("cpshk,phkt->cphst", q.reshape(copies, n_prompts, width, heads, d_head), keys)
        pattern = self._pattern(torch.cat([prefix.reshape(rows, heads, width, n_prefix),
                                           torch.einsum("bshk,bthk->bhst", q, k)], -1),
                                bias.repeat(copies, 1, 1, 1) if copies > 1 else bias)
        before, after = pattern[..., :n_prefix], pattern[..., n_prefix:]
        z = torch.einsum("cphst,phtk->cpshk", before.reshape(copies, n_prompts, heads, width, n_prefix), values)
        return z.reshape(rows, width, heads, d_head) + torch.einsum("bhst,bthk->bshk", after, v)

    def _block(self, layer: int, x: Tensor, trig: Any, index: Tensor | slice, copies: int,
               z_edit: ZEdit | None, resume_z: Tensor | None) -> Tensor:
        """One block over the suffix: ``x [rows, d]`` (the query alone) or ``[rows, S, d]``
        (``rows = copies × prompts``). The last block returns the query column alone ``[rows, d]`` (the other
        columns' outputs are never read: only their keys and values are computed there)."""
        one = x.ndim == 2
        last = not one and layer == self.model.n_layers - 1
        if resume_z is not None:  # the intact run's attention at this layer
            z = resume_z
        elif one:
            z = self._attend_one(layer, x, trig, index, copies)
        else:
            z = self._attend(layer, x, trig, index, copies, last=last)
        if last:
            x, z = x[:, -1], z[:, 0]
            one = True
        if z_edit is not None:  # at the query (the last column)
            z = z_edit(layer, z) if one else torch.cat([z[:, :-1], z_edit(layer, z[:, -1])[:, None]], 1)
        return self._after_attention(layer, x, z)

    def run(self, edits: Sequence[StreamEdit], index: Tensor | slice, copies: int,
            z_edit: ZEdit | None, resume: Any, streams: list[Tensor] | None, return_resid: bool) -> Any:
        n_layers = self.model.n_layers
        first, resume_z = self.start, None
        one = self.width == 1  # the query alone: run it as [rows, d]
        x = self.window[index][:, 0] if one else self.window[index]
        if resume is not None and not one:
            resume = None  # an optimisation only: with several columns the layers are recomputed
        if resume is not None:
            first, stream, resume_z = resume if len(resume) == 3 else (*resume, None)
            n = x.shape[0]
            z_shape = (n, self.heads, self.d_head)
            if not self.start <= first < n_layers or tuple(stream.shape) != (n, self.model.d_model) \
                    or (resume_z is not None and tuple(resume_z.shape) != z_shape):
                raise ValueError(f"resume: expected a layer in [{self.start}, {n_layers}), a stream of shape "
                                 f"{(n, self.model.d_model)} and z of shape {z_shape}; got layer {first}, stream "
                                 f"{tuple(stream.shape)}, z {None if resume_z is None else tuple(resume_z.shape)}")
            x = stream
            if resume_z is not None:
                resume_z = resume_z.repeat(copies, 1, 1)
        if copies > 1:
            x = x.repeat(copies, *([1] * (x.ndim - 1)))
        trig = None
        if self.trig is not None:  # only rotary reads positions
            trig = tuple(t[index].repeat(copies, *([1] * (t.ndim - 1))) for t in self.trig)
            trig = tuple(t[:, 0] for t in trig) if one else trig
        # a one-column suffix has every edit at its only column
        columns = {} if one else {p: (c[index] - self.first).repeat(copies) for p, c in self.columns.items()}
        for layer in range(first, n_layers + 1):
            if not (resume is not None and layer == first):  # a resumed stream already holds its edits
                for edit in edits:
                    if edit.layer == layer:
                        x = _edit_columns(x, edit, columns.get(edit.position), self.width)
            if streams is not None:
                streams.append(x if x.ndim == 2 else x[:, -1])
            if layer < n_layers:
                x = self._block(layer, x, trig, index, copies, z_edit,
                                resume_z if (resume is not None and layer == first) else None)
        return self._logits(x, return_resid)  # x: the query column (the last block returns it alone)

    def intact(self) -> list[Float[Tensor, "prompts d_model"]]:
        """The prompts' query streams with no edit, entering each layer from ``start`` and then the final stream
        (one run, kept)."""
        if self._intact is None:
            streams: list[Tensor] = []
            with torch.no_grad():
                self.run([], slice(None), 1, None, None, streams, False)
            self._intact = streams
        return self._intact

    def run_staged(self, edits: Sequence[StreamEdit], index: Int[Tensor, " rows"], enter: Int[Tensor, " rows"],
                   streams: list[Tensor] | None, return_resid: bool) -> Any:
        """:meth:`run` of a one-column suffix whose row ``r`` (rows sorted by ``enter``) has no edit before layer
        ``enter[r]``: it joins there with its prompt's intact stream, and the blocks before run only the rows that
        have joined (the same numbers: a row with no edit yet is its prompt's intact row)."""
        n_layers, start = self.model.n_layers, self.start
        intact = self.intact()
        joined = torch.searchsorted(enter, torch.arange(start, n_layers + 1, device=enter.device), right=True).tolist()
        trig = None if self.trig is None else tuple(t[index][:, 0] for t in self.trig)
        x = intact[0][index[: joined[0]]]
        for layer in range(start, n_layers + 1):
            m = joined[layer - start]
            if m > x.shape[0]:
                x = torch.cat([x, intact[layer - start][index[x.shape[0] : m]]])
            for edit in edits:
                if edit.layer == layer:
                    rows = edit if edit.vector.ndim == 1 else StreamEdit(edit.layer, edit.vector[:m], edit.position,
                                                                         edit.mode)
                    x = _edit_columns(x, rows, None, 1)
            if streams is not None:
                streams.append(torch.cat([x, intact[layer - start][index[m:]]]))
            if layer < n_layers:
                x = self._block(layer, x, None if trig is None else tuple(t[:m] for t in trig), index[:m], 1, None,
                                None)
        return self._logits(x, return_resid)


def _bias(real: Bool[Tensor, "n K"], position: Int[Tensor, "n K"], query_cols: Int[Tensor, " S"], window: int | None,
          dtype: torch.dtype) -> Float[Tensor, "n 1 S K"]:
    """The additive attention mask of queries at columns ``query_cols`` over key columns ``0 … K-1``: ``-inf`` where a
    key is padding, after the query (causal) or ``window`` positions or more before it; a query always sees itself
    (a padded query too: it is never read, but a row with no key would be NaN)."""
    cols = torch.arange(real.shape[1], device=real.device)
    itself = cols[None, None, :] == query_cols[None, :, None]  # [1, S, K]
    keep = real[:, None, :] & (cols[None, None, :] <= query_cols[None, :, None])  # [n, S, K]
    if window is not None:
        distance = position[:, query_cols, None] - position[:, None, :]
        keep = keep & (distance < window)
    keep = keep | itself
    return torch.zeros(keep.shape, dtype=dtype, device=real.device).masked_fill(~keep, float("-inf"))[:, None]


class _Rotary:
    """Rotary position embedding of the first ``rotary_dim`` dimensions of each head (halves or adjacent pairs).

    ``rotate(x) = x ⊙ cos θ + (x P) ⊙ sin θ``, with ``P`` the signed permutation that turns each pair
    (``(x₁, x₂) → (−x₂, x₁)``) and ``cos θ = 1``, ``sin θ = 0`` beyond ``rotary_dim``: ``x P`` moves entries and
    flips signs only, so this is the model's rotation to the bit. The angles are computed the way the model
    computes them (``Capabilities.rotary_in_model_dtype``: float32 in Hugging Face's modules, float64 in a TL 3.x
    float64 model), so the cached path matches the model to rounding."""

    def __init__(self, caps: Any, d_head: int, dtype: torch.dtype) -> None:
        self.dim, self.d_head = int(caps.rotary_dim or d_head), d_head
        self.interleaved = caps.rotary_interleaved
        precision = torch.float64 if (caps.rotary_in_model_dtype and dtype == torch.float64) else torch.float32
        self.inv_freq = 1.0 / (caps.rotary_base ** (torch.arange(0, self.dim, 2, dtype=torch.int64)
                                                    .to(precision) / self.dim))
        self.dtype = dtype
        turn = torch.zeros(d_head, d_head, dtype=dtype)  # x @ turn: the turned pairs, 0 beyond rotary_dim
        pairs = [(i, i + 1) for i in range(0, self.dim, 2)] if self.interleaved else \
            [(i, i + self.dim // 2) for i in range(self.dim // 2)]
        for a, b in pairs:
            turn[b, a], turn[a, b] = -1.0, 1.0  # (x_a, x_b) → (−x_b, x_a)
        self.turn = turn

    def tables(self, position: Int[Tensor, "*rows"]) -> tuple[Tensor, Tensor]:
        """``cos θ, sin θ [*rows, 1, d_head]`` of the angles at ``position`` (in the model's dtype), laid out for
        :meth:`rotate` (each frequency twice, as halves or adjacent pairs; 1 and 0 beyond ``rotary_dim``)."""
        angles = position.to(self.inv_freq.dtype)[..., None] * self.inv_freq.to(position.device)  # [..., r/2]
        cos, sin = angles.cos().to(self.dtype)[..., None, :], angles.sin().to(self.dtype)[..., None, :]
        if self.interleaved:
            cos, sin = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
        else:
            cos, sin = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
        rest = self.d_head - self.dim
        if rest:
            cos = torch.cat([cos, cos.new_ones(*cos.shape[:-1], rest)], -1)
            sin = torch.cat([sin, sin.new_zeros(*sin.shape[:-1], rest)], -1)
        return cos, sin

    def rotate(self, x: Float[Tensor, "*rows heads d_head"], cos: Tensor, sin: Tensor) -> Tensor:
        """``x`` rotated by the angles of :meth:`tables`."""
        return x * cos + (x @ self.turn.to(x.device)) * sin


def _block_weights(model: HookedModel) -> dict[str, Any]:
    """TransformerLens-layout weights arranged for the block: fused q/k/v, grouped K/V heads expanded,
    norm weights with their offset, Gemma-2's sandwich norms."""
    w = dict(model.tl_state_dict(clone=False))
    caps, heads, d_head, d = model.capabilities, model.n_heads, model.d_head, model.d_model
    out: dict[str, Any] = {}
    for name, value in w.items():
        if name.endswith(".w") and (".ln" in name or name.startswith("ln_final")):
            value = value + caps.norm_offset
        out[name] = value
    for layer in range(model.n_layers):
        p = f"blocks.{layer}.attn"
        parts, biases = [], []
        for n in "QKV":
            weight = w.get(f"{p}.W_{n}", w.get(f"{p}._W_{n}"))
            bias = w.get(f"{p}.b_{n}", w.get(f"{p}._b_{n}"))
            if weight.shape[0] != heads:  # grouped-query attention: each K/V head serves a group of query heads
                weight = weight.repeat_interleave(heads // weight.shape[0], 0)
                bias = None if bias is None else bias.repeat_interleave(heads // bias.shape[0], 0)
            parts.append(weight.permute(1, 0, 2).reshape(d, heads * d_head))
            biases.append(torch.zeros(heads * d_head, dtype=weight.dtype, device=weight.device) if bias is None
                          else bias.reshape(heads * d_head))
        out[f"blocks.{layer}.qkv"] = (torch.cat(parts, 1), torch.cat(biases))
        bias_o = w.get(f"{p}.b_O")
        out[f"blocks.{layer}.o"] = (w[f"{p}.W_O"].reshape(heads * d_head, d),
                                    0 if bias_o is None else bias_o)
        if caps.post_norms:
            for i, tl in enumerate(("ln1_post", "ln2_post")):
                weight = w.get(f"blocks.{layer}.{tl}.w")
                if weight is None:  # a 4.x bridge keeps the sandwich norms in the Hugging Face modules
                    if caps.sandwich_norms is None:
                        raise ValueError(f"{caps.architecture}: sandwich norms without their module names; add "
                                         "them to its Family (tvlens.models.capabilities.FAMILIES)")
                    weight = model.hf_module(f"model.layers.{layer}.{caps.sandwich_norms[i]}").weight.detach()
                out[f"blocks.{layer}.{tl}.w"] = weight + caps.norm_offset
    return out


__all__ = ["PATHS", "OwnBlock", "QueryEngine", "StreamEdit", "ZEdit", "check_path", "choose_path"]
