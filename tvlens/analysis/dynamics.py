"""Linear dynamics of a task vector: fit the maps that carry it forward, split them into rotation and scaling.

Yang et al. 2025a found that, despite the non-linearities, a vector ``θ`` injected at layer ``l`` propagates almost
linearly: the change it causes in the query's stream at a later layer is ``Δh ≈ W θ``. This module

1. **collects** the changes for perturbed copies ``θ_i = θ + λ_i ε_i`` (``ε_i ~ N(0, I)`` scaled to
   ``‖θ‖/√d``, a range of ``λ``), all copies in one batched pass of the query engine;
2. **fits** ``W`` by ridge regression ``min_W Σ_i ‖Δ_i − W θ_i‖² + α ‖W‖²`` with ``α`` chosen on one
   held-out fold and R² reported on another (:func:`fit_linear_map`), beside an affine fit ``W θ + b`` on
   the same rows (linear, not only linear around θ, when the two agree), from ``l`` to the final stream
   and layer by layer, so the path is a chain ``W_{l→L} ≈ W_{L-1→L} ⋯ W_{l→l+1}`` whose agreement with
   the direct fit is reported;
3. **splits** every map by the polar decomposition ``W = Q Σ`` (:func:`polar_decomposition`):
   ``W = U S Vᵀ → Q = U Vᵀ`` (orthogonal: the rotation) and ``Σ = V S Vᵀ`` (symmetric PSD: the
   scaling), and reports ``cos(v, Qv)``, the principal angles of ``Q``, the spectrum of ``Σ``, the
   share of ``v`` and ``Qv`` in the **task subspace** (span of the label tokens' unembedding columns)
   and the logit lens of ``v`` and ``Qv``;
4. **checks** the fit: adding ``W θ`` directly to the final stream should score like injecting ``θ``
   at layer ``l``.

Two readings of "rotation vs scaling". :func:`linear_dynamics` follows *one* vector block by block
(the chain of layer-to-layer maps). Yang et al. 2025a's contrast is between vectors *injected* at
early and at late layers: :func:`injection_layer_maps` learns an LTV at every injection layer ``l``
and splits the direct map ``W_{l→L}`` of each — early injections are rotated more (lower
``cos(θ, Qθ)``, larger principal angles), late ones mostly scaled.

Alignment with the task subspace is only informative against its baseline: a random vector's share
of a ``k``-dimensional label span in ``d`` dimensions is ``k/d`` on average (½ when 32 labels live
in 64 dimensions), so every :class:`MapReport` carries the share of ``Q r`` for random ``r`` beside
that of ``Qθ``, and the **answer-margin gain**: how much the rotation raises the true answer's
logit-lens margin (``Metric.answer_effect`` of ``ln_final(Qθ)`` minus that of ``ln_final(θ)``).

Layer ``L`` (``n_layers``) denotes the final stream, the input of ``ln_final``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from tvlens._checks import check_int
from tvlens._progress import progress_bar
from tvlens._records import Records
from tvlens.analysis.site import single_site
from tvlens.interventions import Intervention
from tvlens.models.engine import QueryEngine, StreamEdit, check_path
from tvlens.models.hooked import HookedModel
from tvlens.scoring import EvalResult, evaluate
from tvlens.tasks.base import ICLBatch, Task
from tvlens.tasks.splits import Splits
from tvlens.vectors.learned import learn_task_vectors
from tvlens.vectors.task_vector import TaskVector


# ----------------------------------------------------------------------------- linear algebra
@dataclass
class LinearFit(Records):
    """A fitted map ``y ≈ W x`` (or ``W x + b`` with an intercept; column-vector convention: ``W`` is
    ``[d_out, d_in]``)."""

    W: Float[Tensor, "d_out d_in"]
    alpha: float
    r2: float
    relative_error: float
    alphas: list[float] = field(default_factory=list)
    #: each ``α``'s R² on the validation fold (where ``α`` was chosen; ``r2`` is the test fold's)
    held_out_r2: list[float] = field(default_factory=list)
    #: the intercept ``b`` of an affine fit (``None``: through the origin)
    b: Float[Tensor, " d_out"] | None = None

    def to_records(self) -> list[dict[str, Any]]:
        """One row: the fit's penalty and accuracy."""
        return [{"alpha": self.alpha, "r2": self.r2, "relative_error": self.relative_error,
                 "held_out_r2": self.held_out_r2, "affine": self.b is not None}]


