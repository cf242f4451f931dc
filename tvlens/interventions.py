"""Put a vector into a model's residual stream — the one operation every task-vector method shares.

An :class:`Intervention` is a small frozen record: *which* vector, at *which* layer and hook
point, at *which* token positions, *how* (``add`` it to the activation or ``replace`` the
activation with it) and with what ``scale``. For an activation ``h`` at a selected position::

    add:      h ← h + scale · v
    replace:  h ← scale · v

:func:`inject` is a context manager: inside the ``with`` block every forward of the model
carries the interventions; on leaving it — normally, by an exception or by ``KeyboardInterrupt``
— the hooks are removed, always. Nothing leaks into the next forward.

Gradients flow from the model's output into the vector (learned task vectors train through
this), while the model's own parameters are never modified. Positions are resolved per
example and respect padding (see :mod:`tvlens.positions`).

Example::

    v = torch.randn(model.d_model)
    with tvlens.inject(model, tvlens.Intervention(v, layer=2)):
        logits = model(tokens)
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from tvlens.models.engine import StreamEdit
from tvlens.models.hooked import BLOCK_HOOKS, HookedModel, HookFn
from tvlens.positions import PositionSpec, check_position_spec, resolve_positions

Mode = Literal["add", "replace"]


@dataclass(frozen=True, eq=False)
class Intervention:
    """One vector put into the residual stream at one layer.

    Attributes:
        vector: ``[d_model]`` (the same vector for every example) or ``[batch, d_model]``
            (one row per example of the batch it is used with).
        layer: block index (negative counts from the end).
        positions: where in each prompt (see :mod:`tvlens.positions`); default ``"last"``.
        hook: hook point within the block: ``"resid_pre"`` (default), ``"attn_out"``,
            ``"resid_mid"``, ``"mlp_out"`` or ``"resid_post"``.
        mode: ``"add"`` or ``"replace"``.
        scale: multiplies the vector.

    Several layers are several interventions.
    """

    vector: Float[Tensor, "*batch d_model"]
    layer: int
    positions: PositionSpec = "last"
    hook: str = "resid_pre"
    mode: Mode = "add"
    scale: float = 1.0

    def __post_init__(self) -> None:
        v = self.vector
        if not isinstance(v, Tensor):
            raise TypeError(f"vector: expected a torch.Tensor, got {type(v).__name__}")
        if not v.is_floating_point():
            raise TypeError(f"vector: expected a floating-point tensor, got dtype {v.dtype}")
        if v.ndim not in (1, 2):
            raise ValueError(f"vector has shape {tuple(v.shape)}: expected [d_model] or [batch, d_model]")
        if v.device.type != "meta" and not bool(torch.isfinite(v.detach()).all()):
            raise ValueError("vector contains NaN or inf values; expected finite values")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool):
            raise TypeError(f"layer={self.layer!r}: expected an int")
        object.__setattr__(self, "positions", check_position_spec(self.positions))
        if self.hook not in BLOCK_HOOKS:
            raise ValueError(f"hook={self.hook!r}: expected one of {BLOCK_HOOKS}")
        if self.mode not in ("add", "replace"):
            raise ValueError(f"mode={self.mode!r}: expected 'add' or 'replace'")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale):
            raise ValueError(f"scale={self.scale!r}: expected a finite number")
        if v.device.type != "meta" and not bool(torch.isfinite(v.detach() * self.scale).all()):
            raise ValueError(f"scale={self.scale!r} overflows {v.dtype}: scale · vector is not finite "
                             f"(max |vector| = {v.detach().abs().max().item():.3g}); expected a smaller scale")

    @property
    def per_example(self) -> bool:
        """Whether the vector has one row per example."""
        return self.vector.ndim == 2

    def select(self, rows: slice | Tensor) -> Intervention:
        """The intervention for a sub-batch: per-example vectors and positions keep only ``rows``."""
        changes: dict[str, Any] = {}
        if self.per_example:
            changes["vector"] = self.vector[rows]
        if isinstance(self.positions, Tensor):
            changes["positions"] = self.positions[rows]
        return replace(self, **changes) if changes else self

    def values_at(self, rows: Int[Tensor, " k"]) -> Float[Tensor, "k d_model"]:
        """``scale · v`` for each of ``rows`` of the batch (a per-example vector's own row, else the one vector)."""
        values = self.vector[rows] if self.per_example else self.vector.expand(rows.shape[0], self.vector.shape[-1])
        return values * self.scale if self.scale != 1 else values

    def validate_for(self, model: HookedModel) -> None:
        """Check layer range, width, dtype and device against ``model``; raise a clear error if they do not fit."""
        model.check_layer(self.layer, "layer")
        if self.vector.shape[-1] != model.d_model:
            raise ValueError(
                f"vector has shape {tuple(self.vector.shape)}: its last dimension must be the model's "
                f"d_model={model.d_model}"
            )
        if self.vector.dtype != model.dtype:
            raise TypeError(
                f"vector has dtype {self.vector.dtype} but the model computes in {model.dtype}; "
                f"convert it with vector.to({model.dtype})"
            )
        if self.vector.device != model.device:
            raise ValueError(
                f"vector is on device {self.vector.device} but the model is on {model.device}; "
                f"move it with vector.to({str(model.device)!r})"
            )


def as_hooked(model: HookedModel | nn.Module) -> HookedModel:
    """A :class:`HookedModel` view of ``model`` (returned unchanged if it already is one)."""
    if isinstance(model, HookedModel):
        return model
    if hasattr(model, "hook_dict") and hasattr(model, "cfg"):
        return HookedModel(model, freeze=False)
    raise TypeError(
        f"model: expected a tvlens HookedModel, a TransformerBridge or a HookedTransformer, got {type(model).__name__}"
    )


def flatten_interventions(items: Iterable[Any]) -> list[Intervention]:
    """Accept interventions, iterables of them, or objects with ``.interventions()`` (e.g. a TaskVector)."""
    out: list[Intervention] = []
    for item in items:
        if isinstance(item, Intervention):
            out.append(item)
        elif hasattr(item, "interventions"):
            out.extend(flatten_interventions(item.interventions()))
        elif isinstance(item, Iterable) and not isinstance(item, (Tensor, str)):
            out.extend(flatten_interventions(item))
        else:
            raise TypeError(f"expected an Intervention (or a list of them), got {type(item).__name__}")
    return out


def check_provenance(model: HookedModel, items: Iterable[Any], task: Any = None) -> None:
    """Warn when a task vector among ``items`` was made on another model (its fingerprint differs) or,
    given ``task``, for another task (its recorded ``task`` differs from ``task.to_dict()``).

    Plain :class:`Intervention` objects carry no provenance and pass silently."""
    for item in items:
        if hasattr(item, "check_model") and hasattr(item, "interventions"):
            item.check_model(model, strict=False)
            made_for = getattr(item, "task", None)
            if task is not None and made_for is not None and hasattr(task, "to_dict"):
                scored = task.to_dict()
                # another family, or another task of one family; a shifted variant of a continuous family
                # (the regression studies' skewed inputs, noisy labels) is a deliberate test, not a slip
                if (made_for.get("family"), made_for.get("fixed")) != (scored.get("family"), scored.get("fixed")):
                    warnings.warn(f"this task vector was made for the task {made_for} but is scored on {scored}",
                                  stacklevel=3)
        elif isinstance(item, Iterable) and not isinstance(item, (Tensor, str, Intervention)):
            check_provenance(model, item, task)


def position_resolver(model: HookedModel, positions: PositionSpec) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``resolve(act) → (batch_index, position_index)`` for the forward now running (its attention mask).

    Positions depend only on the activation's shape and the mask, so they are resolved once per
    forward shape and reused by every later call with the same shape and mask.
    """
    memo: dict[str, Any] = {}

    def resolve(act: Tensor) -> tuple[Tensor, Tensor]:
        batch, seq_len = act.shape[0], act.shape[1]
        mask = model.current_attention_mask
        key = (batch, seq_len, id(mask))
        if memo.get("key") != key or memo.get("mask") is not mask:
            memo.update(key=key, mask=mask, index=resolve_positions(positions, batch, seq_len, mask, act.device))
        return memo["index"]

    return resolve


def _make_hook(model: HookedModel, intervention: Intervention):
    """A TransformerLens hook function that applies ``intervention`` to an activation ``[batch, pos, d_model]``."""
    vector, mode = intervention.vector, intervention.mode
    resolve = position_resolver(model, intervention.positions)

    def hook_fn(act: Tensor, hook: Any) -> Tensor:
        batch = act.shape[0]
        b_idx, p_idx = resolve(act)
        if vector.ndim == 2 and vector.shape[0] != batch:
            raise ValueError(f"vector has {vector.shape[0]} rows (one per example) but the batch has {batch} examples")
        # Out-of-place index_put keeps autograd to both the activation and the vector.
        return act.index_put((b_idx, p_idx), intervention.values_at(b_idx), accumulate=(mode == "add"))

    return hook_fn


@contextlib.contextmanager
def inject(
    model: HookedModel | nn.Module, *interventions: Intervention | Iterable[Intervention]
) -> Iterator[HookedModel]:
    """Run the model with vectors put into its residual stream, for the duration of a ``with`` block.

    Args:
        model: a :class:`HookedModel` (or a raw TransformerLens model, wrapped on the fly).
        *interventions: :class:`Intervention` objects, lists of them, or objects with an
            ``interventions()`` method. Several on one hook point apply in the order given.

    Yields:
        The :class:`HookedModel`; call it (or the wrapped TL model) inside the block.

    Raises:
        ValueError: before anything is attached, when an intervention does not fit the model
            (layer out of range, wrong width or device).
        TypeError: before anything is attached, when an intervention's dtype is not the model's.
    """
    hooked = as_hooked(model)
    flat = flatten_interventions(interventions)
    check_provenance(hooked, interventions)
    for intervention in flat:
        intervention.validate_for(hooked)
    fwd_hooks = [(hooked.hook_name(iv.layer, iv.hook), _make_hook(hooked, iv)) for iv in flat]
    with hooked.hooks(fwd_hooks):
        yield hooked


def engine_edits(
    model: HookedModel, *interventions: Intervention | Iterable[Intervention]
) -> tuple[list[StreamEdit], list[tuple[str, HookFn]]]:
    """The interventions as the query engine takes them: stream edits where one expresses them, hooks otherwise.

    An intervention on ``resid_pre`` of layer ``l`` (or ``resid_post`` of ``l``, the same stream as
    ``resid_pre`` of ``l + 1``) at one position per prompt (``"last"`` or an int) becomes a
    :class:`~tvlens.models.engine.StreamEdit` (scale applied). Any other — another hook point, several
    positions, per-example position tensors — stays a TransformerLens hook, which makes the engine
    run the full forward.
    """
    flat = flatten_interventions(interventions)
    for intervention in flat:
        intervention.validate_for(model)
    edits, hooks = [], []
    for iv in flat:
        layer = iv.layer % model.n_layers
        single = iv.positions == "last" or (isinstance(iv.positions, int) and not isinstance(iv.positions, bool))
        if single and iv.hook in ("resid_pre", "resid_post"):
            vector = iv.vector * iv.scale if iv.scale != 1 else iv.vector
            edits.append(StreamEdit(layer + (iv.hook == "resid_post"), vector, iv.positions, iv.mode))
        else:
            hooks.append((model.hook_name(layer, iv.hook), _make_hook(model, iv)))
    return edits, hooks


def injected_forward(
    model: HookedModel,
    inputs: Tensor,
    interventions: Iterable[Intervention] = (),
    *,
    attention_mask: Tensor | None = None,
) -> Float[Tensor, "batch pos d_vocab"]:
    """``model(inputs)`` with ``interventions`` applied: the functional form of :func:`inject`."""
    with inject(model, *interventions):
        return model(inputs, attention_mask=attention_mask)


def query_position_ids(n: int, seq_len: int, attention_mask: Int[Tensor, "n seq_len"] | None = None
                       ) -> Int[Tensor, " n"]:
    """The position of each prompt's query (its last real token), counted from its first real token."""
    if attention_mask is None:
        return torch.full((n,), seq_len - 1, dtype=torch.long)
    return attention_mask.long().sum(-1).cpu() - 1


def position_shift(model: HookedModel, n: int, seq_len: int, attention_mask: Int[Tensor, "n seq_len"] | None,
                   query_at: int | Int[Tensor, " n"]) -> list[Intervention]:
    """Interventions that move every prompt so that its query (last real token) sits at position ``query_at``
    (an int, or one per prompt): on a model with learned absolute positions, the prompt's ``k``-th token from the
    end gets ``W_pos[query_at − k] − W_pos[own position]`` added to the stream entering block 0, which is exactly
    the prompt run at the later positions (positions enter nowhere else). A model without them (rotary, none)
    sees only relative positions: nothing to move (``[]``).

    This is what a patch from another prompt needs on learned absolute positions: a state taken at the ICL
    prompt's query position carries that position's embedding, so the zero-shot prompt it is put into (and its
    baseline) is moved to the same position (Hendel et al.'s replacement, position-matched).

    Raises:
        ValueError: ``query_at`` before a prompt's own length, or beyond the model's context (one line).
    """
    if not model.capabilities.learned_positions:
        return []
    lengths = query_position_ids(n, seq_len, attention_mask) + 1
    target = torch.as_tensor(query_at, dtype=torch.long).cpu().expand(n)
    if bool((target < lengths - 1).any()) or int(target.max()) >= model.cfg.n_ctx:
        raise ValueError(f"query_at={query_at if isinstance(query_at, int) else target.tolist()!r}: expected "
                         f"positions from the prompts' own query position ({int(lengths.max()) - 1}) to the model's "
                         f"last ({model.cfg.n_ctx - 1})")
    W_pos = model.W_pos.detach()
    lengths, target = lengths.to(W_pos.device), target.to(W_pos.device)
    shift = target - (lengths - 1)
    moves = []
    for k in range(int(lengths.max())):  # the k-th real token from the end of each prompt
        exists = lengths > k
        own = (lengths - 1 - k).clamp(min=0)
        delta = (W_pos[(own + shift).clamp(max=model.cfg.n_ctx - 1)] - W_pos[own]) * exists[:, None].to(W_pos.dtype)
        if bool(exists.all()) and bool((shift == shift[0]).all()):  # one column for every prompt: a stream edit
            moves.append(Intervention(delta[0], layer=0, positions=-1 - k))
        else:  # prompts of other lengths: this column of each (0 where a prompt is shorter, so nothing moves)
            moves.append(Intervention(delta, layer=0, positions=own))
    return moves


__all__ = ["Intervention", "as_hooked", "check_provenance", "engine_edits", "flatten_interventions", "inject",
           "injected_forward", "position_resolver", "position_shift", "query_position_ids"]
