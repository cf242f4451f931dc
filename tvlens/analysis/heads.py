"""Which heads carry an injected vector to the answer: saliency, exact ablation, key heads.

For θ injected at layer ``l``, every head ``(l', k)`` with ``l' ≥ l`` may pass it on. Write
``a^{l'}_{N,k}`` for the head's output at the query ``N`` and ``J`` for the objective — ``log p(y)``
of the answer (regression: ``−(ŷ − y)²``). Then:

* **saliency** (Yang et al. 2025a; first-order Taylor): ``s_{l',k} = |a^{l'}_{N,k} · ∂J / ∂a^{l'}_{N,k}|``, averaged
  over prompts, for all heads from one backward pass. Because ``a = z W_O``, the product equals
  ``z · ∂J/∂z`` at ``attn.hook_z``, which both TransformerLens lines expose.
* **exact ablation**: the change of ``J`` (and of accuracy) when the head's ``z`` at the query is
  set to zero or to its mean over the prompts — what the saliency approximates.
* **key heads**: the top fraction (default 10 %) by saliency. Ablating them is compared with
  ablating as many random heads that are not key heads (the control: a draw holding a key head would partly
  measure the key heads themselves), over ≥ 20 draws (Yang et al. 2025a: 83 → 51 % for key heads vs 78 % for random),
  with the key heads' layer histogram and their attention to the first token (an attention sink).

:func:`ablate_heads` is a context manager on the same hook path as :func:`tvlens.inject`
(:meth:`HookedModel.hooks`), so the two compose in one ``with`` statement. Scans and random
draws run many ablations as *rows* of one batch of the query engine
(:class:`~tvlens.models.engine.QueryEngine`), on its cached path wherever that is exact.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from tvlens._checks import check_int
from tvlens._records import Records, head_records
from tvlens.analysis.site import single_site
from tvlens.interventions import as_hooked, engine_edits, inject, position_resolver
from tvlens.models.engine import QueryEngine, check_path
from tvlens.models.hooked import HookedModel
from tvlens.positions import PositionSpec, at_columns, check_position_spec, resolve_positions
from tvlens.scoring import mean_and_stderr
from tvlens.tasks.base import ICLBatch, Task, check_base
from tvlens.tasks.splits import Splits
from tvlens.vectors.task_vector import TaskVector

AblationMode = Literal["zero", "mean"]
Head = tuple[int, int]


# ----------------------------------------------------------------------------- ablation hooks
def check_heads(model: HookedModel, heads: Iterable[Head]) -> list[Head]:
    """Validate ``(layer, head)`` pairs and return them with non-negative layers, sorted and unique."""
    out = set()
    for item in heads:
        if not (isinstance(item, Sequence) and len(item) == 2 and all(isinstance(i, int) for i in item)):
            raise TypeError(f"heads: expected (layer, head) pairs of ints, got {item!r}")
        layer, head = item
        layer = model.check_layer(layer, "heads layer")
        if not 0 <= head < model.n_heads:
            raise ValueError(f"heads: head {head} of layer {layer} is out of range; expected 0 <= head < "
                             f"{model.n_heads}")
        out.add((layer, head))
    return sorted(out)


def _check_mode(mode: str, means: Tensor | None, model: HookedModel) -> None:
    if mode not in ("zero", "mean"):
        raise ValueError(f"mode={mode!r}: expected 'zero' or 'mean'")
    if mode == "mean":
        expected = (model.n_layers, model.n_heads, model.d_head)
        if means is None:
            raise ValueError("mode='mean' needs means: the mean z of every head [n_layers, n_heads, d_head] "
                             "(see mean_head_activations)")
        if tuple(means.shape) != expected:
            raise ValueError(f"means has shape {tuple(means.shape)}; expected {expected}")


def _replace_heads(
    z: Float[Tensor, "rows n_heads d_head"], mask: Bool[Tensor, "rows n_heads"], means: Tensor | None
) -> Float[Tensor, "rows n_heads d_head"]:
    """``z`` with the masked heads set to zero (``means is None``) or to ``means [n_heads, d_head]``."""
    value = torch.zeros_like(z) if means is None else means.to(z.dtype).expand_as(z)
    return torch.where(mask[..., None], value, z)


def _ablation_hook(model: HookedModel, mask: Tensor, means: Tensor | None, positions: PositionSpec):
    """A hook on ``attn.hook_z`` ablating the heads in ``mask [1 or batch, n_heads]`` at ``positions``."""
    resolve = position_resolver(model, positions)

    def hook_fn(z: Tensor, hook: Any) -> Tensor:
        batch = z.shape[0]
        rows, cols = resolve(z)
        if mask.shape[0] not in (1, batch):
            raise ValueError(f"the ablation mask has {mask.shape[0]} rows but the batch has {batch} examples")
        row_mask = mask.to(z.device) if mask.shape[0] == 1 else mask.to(z.device)[rows]
        return z.index_put((rows, cols), _replace_heads(z[rows, cols], row_mask.expand(rows.shape[0], -1), means))

    return hook_fn


@contextlib.contextmanager
def ablate_heads(
    model: HookedModel,
    heads: Iterable[Head],
    mode: AblationMode = "zero",
    *,
    means: Float[Tensor, "n_layers n_heads d_head"] | None = None,
    positions: PositionSpec = "last",
) -> Iterator[HookedModel]:
    """Run the model with some heads' outputs ablated, for the duration of a ``with`` block.

    The head's attention result ``z`` (``attn.hook_z``) at ``positions`` is set to zero
    (``mode="zero"``) or to ``means[layer, head]`` (``mode="mean"``), so its output ``z W_O``
    becomes 0 or the mean output. Composes with :func:`tvlens.inject`::

        with tvlens.inject(model, tv), ablate_heads(model, [(2, 1), (3, 0)]):
            logits = model(tokens)

    Args:
        model: the model.
        heads: ``(layer, head)`` pairs.
        mode: ``"zero"`` or ``"mean"``.
        means: for ``"mean"``: every head's mean ``z`` (:func:`mean_head_activations`).
        positions: where to ablate (a position spec; default each prompt's last real token, the query).
    """
    hooked = as_hooked(model)
    heads = check_heads(hooked, heads)
    _check_mode(mode, means, hooked)
    positions = check_position_spec(positions)
    fwd_hooks = []
    for layer in sorted({layer for layer, _ in heads}):
        mask = torch.zeros(1, hooked.n_heads, dtype=torch.bool)
        mask[0, [h for lay, h in heads if lay == layer]] = True
        layer_means = means[layer] if mode == "mean" else None
        fwd_hooks.append((hooked.hook_name(layer, "attn.hook_z"), _ablation_hook(hooked, mask, layer_means, positions)))
    with hooked.hooks(fwd_hooks):
        yield hooked


def mean_head_activations(
    model: HookedModel,
    inputs: Tensor,
    *,
    attention_mask: Tensor | None = None,
    vector: TaskVector | None = None,
    positions: PositionSpec = "last",
) -> Float[Tensor, "n_layers n_heads d_head"]:
    """Every head's mean ``z`` at ``positions`` over the prompts (with ``vector`` injected if given)."""
    names = [model.hook_name(layer, "attn.hook_z") for layer in range(model.n_layers)]
    with torch.no_grad(), inject(model, *([] if vector is None else [vector])):
        cache = model.activations(inputs, names, attention_mask=attention_mask)
    rows, cols = resolve_positions(positions, inputs.shape[0], inputs.shape[1], attention_mask, model.device)
    return torch.stack([cache[n][rows, cols].mean(0) for n in names])


# ----------------------------------------------------------------------------- scoring
def _objective(logits: Float[Tensor, "rows d_vocab"], prompts: ICLBatch, copies: int) -> tuple[Tensor, Tensor]:
    """Per-row objective ``J`` (log p(y), or −(ŷ−y)²) and metric (accuracy, or squared error / D)."""
    targets = prompts.targets.to(logits.device).repeat(copies)
    metric = prompts.metric
    return metric.objective(logits, targets), metric.value(logits, targets, prompts.d_input).double()


def ablated_scores(
    model: HookedModel,
    prompts: ICLBatch,
    vector: TaskVector | None,
    masks: Bool[Tensor, "copies n_layers n_heads"],
    mode: AblationMode = "zero",
    *,
    means: Float[Tensor, "n_layers n_heads d_head"] | None = None,
    max_rows: int = 4096,
    path: str = "auto",
) -> tuple[Float[Tensor, "copies batch"], Float[Tensor, "copies batch"]]:
    """Objective and metric of every prompt under many head ablations, run as rows of a batch.

    Copy ``c`` ablates the heads where ``masks[c]`` is true, at each prompt's query, with
    ``vector`` injected. The copies run as rows of one :class:`~tvlens.models.engine.QueryEngine`:
    the intact model runs once, keeping its query stream and head results ``z`` at every layer, and
    each copy starts at its first ablated layer from there (a single-head scan then costs about half
    the layers on average); ``max_rows`` rows (copies × prompts) at a time.

    ``path`` is the engine's (``"auto"``, ``"cached"`` or ``"full"``, :func:`~tvlens.models.engine.choose_path`).

    Returns:
        ``(objective, metric)`` ``[copies, batch]``: ``log p(y)`` and accuracy (regression:
        ``−(ŷ−y)²`` and squared error / D).
    """
    check_path(path)
    _check_mode(mode, means, model)
    means = means if mode == "mean" else None
    if masks.ndim != 3 or tuple(masks.shape[1:]) != (model.n_layers, model.n_heads):
        raise ValueError(f"masks has shape {tuple(masks.shape)}; expected [copies, {model.n_layers}, {model.n_heads}]")
    masks = masks.bool().to(model.device)
    n_prompts, copies = len(prompts), masks.shape[0]
    per_chunk = max(1, max_rows // n_prompts)
    used = [layer for layer in range(model.n_layers) if bool(masks[:, layer].any())]
    edits, hooks = engine_edits(model, *([] if vector is None else [vector]))
    start = min([*used, *(min(e.layer, model.n_layers - 1) for e in edits), model.n_layers - 1])
    positions = list(dict.fromkeys(e.position for e in edits)) or ["last"]
    with torch.no_grad():
        engine = QueryEngine(model, prompts.inputs, prompts.attention_mask, start=start, positions=positions,
                             hooks=hooks, path=path)
        streams: list[Tensor] = []
        intact_z: dict[int, Tensor] = {}

        def keep_z(layer: int, z: Tensor) -> Tensor:
            intact_z[layer] = z
            return z

        j0, m0 = _objective(engine.run(edits, streams=streams, z_edit=keep_z), prompts, 1)
        objective, metric = j0.expand(copies, -1).clone(), m0.expand(copies, -1).clone()
        ablated = masks.flatten(2).any(-1)  # [copies, n_layers]
        first = torch.where(ablated.any(-1), ablated.float().argmax(-1), -1)
        for begin in sorted(set(first.tolist()) - {-1}):
            group = (first == begin).nonzero().flatten()
            for c0 in range(0, group.numel(), per_chunk):
                idx = group[c0:c0 + per_chunk]
                rows_mask = masks[idx].repeat_interleave(n_prompts, 0)  # copy-major rows [c·P, L, H]

                def z_edit(layer: int, z: Tensor, rows_mask: Tensor = rows_mask) -> Tensor:
                    if not bool(rows_mask[:, layer].any()):
                        return z
                    return _replace_heads(z, rows_mask[:, layer], None if means is None else means[layer])

                logits = engine.run(edits, copies=idx.numel(), z_edit=z_edit,
                                    resume=(begin, streams[begin - start], intact_z[begin]))
                j, m = _objective(logits, prompts, idx.numel())
                objective[idx] = j.view(idx.numel(), n_prompts)
                metric[idx] = m.view(idx.numel(), n_prompts)
    return objective.cpu(), metric.cpu()


def single_head_masks(model: HookedModel, layers: Iterable[int]) -> tuple[Tensor, list[Head]]:
    """One mask per head of ``layers``: copy ``i`` ablates exactly ``heads[i]``."""
    heads = [(layer, h) for layer in layers for h in range(model.n_heads)]
    masks = torch.zeros(len(heads), model.n_layers, model.n_heads, dtype=torch.bool)
    for i, (layer, h) in enumerate(heads):
        masks[i, layer, h] = True
    return masks, heads


@dataclass(frozen=True, eq=False)
class HeadScan(Records):
    """The exact effect of ablating each head alone.

    Attributes:
        delta: mean over prompts of ``J(ablated) − J(intact)`` ``[n_layers, n_heads]`` (NaN for
            heads not scanned); ``J`` is ``log p(y)`` (regression: ``−(ŷ − y)²``).
        metric: mean accuracy (regression: squared error / D) with the head ablated.
        base_objective, base_metric: the intact model's means (vector injected).
        mode: ``"zero"`` or ``"mean"``.
    """

    delta: Float[Tensor, "n_layers n_heads"]
    metric: Float[Tensor, "n_layers n_heads"]
    base_objective: float
    base_metric: float
    mode: str

    def to_records(self) -> list[dict[str, Any]]:
        """One row per scanned head: the change of the objective and the metric with the head ablated."""
        rows = head_records({"delta": self.delta, "metric": self.metric}, mode=self.mode)
        return [row for row in rows if row["delta"] == row["delta"]]  # heads not scanned are NaN


def ablation_scan(
    model: HookedModel,
    prompts: ICLBatch,
    vector: TaskVector | None = None,
    *,
    layers: Iterable[int] | None = None,
    mode: AblationMode = "zero",
    means: Float[Tensor, "n_layers n_heads d_head"] | None = None,
    method: Literal["batched", "loop"] = "batched",
    max_rows: int = 4096,
    path: str = "auto",
) -> HeadScan:
    """Ablate every head of ``layers`` (default: from the vector's layer on) alone, at each query.

    ``method="batched"`` runs the heads as rows (:func:`ablated_scores`); ``"loop"`` runs one
    forward per head with :func:`ablate_heads` — the way ``transformer_lens.patching`` iterates,
    kept as the reference the batched scan is checked against. ``path``: the batched scan's engine path.
    """
    check_path(path)
    if method not in ("batched", "loop"):
        raise ValueError(f"method={method!r}: expected 'batched' or 'loop'")
    first = min(vector.layers) if vector is not None else 0
    layers = list(range(first, model.n_layers)) if layers is None else [model.check_layer(k) for k in layers]
    _check_mode(mode, means, model)
    masks, heads = single_head_masks(model, layers)
    if method == "batched":  # copy 0 is the intact model, copy i + 1 ablates heads[i]
        none = torch.zeros(1, model.n_layers, model.n_heads, dtype=torch.bool)
        j, m = ablated_scores(model, prompts, vector, torch.cat([none, masks]), mode, means=means, max_rows=max_rows,
                              path=path)
    else:
        j_rows, m_rows = [], []
        inputs = prompts.inputs.to(model.device)
        for head in [None, *heads]:  # one full forward per head (and one intact)
            with torch.no_grad(), inject(model, *([] if vector is None else [vector])), \
                    ablate_heads(model, [] if head is None else [head], mode, means=means):
                logits = prompts.at_query(model(inputs, attention_mask=prompts.attention_mask))
            j1, m1 = _objective(logits, prompts, 1)
            j_rows.append(j1.cpu())
            m_rows.append(m1.cpu())
        j, m = torch.stack(j_rows), torch.stack(m_rows)
    base_j, base_m, j, m = j[:1], m[:1], j[1:], m[1:]
    delta = torch.full((model.n_layers, model.n_heads), float("nan"), dtype=torch.float64)
    metric = delta.clone()
    for i, (layer, h) in enumerate(heads):
        delta[layer, h] = (j[i] - base_j[0]).mean()
        metric[layer, h] = m[i].mean()
    return HeadScan(delta=delta, metric=metric, base_objective=float(base_j.mean()), base_metric=float(base_m.mean()),
                    mode=mode)


def head_saliency(
    model: HookedModel,
    prompts: ICLBatch,
    vector: TaskVector | None = None,
    *,
    layers: Iterable[int] | None = None,
    batch_size: int = 256,
) -> Float[Tensor, "n_layers n_heads"]:
    """Yang et al. 2025a's saliency ``|a_{N,k} · ∂J/∂a_{N,k}|`` of every head, averaged over prompts
    (NaN where not scored).

    One forward and one backward per ``batch_size`` prompts score all heads of ``layers``
    (default: from the vector's layer on) at once.
    """
    first = min(vector.layers) if vector is not None else 0
    layers = list(range(first, model.n_layers)) if layers is None else [model.check_layer(k) for k in layers]
    total = torch.zeros(model.n_layers, model.n_heads, dtype=torch.float64)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts.select(slice(start, start + batch_size))
        taps: dict[int, tuple[Tensor, Tensor]] = {}

        def make_tap(layer: int, taps: dict[int, tuple[Tensor, Tensor]] = taps):
            def tap(z: Tensor, hook: Any) -> Tensor:
                # z + 0 with a leaf for the zero: its gradient is ∂J/∂z, and z itself is kept for the product
                zero = torch.zeros_like(z, requires_grad=True)
                taps[layer] = (z.detach(), zero)
                return z + zero

            return tap

        hooks = [(model.hook_name(layer, "attn.hook_z"), make_tap(layer)) for layer in layers]
        with torch.enable_grad(), inject(model, *([] if vector is None else [vector])), model.hooks(hooks):
            logits = model(chunk.inputs.to(model.device), attention_mask=chunk.attention_mask)
            j, _ = _objective(chunk.at_query(logits), chunk, 1)
            grads = torch.autograd.grad(j.sum(), [taps[layer][1] for layer in layers])
        for layer, grad in zip(layers, grads):
            head_z = taps[layer][0]
            product = (chunk.at_query(head_z) * chunk.at_query(grad)).sum(-1).abs()  # [batch, heads]
            total[layer] += product.double().sum(0).cpu()
    saliency = total / len(prompts)
    saliency[[k for k in range(model.n_layers) if k not in layers]] = float("nan")
    return saliency


def top_heads(scores: Float[Tensor, "n_layers n_heads"], fraction: float = 0.1) -> list[Head]:
    """The top ``fraction`` of the scored (non-NaN) heads, at least one, highest first."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r}: expected 0 < fraction <= 1")
    valid = ~torch.isnan(scores)
    n = max(1, math.ceil(fraction * int(valid.sum())))
    flat = torch.where(valid, scores, torch.full_like(scores, -math.inf)).flatten()
    order = flat.argsort(descending=True)[:n]
    return [(int(i) // scores.shape[1], int(i) % scores.shape[1]) for i in order]


def _ranks(x: Tensor) -> Tensor:
    return x.argsort().argsort().double()


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two score tables over their jointly non-NaN entries."""
    keep = ~(torch.isnan(a) | torch.isnan(b))
    ra, rb = _ranks(a[keep]), _ranks(b[keep])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-30))