def r_squared(y: Float[Tensor, "n d"], prediction: Float[Tensor, "n d"]) -> float:
    """``1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖²`` over all rows and coordinates."""
    return float(r_squared_many(y[None], prediction[None])[0])


def r_squared_many(y: Float[Tensor, "maps n d"], prediction: Float[Tensor, "maps n d"]) -> Float[Tensor, " maps"]:
    """:func:`r_squared` of each map's rows: ``1 − Σ‖y_i − ŷ_i‖² / Σ‖y_i − ȳ_i‖²``."""
    residual = (y - prediction).pow(2).sum((1, 2))
    return 1 - residual / (y - y.mean(1, keepdim=True)).pow(2).sum((1, 2)).clamp_min(1e-30)


def fit_linear_map(
    x: Float[Tensor, "n d_in"],
    y: Float[Tensor, "n d_out"],
    alphas: tuple[float, ...] = (0.0, 1e-6, 1e-4, 1e-2, 1e-1, 1.0, 10.0),
    held_out: float = 0.2,
    seed: int = 0,
    intercept: bool = False,
) -> LinearFit:
    """Ridge regression ``y ≈ W x`` through the origin (``intercept``: ``y ≈ W x + b``, ``b`` unpenalised),
    ``α`` chosen on one held-out fold and the fit scored on another.

    The rows are split three ways: ``train`` fits every ``α`` of the grid, ``validation`` (a ``held_out``
    share) chooses it, ``test`` (another ``held_out`` share) scores the chosen fit — so the reported R² and
    relative error ``‖Y − XWᵀ‖/‖Y‖`` come from rows that neither fitted nor chose anything. The penalty is
    relative: ``α · tr(XᵀX)/d_in`` so one grid fits streams of any scale. The returned ``W`` is the chosen
    ``α`` refit on all rows. The same ``seed`` gives the same folds with and without ``intercept``, so the
    two R² compare on the same test rows: a linear map that fits as well as the affine one needs no offset
    (the vector propagates linearly, not only linearly *around* θ).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)}: expected [n, d_in] and [n, d_out]")
    (fit,) = fit_linear_maps(x, y[None], alphas, held_out, seed, intercept)
    return fit


def fit_linear_maps(
    x: Float[Tensor, "n d_in"] | Float[Tensor, "maps n d_in"],
    y: Float[Tensor, "maps n d_out"],
    alphas: tuple[float, ...] = (0.0, 1e-6, 1e-4, 1e-2, 1e-1, 1.0, 10.0),
    held_out: float = 0.2,
    seed: int = 0,
    intercept: bool = False,
) -> list[LinearFit]:
    """:func:`fit_linear_map` of several maps (one per prompt) in batched solves: map ``i`` fits ``y[i]`` on
    ``x[i]`` (or on the shared ``x [n, d_in]``) with the same folds and grid, its own ``α``, and equals
    ``fit_linear_map(x[i], y[i], …)``."""
    if y.ndim != 3 or x.ndim not in (2, 3) or x.shape[-2] != y.shape[1] or (x.ndim == 3 and x.shape[0] != y.shape[0]):
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)}: expected [n, d_in] or [maps, n, d_in] and "
                         "[maps, n, d_out]")
    n_maps, n, _ = y.shape
    d_in = x.shape[-1]
    n_out = max(1, int(round(held_out * n)))
    if n - 2 * n_out < 2:
        raise ValueError(f"{n} samples are too few to fit and hold out {n_out} + {n_out}")
    x, y = x.double().expand(n_maps, n, d_in), y.double()
    if intercept:
        x = torch.cat([x, torch.ones(n_maps, n, 1, dtype=x.dtype)], dim=2)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test, validation, train = order[:n_out], order[n_out : 2 * n_out], order[2 * n_out :]
    eye = torch.eye(x.shape[2], dtype=x.dtype)
    if intercept:
        eye[d_in, d_in] = 0.0

    def normal_equations(rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``XᵀX``, ``XᵀY`` over ``rows`` and ``tr(XᵀX)`` of the inputs (shared by every α)."""
        xr, yr = x[:, rows], y[:, rows]
        gram = xr.mT @ xr
        return gram, xr.mT @ yr, gram[:, :d_in, :d_in].diagonal(dim1=1, dim2=2).sum(1)

    def solve(system: tuple[Tensor, Tensor, Tensor], alpha: Tensor) -> Tensor:
        gram, xty, trace = system
        penalty = (alpha * trace / d_in)[:, None, None] * eye
        return torch.linalg.lstsq(gram + penalty, xty).solution.mT  # [maps, d_out, d_in (+ 1)]

    def r2(rows: Tensor, w: Tensor) -> Tensor:
        return r_squared_many(y[:, rows], x[:, rows] @ w.mT)

    on_train = normal_equations(train)
    fits = [solve(on_train, torch.full((n_maps,), alpha, dtype=x.dtype)) for alpha in alphas]
    scores = torch.stack([r2(validation, w) for w in fits], 1)  # [maps, alphas]
    best = scores.argmax(1)  # the first of ties
    w_test = torch.stack(fits, 1)[torch.arange(n_maps), best]
    test_r2 = r2(test, w_test)
    rel = (y[:, test] - x[:, test] @ w_test.mT).flatten(1).norm(dim=1) / \
        y[:, test].flatten(1).norm(dim=1).clamp_min(1e-30)
    w_all = solve(normal_equations(torch.arange(n)), torch.tensor(alphas, dtype=x.dtype)[best])
    return [LinearFit(W=w_all[i, :, :d_in], alpha=alphas[int(best[i])], r2=float(test_r2[i]),
                      relative_error=float(rel[i]), alphas=list(alphas), held_out_r2=scores[i].tolist(),
                      b=w_all[i, :, d_in] if intercept else None) for i in range(n_maps)]


