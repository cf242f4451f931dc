"""Generate text with vectors in the residual stream: greedy or sampled, batched, KV-cached.

Function vectors are judged on what the model *writes* (Todd et al. 2024 score generated strings), and a
steering vector is used while generating. :func:`generate` continues each prompt token by token with
:class:`~tvlens.interventions.Intervention` objects (or task vectors) in the stream, and says *when* they
apply:

* ``when="prompt"`` — on the prompt only, at the intervention's positions read on the prompt (``"last"``: the
  prompt's last token). The new tokens carry no vector, but they attend to the keys and values the edited
  prompt left. This is how a task vector is scored (Hendel et al.; Todd et al.).
* ``when="new"`` — on every generated token as it is read back to predict the next (the positions must be
  ``"last"``: each step's new column). The first new token is predicted from the prompt alone.
* ``when="all"`` — both: the prompt at the intervention's positions, and every generated token.

Example (steer a model's continuation with a learned vector)::

    tv = tvlens.vectors.learn_task_vector(model, task, layer=2)[0]
    out = tvlens.generate(model, batch.inputs, tv, attention_mask=batch.attention_mask, max_new_tokens=5)
    out.tokens               # [batch, 5] the new tokens
    out.probabilities(7)     # [batch, 5] the probability token 7 had at each step

**Paths.** ``path="cached"`` runs the prompt once through tvlens' own block and then one column per new token
against each layer's kept keys and values (:class:`~tvlens.models.decoder.KVDecoder`); ``path="full"``
recomputes the whole sequence with TransformerLens hooks at every step (on every model, any hook point).
``"auto"`` takes the cached path wherever the query engine's block reproduces the model and every
intervention is on the residual stream (``resid_pre``/``resid_post``), like the query engine
(:func:`~tvlens.models.engine.choose_path`). Both give the same tokens (tested token for token in float64).

**Batches.** Prompts of different lengths are left padded (``attention_mask``, 1 = real token; a list of
strings is tokenised and left padded here); each row then generates what it would alone. Sampling draws from
one seeded generator on the CPU, so a seed gives the same tokens on both paths.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tvlens._checks import check_int
from tvlens.interventions import Intervention, as_hooked, check_provenance, flatten_interventions
from tvlens.models.decoder import ColumnEdit, KVDecoder
from tvlens.models.engine import check_path, choose_path
from tvlens.models.hooked import HookedModel
from tvlens.positions import resolve_positions
from tvlens.tasks.text import left_pad

WHEN = ("prompt", "new", "all")
#: The hook points the cached path runs an intervention at (the residual stream): the rest run on the full path.
STREAM_HOOKS = ("resid_pre", "resid_post")


@dataclass(frozen=True, eq=False)
class Generation:
    """What :func:`generate` wrote.

    Attributes:
        tokens: ``[batch, new]`` the generated token ids (after an ``eos_token_id``: that id again).
        logits: ``[batch, new, d_vocab]`` the logits each new token was chosen from.
        prompts: ``[batch, pos]`` the prompts (left padded).
        attention_mask: ``[batch, pos]`` their mask (``None``: no padding).
        path: ``"cached"`` or ``"full"``; reason: why the full path ran (empty on the cached one).
        text: the decoded new tokens of each row (``None`` without a tokenizer).
    """

    tokens: Int[Tensor, "batch new"]
    logits: Float[Tensor, "batch new d_vocab"]
    prompts: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"] | None
    path: str
    reason: str
    text: list[str] | None = None

    def probabilities(self, token: int | Int[Tensor, " batch"]) -> Float[Tensor, "batch new"]:
        """The probability ``token`` (one id, or one per row) had at each generated position."""
        probs = self.logits.to(torch.promote_types(self.logits.dtype, torch.float32)).softmax(-1)
        index = torch.as_tensor(token, device=probs.device).expand(probs.shape[0])
        return probs.gather(-1, index[:, None, None].expand(-1, probs.shape[1], 1))[..., 0]

    @property
    def sequences(self) -> Int[Tensor, "batch total"]:
        """Prompts and new tokens, one row each (left padding kept)."""
        return torch.cat([self.prompts, self.tokens.to(self.prompts.device)], 1)


def generate(
    model: HookedModel | Any,
    prompts: Int[Tensor, "batch pos"] | Sequence[str] | str,
    interventions: Intervention | Iterable[Any] | Any = (),
    *,
    max_new_tokens: int = 10,
    when: str = "prompt",
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    eos_token_id: int | None = None,
    path: str = "auto",
) -> Generation:
    """Continue each prompt by ``max_new_tokens`` tokens with ``interventions`` in the stream.

    Args:
        model: a :class:`~tvlens.models.HookedModel` (or a TransformerLens model, wrapped) of tokens.
        prompts: token ids ``[batch, pos]`` (left padded, with ``attention_mask``), or text (one string or a
            list: tokenised with the model's tokenizer and left padded).
        interventions: :class:`~tvlens.interventions.Intervention` objects, task vectors, or lists of them.
        max_new_tokens: tokens to generate (at least 1; the prompt plus them must fit a model with learned
            positions).
        when: ``"prompt"``, ``"new"`` or ``"all"`` (module docstring).
        temperature: ``0``: greedy; above: sampling from ``softmax(logits / temperature)`` seeded by ``seed``.
        eos_token_id: a row that writes it writes it again until the others finish; all finished: stop.
        path: ``"auto"``, ``"cached"`` (an error where it is not exact) or ``"full"``.

    Returns:
        A :class:`Generation`.

    Raises:
        ValueError: a bad argument, before any forward (one line naming it, its value and what was expected).
    """
    if when not in WHEN:
        raise ValueError(f"when={when!r}: expected one of {WHEN}")
    check_int("max_new_tokens", max_new_tokens, 1)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"temperature={temperature!r}: expected a finite number >= 0 (0: greedy)")
    check_int("seed", seed, 0)
    check_path(path)
    hooked = as_hooked(model)
    if hooked.d_input is not None:
        raise ValueError("model: a regression model predicts numbers, not tokens; expected a token model")
    inputs, mask = _prompts(hooked, prompts, attention_mask)
    n, width = inputs.shape
    if eos_token_id is not None:
        check_int("eos_token_id", eos_token_id, 0)
        if eos_token_id >= hooked.d_vocab:
            raise ValueError(f"eos_token_id={eos_token_id}: expected an id below d_vocab={hooked.d_vocab}")
    longest = width if mask is None else int(mask.sum(1).max())
    if hooked.capabilities.learned_positions and longest + max_new_tokens > hooked.cfg.n_ctx:
        raise ValueError(f"max_new_tokens={max_new_tokens}: the longest prompt ({longest} tokens) plus the new "
                         f"tokens exceed the model's n_ctx={hooked.cfg.n_ctx}; expected at most "
                         f"{hooked.cfg.n_ctx - longest}")
    flat = flatten_interventions([interventions])
    check_provenance(hooked, [interventions])
    for iv in flat:
        iv.validate_for(hooked)
        if iv.per_example and iv.vector.shape[0] != n:
            raise ValueError(f"interventions: a vector has {iv.vector.shape[0]} rows (one per prompt); expected {n}")
        if when == "new" and not (isinstance(iv.positions, str) and iv.positions == "last"):
            raise ValueError(f"positions={iv.positions!r} with when='new': a new token is its step's only column; "
                             "expected 'last' (or when='all' for positions on the prompt)")
    # the prompt's columns of each intervention, read on the prompt (its meaning during the whole generation)
    prompt_cols = [resolve_positions(iv.positions, n, width, mask, hooked.device) if when != "new" else None
                   for iv in flat]
    chosen, reason = choose_path(hooked, mask, path, hooks=any(iv.hook not in STREAM_HOOKS for iv in flat))
    run = _cached if chosen == "cached" else _full
    generator = torch.Generator().manual_seed(seed)

    def pick(logits: Tensor) -> Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        probs = (logits.detach().double().cpu() / temperature).softmax(-1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0].to(logits.device)

    tokens, logits = run(hooked, inputs, mask, flat, prompt_cols, when, max_new_tokens, pick, eos_token_id)
    text = None
    tokenizer = getattr(hooked, "tokenizer", None)
    if tokenizer is not None:
        text = [tokenizer.decode(row, skip_special_tokens=True) for row in tokens.tolist()]
    return Generation(tokens, logits, inputs, mask, chosen, reason, text)


def _prompts(model: HookedModel, prompts: Any, attention_mask: Tensor | None
             ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"] | None]:
    """The prompts as left-padded token ids and their mask (``None`` when nothing is padded)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, Tensor):
        if prompts.is_floating_point() or prompts.ndim != 2 or prompts.shape[1] == 0:
            raise ValueError(f"prompts of shape {tuple(prompts.shape)} and dtype {prompts.dtype}: expected token ids "
                             "[batch, pos] (pos >= 1)")
        inputs = prompts.to(model.device)
        if attention_mask is not None:
            if tuple(attention_mask.shape) != tuple(prompts.shape):
                raise ValueError(f"attention_mask of shape {tuple(attention_mask.shape)}: expected the prompts' shape "
                                 f"{tuple(prompts.shape)}")
            attention_mask = attention_mask.to(model.device).long()
            if not bool(attention_mask[:, -1].bool().all()):
                raise ValueError("attention_mask: some prompt does not end in the last column; expected left padding "
                                 "(generation appends to the right)")
            if bool(attention_mask.bool().all()):
                attention_mask = None
        return inputs, attention_mask
    if not isinstance(prompts, Sequence) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts: expected token ids [batch, pos], a string or a list of strings; got "
                        f"{type(prompts).__name__}")
    if attention_mask is not None:
        raise ValueError("attention_mask: text prompts are padded here; expected None")
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("prompts: text needs the model's tokenizer, and this model has none; expected token ids")
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if min(map(len, ids)) == 0:
        raise ValueError(f"prompts: {prompts[[len(i) for i in ids].index(0)]!r} has no tokens; expected text")
    inputs, mask = left_pad(ids, tokenizer)
    return inputs.to(model.device), None if bool(mask.all()) else mask.to(model.device)