@dataclass(frozen=True, eq=False)
class KeyHeadResult(Records):
    """Saliency, exact ablation scans, key heads and the random-head control for one vector.

    Attributes:
        layer: the vector's layer (heads from here on are scored).
        saliency: ``[n_layers, n_heads]`` Yang et al. 2025a's saliency (NaN before ``layer``).
        scans: exact single-head ablation scans by mode (``"zero"``, ``"mean"``).
        key_heads: the top ``fraction`` by saliency.
        metric_name: ``"accuracy"`` or ``"mse_per_dim"``.
        zero_shot, injected, key_ablated: per-prompt metric without the vector, with it, and with
            it and the key heads ablated (``mode``).
        random: ``[n_random]`` mean metric per random draw of as many heads (from the same layers).
        random_heads: the heads of each draw.
        layer_histogram: ``[n_layers]`` number of key heads per layer.
        first_token_attention: ``[n_layers, n_heads]`` the query's attention to the first real token
            (injected run on the scoring prompts; NaN before ``layer``).
        mode, fraction, n_prompts, seed: the settings.
        selection, scoring: which prompts did what: the key heads (saliency, scans, mean ``z``) are chosen
            on ``selection`` and every ablation score is measured on ``scoring`` — each a short description
            of the prompt set (split and seed, or the half of a given batch).
    """

    layer: int
    saliency: Float[Tensor, "n_layers n_heads"]
    scans: dict[str, HeadScan]
    key_heads: list[Head]
    metric_name: str
    zero_shot: Float[Tensor, " batch"]
    injected: Float[Tensor, " batch"]
    key_ablated: Float[Tensor, " batch"]
    random: Float[Tensor, " n_random"]
    random_heads: list[list[Head]]
    layer_histogram: Float[Tensor, " n_layers"]
    first_token_attention: Float[Tensor, "n_layers n_heads"]
    mode: str
    fraction: float
    n_prompts: int
    seed: int
    selection: str = ""
    scoring: str = ""

    @property
    def random_mean(self) -> float:
        return float(self.random.double().mean())

    @property
    def random_stderr(self) -> float:
        """Standard error of the mean over the random draws."""
        return mean_and_stderr(self.random)[1]

    @property
    def saliency_agreement(self) -> float:
        """Spearman correlation of saliency with ``|Δ J|`` of the exact zero-ablation scan."""
        return spearman(self.saliency, self.scans["zero"].delta.abs())

    def key_first_token_attention(self) -> float:
        """Mean attention to the first token over the key heads."""
        return float(torch.stack([self.first_token_attention[h] for h in self.key_heads]).mean())

    def summary(self) -> dict[str, float]:
        """Headline numbers: the metric without vector, with it, with key heads / random heads ablated."""
        out = {}
        for name in ("zero_shot", "injected", "key_ablated"):
            out[name], out[f"{name}_stderr"] = mean_and_stderr(getattr(self, name))
        out["random_ablated"], out["random_ablated_stderr"] = self.random_mean, self.random_stderr
        out["n_key_heads"] = len(self.key_heads)
        out["saliency_agreement"] = self.saliency_agreement
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One row per head: saliency, whether it is a key head, its attention to the first token and its exact
        ablation effect."""
        key = set(self.key_heads)
        tables = {"saliency": self.saliency, "first_token_attention": self.first_token_attention}
        tables.update({f"delta_{mode}": scan.delta for mode, scan in self.scans.items()})
        return [{**row, "key": (row["layer"], row["head"]) in key} for row in head_records(tables)]


def key_head_analysis(
    model: HookedModel,
    task: Task,
    vector: TaskVector,
    *,
    fraction: float = 0.1,
    n_random: int = 20,
    mode: AblationMode = "zero",
    n_prompts: int = 128,
    n_shots: int | None = None,
    seed: int = 0,
    base: Literal["zero_shot", "icl"] = "zero_shot",
    batch: ICLBatch | None = None,
    protocol: Literal["disjoint", "same"] = "disjoint",
    path: str = "auto",
) -> KeyHeadResult:
    """Saliency and exact scans of every head after the vector's layer; key heads vs random heads.

    Heads are chosen on one prompt set and scored on another: a head picked for its effect on some
    prompts and then measured on the same prompts has its effect counted twice (selection bias), which
    can make key heads look special where they are not. ``protocol="same"`` selects and scores on the
    same prompts, as a comparison.

    Args:
        model: the model.
        task: the task (its prompts and targets).
        vector: a single-site ``add`` vector (e.g. an LTV).
        fraction: share of the scored heads that are key heads (at least one).
        n_random: random draws of as many heads (from the same layers) for the control (≥ 20).
        mode: ablation of the key/random heads: ``"zero"`` or ``"mean"`` (the mean ``z`` at the
            query over these prompts, vector injected). Both scans are always reported.
        n_prompts: prompts of each set (selection and scoring).
        n_shots: demonstrations per prompt.
        seed: the user seed (:class:`~tvlens.tasks.Splits`): heads are selected on its ``dev`` split and
            scored on its ``shared`` split (the prompts every analysis of the vector scores, e.g.
            :func:`~tvlens.analysis.ov_decomposition` with the same seed, ``n_prompts`` and ``n_shots``); it
            also seeds the random draws.
        batch: these prompts instead of sampled ones: the first half selects, the second half scores.
        base: inject into the zero-shot queries (TVP mode, default) or the n-shot prompts.
        protocol: ``"disjoint"`` (default) or ``"same"`` (select and score on the scoring prompts).
        path: the query engine's path for the scans and ablations: ``"auto"`` (cached wherever it is exact),
            ``"cached"`` or ``"full"``.
    """
    check_path(path)
    _, site = single_site(model, vector, "key_head_analysis")
    check_int("n_random", n_random, 20, "the control needs many draws")
    check_base(base)
    if protocol not in ("disjoint", "same"):
        raise ValueError(f"protocol={protocol!r}: expected 'disjoint' or 'same'")
    splits = Splits(seed)
    if batch is None:
        splits.check_made_with(vector, task)
        chosen_on = splits.sample(task, "dev", n_prompts, n_shots)
        batch = splits.sample(task, "shared", n_prompts, n_shots)
        selection, scoring = f"dev split (seed {splits.dev})", f"shared split (seed {splits.shared})"
    else:
        if len(batch) < 2:
            raise ValueError(f"batch has {len(batch)} prompt(s); expected at least 2 (half select, half score)")
        half = len(batch) // 2
        chosen_on, batch = batch.select(slice(0, half)), batch.select(slice(half, len(batch)))
        selection, scoring = f"the given batch's first {half} prompts", f"its last {len(batch)}"
    if protocol == "same":
        chosen_on, selection = batch, scoring
    prompts, selecting = batch.view(base), chosen_on.view(base)
    layers = list(range(site.layer, model.n_layers))
    inputs, attention = prompts.inputs.to(model.device), prompts.attention_mask

    means = mean_head_activations(model, selecting.inputs.to(model.device), attention_mask=selecting.attention_mask,
                                  vector=vector)
    saliency = head_saliency(model, selecting, vector, layers=layers)
    scans = {m: ablation_scan(model, selecting, vector, layers=layers, mode=m, means=means, path=path)
             for m in ("zero", "mean")}
    key = top_heads(saliency, fraction)

    gen = torch.Generator().manual_seed(seed)
    # the control: random heads that are not key heads (a draw holding a key head would measure the key heads)
    candidates = [(layer, h) for layer in layers for h in range(model.n_heads) if (layer, h) not in key]
    if len(candidates) < len(key):
        raise ValueError(f"fraction={fraction!r}: {len(key)} key heads leave {len(candidates)} other heads; expected "
                         "at least as many others to draw the random control from (use a smaller fraction)")
    draws = [[candidates[int(i)] for i in torch.randperm(len(candidates), generator=gen)[:len(key)]]
             for _ in range(n_random)]
    masks = torch.zeros(n_random + 2, model.n_layers, model.n_heads, dtype=torch.bool)
    for layer, h in key:
        masks[1, layer, h] = True
    for i, draw in enumerate(draws):
        for layer, h in draw:
            masks[i + 2, layer, h] = True
    _, metric = ablated_scores(model, prompts, vector, masks, mode, means=means, path=path)
    _, zero_shot = ablated_scores(model, prompts, None, masks[:1], mode, means=means, path=path)

    names = [model.hook_name(layer, "attn.hook_pattern") for layer in layers]
    with torch.no_grad(), inject(model, vector):
        cache = model.activations(inputs, names, attention_mask=attention)
    _, first = resolve_positions(0, len(prompts), prompts.n_positions, attention, model.device)
    sink = torch.full((model.n_layers, model.n_heads), float("nan"), dtype=torch.float64)
    for layer, name in zip(layers, names):
        sink[layer] = at_columns(prompts.at_query(cache[name], dim=2), first, dim=2).double().mean(0).cpu()
    histogram = torch.zeros(model.n_layers)
    for layer, _ in key:
        histogram[layer] += 1
    metric_name = prompts.metric.name
    return KeyHeadResult(layer=site.layer, saliency=saliency, scans=scans, key_heads=key, metric_name=metric_name,
                         zero_shot=zero_shot[0], injected=metric[0], key_ablated=metric[1], random=metric[2:].mean(1),
                         random_heads=draws, layer_histogram=histogram, first_token_attention=sink, mode=mode,
                         fraction=fraction, n_prompts=len(prompts), seed=seed, selection=selection, scoring=scoring)


__all__ = [
    "HeadScan",
    "KeyHeadResult",
    "ablate_heads",
    "ablated_scores",
    "ablation_scan",
    "check_heads",
    "head_saliency",
    "key_head_analysis",
    "mean_head_activations",
    "single_head_masks",
    "spearman",
    "top_heads",
]