def polar_decomposition(w: Float[Tensor, "... d d"]) -> tuple[Float[Tensor, "... d d"], Float[Tensor, "... d d"]]:
    """``W = Q Σ`` with ``Q`` orthogonal (rotation/reflection) and ``Σ`` symmetric positive semi-definite (each
    matrix of a batch).

    From the SVD ``W = U S Vᵀ``: ``Q = U Vᵀ``, ``Σ = V S Vᵀ``.
    """
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"W has shape {tuple(w.shape)}: the polar decomposition needs a square matrix")
    u, s, vh = torch.linalg.svd(w)
    return u @ vh, vh.mT @ torch.diag_embed(s) @ vh


def principal_angles(q: Float[Tensor, "... d d"]) -> Float[Tensor, "... d"]:
    """Rotation angles of an orthogonal matrix: ``|arg λ|`` of its eigenvalues, in radians, descending."""
    return torch.linalg.eigvals(q).angle().abs().sort(descending=True).values


def subspace_share(v: Float[Tensor, "... d"], basis: Float[Tensor, "d k"]) -> Float[Tensor, ...]:
    """``‖Bᵀ v‖² / ‖v‖²`` for an orthonormal basis ``B``: how much of ``v`` lies in its span."""
    return (v @ basis).pow(2).sum(-1) / v.pow(2).sum(-1).clamp_min(1e-30)