def _stream_layer(model: HookedModel, iv: Intervention) -> int:
    """The stream an intervention on ``resid_pre``/``resid_post`` changes (the stream entering that block)."""
    return iv.layer % model.n_layers + (iv.hook == "resid_post")


def _cached(model: HookedModel, inputs: Tensor, mask: Tensor | None, flat: list[Intervention],
            prompt_cols: list[Any], when: str, max_new: int, pick: Any, eos: int | None) -> tuple[Tensor, Tensor]:
    """Generation on the KV-cached decoder: the prompt once, then one column per new token."""
    n = inputs.shape[0]
    decoder = KVDecoder(model, inputs.shape[1] + max_new)
    every = torch.arange(n, device=model.device)
    prompt_edits = [] if when == "new" else [
        ColumnEdit(_stream_layer(model, iv), rows, cols, iv.values_at(rows), iv.mode)
        for iv, (rows, cols) in zip(flat, prompt_cols)]
    new_edits = [] if when == "prompt" else [
        ColumnEdit(_stream_layer(model, iv), every, None, iv.values_at(every), iv.mode) for iv in flat]
    logits = decoder.prefill(inputs, mask, prompt_edits)
    return _loop(logits, lambda token: decoder.step(token, new_edits), max_new, pick, eos)


def _full(model: HookedModel, inputs: Tensor, mask: Tensor | None, flat: list[Intervention],
          prompt_cols: list[Any], when: str, max_new: int, pick: Any, eos: int | None) -> tuple[Tensor, Tensor]:
    """Generation by recomputing the whole sequence at every step, the interventions as TransformerLens hooks at
    fixed columns (the prompt's, and each new token's)."""
    n, width = inputs.shape
    sequence, full_mask = inputs, mask

    def hook_for(iv: Intervention, rows: Tensor, cols: Tensor) -> Any:
        values = iv.values_at(rows)

        def hook(act: Tensor, hook: Any) -> Tensor:
            return act.index_put((rows, cols), values.to(act.dtype), accumulate=iv.mode == "add")
        return hook

    def forward() -> Tensor:
        hooks = []
        new = sequence.shape[1] - width  # new tokens already fed back
        for iv, cols in zip(flat, prompt_cols):
            name = model.hook_name(iv.layer, iv.hook)
            if when != "new":
                hooks.append((name, hook_for(iv, *cols)))
            if when != "prompt" and new:
                rows = torch.arange(n, device=model.device).repeat_interleave(new)
                columns = torch.arange(width, width + new, device=model.device).repeat(n)
                hooks.append((name, hook_for(iv, rows, columns)))
        with torch.no_grad():
            return model(sequence, attention_mask=full_mask, hooks=hooks)[:, -1]

    def step(token: Tensor) -> Tensor:
        nonlocal sequence, full_mask
        sequence = torch.cat([sequence, token[:, None]], 1)
        if full_mask is not None:
            full_mask = torch.cat([full_mask, torch.ones_like(full_mask[:, :1])], 1)
        return forward()

    return _loop(forward(), step, max_new, pick, eos)


def _loop(logits: Tensor, step: Any, max_new: int, pick: Any, eos: int | None) -> tuple[Tensor, Tensor]:
    """Pick a token from ``logits``, feed it back with ``step``, ``max_new`` times (or until every row wrote
    ``eos``): the tokens ``[n, new]`` and the logits they were picked from ``[n, new, d_vocab]``."""
    tokens, kept = [], []
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    for i in range(max_new):
        token = pick(logits)
        if eos is not None:
            token = torch.where(done, torch.full_like(token, eos), token)
            done = done | (token == eos)
        tokens.append(token)
        kept.append(logits)
        if i == max_new - 1 or bool(done.all()):
            break
        logits = step(token)
    return torch.stack(tokens, 1), torch.stack(kept, 1)


__all__ = ["STREAM_HOOKS", "WHEN", "Generation", "generate"]