# ----------------------------------------------------------------------------- the analysis
@dataclass
class MapReport(Records):
    """The maps ``W_{a→b}`` fitted for every prompt, split into rotation and scaling, for the vector they carry.

    Every tensor has a leading ``prompts`` dimension: the map is fitted per prompt (the change a vector
    causes depends on the prompt's own activations; a prompt-averaged map cannot carry a query-dependent
    answer).
    """

    source: int
    target: int
    r2: Float[Tensor, " prompts"]
    relative_error: Float[Tensor, " prompts"]
    cos_rotation: Float[Tensor, " prompts"]
    angles: Float[Tensor, "prompts d"]
    scaling: Float[Tensor, "prompts d"]
    share_v: Float[Tensor, " prompts"]
    share_qv: Float[Tensor, " prompts"]
    lens_v: list[tuple[int, float]]
    lens_qv: list[tuple[int, float]]
    share_random: Float[Tensor, " prompts"] | None = None
    margin_gain: Float[Tensor, " prompts"] | None = None
    #: R² of the affine fit ``W x + b`` on the same test rows (``r2`` is the linear fit's, through the origin)
    r2_affine: Float[Tensor, " prompts"] | None = None

    def summary(self) -> dict[str, Any]:
        """Means over prompts (``share_random``: the baseline of ``share_qv``; NaN where not measured)."""
        scaling = self.scaling.mean(0)

        def mean(values: Tensor | None) -> float:
            return float("nan") if values is None else float(values.mean())

        return {"source": self.source, "target": self.target, "r2": float(self.r2.mean()),
                "r2_affine": mean(self.r2_affine), "relative_error": float(self.relative_error.mean()),
                "cos_rotation": float(self.cos_rotation.mean()),
                "max_angle": float(self.angles[:, 0].mean()), "scaling_max": float(scaling[0]),
                "scaling_min": float(scaling[-1]), "anisotropy": float(scaling[0] / scaling.mean()),
                "share_v": float(self.share_v.mean()), "share_qv": float(self.share_qv.mean()),
                "share_random": mean(self.share_random), "margin_gain": mean(self.margin_gain)}

    def to_records(self) -> list[dict[str, Any]]:
        """One row per prompt: the fit, the rotation and the scaling of its map."""
        def at(values: Tensor | None, p: int) -> float:
            return float("nan") if values is None else float(values[p])

        return [{"source": self.source, "target": self.target, "prompt": p, "r2": float(self.r2[p]),
                 "r2_affine": at(self.r2_affine, p), "relative_error": float(self.relative_error[p]),
                 "cos_rotation": float(self.cos_rotation[p]),
                 "max_angle": float(self.angles[p, 0]), "scaling_max": float(self.scaling[p, 0]),
                 "scaling_min": float(self.scaling[p, -1]), "share_v": float(self.share_v[p]),
                 "share_qv": float(self.share_qv[p]), "share_random": at(self.share_random, p),
                 "margin_gain": at(self.margin_gain, p)} for p in range(self.r2.shape[0])]


@dataclass
class DynamicsResult(Records):
    """Everything :func:`linear_dynamics` measured (tensors and labels, ready for plotting).

    Attributes:
        layer: where ``θ`` is injected.
        direct: the maps ``W_{l→L}`` to the final stream (per prompt) and their split.
        steps: the layer-to-layer maps ``W_{k→k+1}`` for ``k = l … L-1``.
        chain_mismatch: per prompt ``‖W_{L-1→L}⋯W_{l→l+1} − W_{l→L}‖_F / ‖W_{l→L}‖_F``.
        chain_r2: per prompt, R² of the chain's prediction of the final change.
        r2_by_scale: R² of the direct maps on fresh held-out copies, per perturbation scale (mean over prompts).
        injected: score of injecting ``θ`` at layer ``l`` into the prompts.
        final_direct: the same prompts with ``W_p θ`` added to their final stream instead.
        zero_shot: the same prompts without any vector.
        scales: the perturbation scales ``λ``.
    """

    layer: int
    direct: MapReport
    steps: list[MapReport]
    chain_mismatch: Float[Tensor, " prompts"]
    chain_r2: Float[Tensor, " prompts"]
    r2_by_scale: dict[float, float]
    injected: EvalResult
    final_direct: EvalResult
    zero_shot: EvalResult
    scales: list[float]

    def to_records(self) -> list[dict[str, Any]]:
        """One row per layer-to-layer map plus the direct map (means over prompts)."""
        return [m.summary() for m in [*self.steps, self.direct]]


def default_copies(model: HookedModel) -> int:
    """Perturbed copies per map: ``max(256, 2·d_model + 64)``. A ``d × d`` map has ``d`` unknowns per output
    coordinate and :func:`fit_linear_map` fits on 60 % of the rows (the rest choose ``α`` and score), so the
    fit is well posed from ``2·d + 64`` copies on; small models get 256."""
    return max(256, 2 * model.d_model + 64)


def collect_changes(
    model: HookedModel,
    prompts: ICLBatch,
    theta: Float[Tensor, " d_model"],
    layer: int,
    *,
    positions: Any = "last",
    n_copies: int | None = None,
    scales: tuple[float, ...] = (0.05, 0.1, 0.2),
    seed: int = 0,
    chunk: int = 8192,
    path: str = "auto",
) -> tuple[Float[Tensor, "n d_model"], dict[int, Float[Tensor, "n prompts d_model"]]]:
    """Perturbed copies ``θ_i = θ + λ_i ε_i`` (``ε_i ~ N(0, I)·‖θ‖/√d``) and the change ``Δ_k(θ_i)`` each
    causes in every prompt's query stream at every layer ``k = l … L`` (``L`` = final stream).

    All copies × prompts run as rows of one :class:`~tvlens.models.engine.QueryEngine` (its cached
    path shares the prompts' prefix among the copies), ``chunk`` rows at a time; ``positions`` is
    ``"last"`` or one int (e.g. Yang et al. 2025a's ``P = 4``); ``n_copies`` defaults to
    :func:`default_copies`; ``path`` is the engine's (``"auto"``, ``"cached"`` or ``"full"``).
    """
    check_path(path)
    layer = model.check_layer(layer)
    if not (positions == "last" or (isinstance(positions, int) and not isinstance(positions, bool))):
        raise ValueError(f"positions={positions!r}: expected 'last' or one int (one position per prompt)")
    n_copies = default_copies(model) if n_copies is None else check_int("n_copies", n_copies, 1)
    gen = torch.Generator().manual_seed(seed)
    d = model.d_model
    noise = torch.randn(n_copies, d, generator=gen, dtype=torch.float64)
    lam = torch.tensor(scales, dtype=torch.float64)[torch.arange(n_copies) % len(scales)]
    thetas = (theta.double() + lam[:, None] * noise * theta.double().norm() / d**0.5).to(model.dtype)
    n_prompts = len(prompts)
    with torch.no_grad():
        engine = QueryEngine(model, prompts.inputs, prompts.attention_mask, start=layer, positions=[positions],
                             path=path)
        base: list[Tensor] = []
        engine.run(streams=base)  # the streams without θ
        changes: dict[int, list[Tensor]] = {k: [] for k in range(layer, model.n_layers + 1)}
        per_chunk = max(1, chunk // n_prompts)
        for start in range(0, n_copies, per_chunk):
            block = thetas[start : start + per_chunk]
            streams: list[Tensor] = []
            engine.run([StreamEdit(layer, block.repeat_interleave(n_prompts, 0), positions)], copies=block.shape[0],
                       streams=streams)
            for k, stream, clean in zip(range(layer, model.n_layers + 1), streams, base):
                changes[k].append((stream - clean.repeat(block.shape[0], 1)).view(block.shape[0], n_prompts, d))
    return thetas, {k: torch.cat(v) for k, v in changes.items()}


def logit_lens(model: HookedModel, v: Float[Tensor, " d_model"], top: int = 5) -> list[tuple[int, float]]:
    """Top tokens of ``ln_final(v) W_U`` (the vector read as if it were the final stream)."""
    x = model.ln_final(v.to(model.dtype))
    values, tokens = (x @ model.W_U).topk(min(top, model.d_vocab))
    return [(int(t), float(val)) for t, val in zip(tokens, values)]


def _fit_maps(
    model: HookedModel, source: int, target: int, inputs: Tensor, outputs: Tensor, carried: Tensor,
    basis: Tensor | None, seed: int, prompts: ICLBatch | None = None, n_random: int = 64,
) -> tuple[MapReport, Tensor]:
    """Fit ``outputs[:, p] ≈ W_p inputs[:, p]`` for every prompt and split each ``W_p``; returns the maps too
    (every prompt's fit, split and reading in one batched computation).

    With a label ``basis``, the share of ``Q r`` for ``n_random`` random ``r`` is the baseline of ``Qv``'s
    share; with ``prompts`` (the maps' prompts, in order), the answer-margin gain of ``v → Qv`` is measured.
    """
    n_prompts = outputs.shape[1]
    x = inputs if inputs.ndim == 2 else inputs.transpose(0, 1)  # shared [n, d], or [prompts, n, d]
    y = outputs.transpose(0, 1)
    fits = fit_linear_maps(x, y, seed=seed)
    affine = fit_linear_maps(x, y, seed=seed, intercept=True)
    maps = torch.stack([fit.W for fit in fits])  # [prompts, d, d]
    q, sigma = polar_decomposition(maps)
    v = (carried if carried.ndim == 2 else carried.expand(n_prompts, -1)).double()
    qv = (q @ v[..., None])[..., 0]
    nan = torch.full((n_prompts,), float("nan"))
    shares: dict[str, Tensor | None] = {"share_v": nan, "share_qv": nan, "share_random": None}
    if basis is not None:
        randoms = torch.randn(n_random, model.d_model, generator=torch.Generator().manual_seed(seed),
                              dtype=torch.float64)
        shares = {"share_v": subspace_share(v, basis).float(), "share_qv": subspace_share(qv, basis).float(),
                  "share_random": subspace_share(randoms @ q.mT, basis).mean(-1).float()}
    gain = None if prompts is None else (_lens_margins(model, qv, prompts) - _lens_margins(model, v, prompts)).float()
    report = MapReport(
        source=source, target=target, r2=torch.tensor([f.r2 for f in fits]),
        relative_error=torch.tensor([f.relative_error for f in fits]),
        cos_rotation=torch.nn.functional.cosine_similarity(v, qv, dim=-1).float(), angles=principal_angles(q),
        scaling=torch.linalg.eigvalsh(sigma).flip(-1), **shares,
        lens_v=logit_lens(model, v[0]), lens_qv=logit_lens(model, qv[0]), margin_gain=gain,
        r2_affine=torch.tensor([f.r2 for f in affine]),
    )
    return report, maps


def _lens_margins(model: HookedModel, v: Float[Tensor, "prompts d_model"], prompts: ICLBatch
                  ) -> Float[Tensor, " prompts"]:
    """Each prompt's true answer's logit-lens margin of its row of ``v``: :meth:`Metric.answer_effect` of
    ``ln_final(v)`` (the target's logit minus the label set's mean; regression: the read-out)."""
    read = model.ln_final(v.to(model.dtype))
    return prompts.metric.answer_effect(read, model.W_U, prompts.targets[: len(v)], prompts.label_set).double()


def linear_dynamics(
    model: HookedModel,
    task: Task,
    vector: TaskVector,
    *,
    n_prompts: int = 64,
    n_copies: int | None = None,
    scales: tuple[float, ...] = (0.05, 0.1, 0.2),
    n_shots: int | None = None,
    seed: int = 0,
    progress: bool = True,
    path: str = "auto",
) -> DynamicsResult:
    """Fit and split the maps that carry a single-site, last-position ``add`` vector through the model.

    Args:
        vector: a task vector with one ``resid_pre`` site at one position (``"last"`` or an int, e.g. an
            early position), e.g. an LTV.
        n_prompts: zero-shot prompts (the ``shared`` split of :class:`~tvlens.tasks.Splits` ``(seed)``: queries
            no vector made with a seed trained or chose on); a map is fitted for each.
        n_copies: perturbed copies (default :func:`default_copies`; ≥ 2·d_model for a well-posed d×d fit).
        scales: perturbation scales ``λ`` relative to ``‖θ‖/√d``.
        progress: a tqdm bar over the stages (collect, one fit per map, held-out check, scores).
        path: the query engine's path for the perturbed copies: ``"auto"`` (cached wherever it is exact),
            ``"cached"`` or ``"full"``.
    """
    check_path(path)
    theta, site = single_site(model, vector, "linear_dynamics")
    layer, final = site.layer, model.n_layers
    splits = Splits(seed)
    splits.check_made_with(vector, task)
    bar = progress_bar(total=4 + final - layer, desc="linear dynamics", progress=progress)
    batch = splits.sample(task, "shared", n_prompts, n_shots)
    prompts = batch.zero_shot
    n_copies = default_copies(model) if n_copies is None else n_copies
    thetas, changes = collect_changes(model, prompts, theta, layer, positions=site.positions, n_copies=n_copies,
                                      scales=scales, seed=seed, path=path)
    bar.update(1)

    basis = _label_basis(model, task)

    direct, direct_maps = _fit_maps(model, layer, final, thetas.double(), changes[final].double(), theta, basis, seed,
                                    prompts)
    bar.update(1)
    steps, chain = [], torch.eye(model.d_model, dtype=torch.float64).expand(n_prompts, -1, -1)
    inputs, carried = thetas.double(), theta.double()
    for k in range(layer, final):
        report, maps = _fit_maps(model, k, k + 1, inputs, changes[k + 1].double(), carried, basis, seed)
        steps.append(report)
        chain = maps @ chain
        carried = maps @ carried if carried.ndim == 1 else torch.einsum("pij,pj->pi", maps, carried)
        inputs = changes[k + 1].double()
        bar.update(1)
    mismatch = (chain - direct_maps).flatten(1).norm(dim=1) / direct_maps.flatten(1).norm(dim=1).clamp_min(1e-30)
    final_changes = changes[final].double()  # [n, P, d]
    chain_pred = torch.einsum("pij,nj->npi", chain, thetas.double())
    chain_r2 = r_squared_many(final_changes.transpose(0, 1), chain_pred.transpose(0, 1)).float()

    # held-out R² per scale: fresh copies (another seed) predicted by each prompt's direct map
    fresh_thetas, fresh = collect_changes(model, prompts, theta, layer, positions=site.positions,
                                          n_copies=max(len(scales), n_copies // 2), scales=scales,
                                          seed=Splits(seed).aside, path=path)
    predicted = torch.einsum("pij,nj->npi", direct_maps, fresh_thetas.double())
    lam = torch.tensor(scales)[torch.arange(fresh_thetas.shape[0]) % len(scales)]
    r2_by_scale = {}
    for scale in scales:
        rows = (lam == scale).nonzero().flatten()
        r2_by_scale[float(scale)] = float(r_squared_many(fresh[final][rows].double().transpose(0, 1),
                                                         predicted[rows].transpose(0, 1)).float().mean())
    bar.update(1)

    injected = evaluate(model, task, "injected", vector, batch=batch, progress=False, path=path)
    w_theta = torch.einsum("pij,j->pi", direct_maps, theta.double()).to(model.dtype)  # each prompt's W_p θ
    final_direct = evaluate(model, task, "injected", Intervention(w_theta, layer=final - 1, hook="resid_post"),
                            batch=batch, progress=False, path=path)
    zero = evaluate(model, task, "zero_shot", batch=batch, progress=False, path=path)
    bar.update(1)
    bar.close()
    return DynamicsResult(layer=layer, direct=direct, steps=steps, chain_mismatch=mismatch, chain_r2=chain_r2,
                          r2_by_scale=r2_by_scale, injected=injected, final_direct=final_direct, zero_shot=zero,
                          scales=list(scales))


def _label_basis(model: HookedModel, task: Task) -> Tensor | None:
    """An orthonormal basis of the label tokens' unembedding columns (``None`` without a label set)."""
    label_set = getattr(task, "label_set", None)
    return torch.linalg.qr(model.W_U[:, label_set].double()).Q if isinstance(label_set, Tensor) else None


@dataclass
class InjectionLayerMaps(Records):
    """Yang et al. 2025a's early-vs-late contrast: a vector learned at each injection layer and its direct map.

    Attributes:
        layers: the injection layers ``l``.
        maps: for each, the per-prompt maps ``W_{l→L}`` of the vector learned there, split by the polar
            decomposition (``cos_rotation``, ``angles``, ``scaling``, ``r2``, label shares with their
            random baseline, answer-margin gain).
        injected: each vector's score injected at its layer (same prompts); ``zero_shot``: without.
        n_prompts: prompts the maps were fitted on; ``seed``: their seed (and the vectors').
    """

    layers: list[int]
    maps: list[MapReport]
    injected: list[EvalResult]
    zero_shot: EvalResult
    n_prompts: int
    seed: int

    def to_records(self) -> list[dict[str, Any]]:
        """One row per injection layer: the direct map's split (means over prompts) and the vector's score."""
        return [{"layer": layer, **{k: v for k, v in m.summary().items() if k not in ("source", "target")},
                 "injected": r.mean, "injected_stderr": r.stderr}
                for layer, m, r in zip(self.layers, self.maps, self.injected)]

    def trend(self, key: str) -> float:
        """The last injection layer's mean ``key`` minus the first's (e.g. ``"cos_rotation"``: > 0 when
        late injections are rotated less)."""
        rows = self.to_records()
        return float(rows[-1][key] - rows[0][key])


def injection_layer_maps(
    model: HookedModel,
    task: Task,
    *,
    layers: list[int] | None = None,
    vectors: dict[int, TaskVector] | None = None,
    n_prompts: int = 16,
    n_copies: int | None = None,
    scales: tuple[float, ...] = (0.05, 0.1, 0.2),
    n_shots: int | None = None,
    seed: int = 0,
    learn: dict[str, Any] | None = None,
    progress: bool = True,
    path: str = "auto",
) -> InjectionLayerMaps:
    """Learn an LTV at every injection layer and split the direct map that carries it to the final stream.

    Args:
        model: the model.
        task: the task (one task of a family: the maps carry its vector).
        layers: injection layers (default: every block, ``0 … n_layers − 1``).
        vectors: these last-position ``add`` vectors, one per layer, instead of learning them.
        n_prompts: zero-shot prompts, a map fitted for each (seed ``seed``).
        n_copies: perturbed copies per map (default :func:`default_copies`; ≥ 2·d_model).
        scales: perturbation scales ``λ``.
        n_shots: demonstrations of the prompts the vectors learn from.
        seed: seed of the prompts, the copies and the vectors.
        learn: keyword arguments of :func:`~tvlens.vectors.learn_task_vector` (they override ``n_shots`` and ``seed``).
        progress: a tqdm bar over the layers.
        path: the query engine's path for the vectors and the perturbed copies (``"auto"``, ``"cached"`` or
            ``"full"``).
    """
    check_path(path)
    layers = list(range(model.n_layers)) if layers is None else [model.check_layer(k) for k in layers]
    if not layers:
        raise ValueError("layers=[]: expected at least one injection layer")
    vectors = dict(vectors or {})
    missing = [k for k in vectors if k not in layers]
    if missing:
        raise ValueError(f"vectors has layers {missing} that are not in layers={layers}")
    # held-out prompts: the vectors learn on the train split's queries, the maps are fitted and scored on others
    splits = Splits(seed)
    for k, given in vectors.items():
        splits.check_made_with(given, task, f"vector of layer {k}")
    batch = splits.sample(task, "shared", n_prompts, n_shots)
    basis, final = _label_basis(model, task), model.n_layers
    maps, injected = [], []
    missing = [k for k in layers if k not in vectors]
    if missing:  # learned side by side: one prefix per split for all of them
        options = {"n_shots": n_shots, "seed": seed, "progress": False, "path": path, **(learn or {})}
        vectors.update({k: tv for k, (tv, _) in learn_task_vectors(model, task, missing, **options).items()})
    for layer in progress_bar(layers, desc="maps by injection layer", progress=progress):
        theta, site = single_site(model, vectors[layer], "injection_layer_maps")
        if site.layer != layer:
            raise ValueError(f"vectors[{layer}] sits at layer {site.layer}; expected layer {layer}")
        thetas, changes = collect_changes(model, batch.zero_shot, theta, layer, positions=site.positions,
                                          n_copies=n_copies, scales=scales, seed=seed, path=path)
        report, _ = _fit_maps(model, layer, final, thetas.double(), changes[final].double(), theta, basis, seed,
                              batch.zero_shot)
        maps.append(report)
        injected.append(evaluate(model, task, "injected", vectors[layer], batch=batch, progress=False, path=path))
    zero = evaluate(model, task, "zero_shot", batch=batch, progress=False, path=path)
    return InjectionLayerMaps(layers=layers, maps=maps, injected=injected, zero_shot=zero, n_prompts=n_prompts,
                              seed=seed)
