"""How an injected vector travels through the heads that read it: the OV-circuit decomposition.

Put θ into the stream at layer ``l`` (``blocks.{l}.hook_resid_pre``) at position ``p``. Every head
``(l', k)`` with ``l' ≥ l`` reads the stream at ``p`` through its value path. A LayerNorm is
``LN(x) = (x − mean x) / σ(x) · w + b``, linear in ``x`` once the scale ``σ`` is fixed; so with
the scale of the injected run, the head's output at the query ``N`` holds the exact additive term

    c_{l',k} = A^{l'}_{k}[N, p] · θ̂ W_V[l',k] W_O[l',k],      θ̂ = (θ − mean θ) / σ^{l'}_p · w_{ln1}

— the part of its output that comes from θ itself (the first hop; later heads also read what
earlier heads wrote, which :func:`frozen_decomposition` follows exactly in attention-only models).
:func:`ov_decomposition` reports, per head, ``‖θ̂ W_V W_O‖`` (the OV transport, through TL's
:class:`~transformer_lens.FactoredMatrix`), the attention weight ``A[N, p]``, ``‖c‖`` and the
*direct effect on the label logits*: ``c`` read by ``ln_final`` (frozen scale at ``N``) and ``W_U``,
as the target label's logit minus the mean label logit (for regression: the change of the
prediction). It also reports how much each later MLP's output at the query changes.

Yang et al. 2025a's **re-injection test** keeps the simplest form: ``θ_OV = Σ_{l' ≥ l, k} θ W_V[l',k] W_O[l',k]``
(no LayerNorm, no attention weights) is injected *in place of* θ, and its accuracy is set next to
θ's and zero-shot's (Yang et al. 2025a: 52 % vs 83 % vs ~0).

**Where the effect goes, exactly.** The stream is a sum of what the blocks write, so at the query
the change θ causes in the final stream splits with no approximation into θ itself (when it sits at
the query), the later attention outputs' changes ``Δattn_out[l']`` and the later MLP outputs' changes
``Δmlp_out[l']`` (injected minus clean run). Read through ``ln_final`` with the injected run's scale
frozen and ``W_U`` (a linear map), the three **paths** add up to the total answer effect of the
final change, prompt by prompt (:attr:`OVResult.paths`). The re-injection test is run on the same
terms *where they are written*: each prompt's own attention (or MLP) terms added to ``attn_out``
(``mlp_out``) of their layers at its query, and the prompt-averaged terms — ``θ_MLP`` is the
averaged MLP terms, each added at its own layer (not summed into one vector at θ's layer, which
would put what the last blocks wrote into the first block's input).

Indexing: θ at ``resid_pre`` of block ``l`` is first read by block ``l``'s heads, so "later heads" are
``l' ≥ l`` here; Yang et al. 2025a writes ``l' > l`` for a θ added to the *output* of layer ``l``. Same heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.FactoredMatrix import FactoredMatrix

from tvlens._records import Records, head_records
from tvlens.analysis.site import single_site
from tvlens.interventions import Intervention, inject
from tvlens.models.hooked import HookedModel
from tvlens.positions import PositionSpec, at_columns, resolve_positions
from tvlens.scoring import EvalResult, evaluate
from tvlens.tasks.base import ICLBatch, Task, check_base
from tvlens.tasks.splits import Splits
from tvlens.vectors.task_vector import TaskVector


def _cast(weight: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if weight is None else weight.to(dtype)


def frozen_norm(
    delta: Float[Tensor, "... d_model"],
    scale: Float[Tensor, "... 1"] | None,
    norm: str | None,
    weight: Float[Tensor, " d_model"] | None,
) -> Float[Tensor, "... d_model"]:
    """The change of a LayerNorm / RMSNorm output caused by ``delta`` when its scale σ is held fixed.

    ``LN(x + δ) − LN(x) = (δ − mean δ) / σ · w`` (``RMS``: ``δ / σ · w``; ``…Pre``: without ``w``;
    no normalization: ``δ``). ``scale`` is TransformerLens' ``hook_scale`` (``σ``) at the same position.
    """
    if norm is None:
        return delta
    if norm in ("LN", "LNPre"):
        delta = delta - delta.mean(-1, keepdim=True)
    delta = delta / scale
    if norm in ("LN", "RMS"):
        delta = delta * weight
    return delta


def _one_position(model: HookedModel, positions: PositionSpec, prompts: ICLBatch) -> Tensor:
    """The padded-batch column of the vector's position in every prompt ``[batch]``."""
    rows, cols = resolve_positions(positions, len(prompts), prompts.n_positions, prompts.attention_mask, model.device)
    if rows.shape[0] != len(prompts):
        raise ValueError(f"positions={positions!r} selects {rows.shape[0]} tokens in {len(prompts)} prompts; "
                         "the decomposition needs exactly one per prompt")
    return cols


def theta_ov(model: HookedModel, theta: Float[Tensor, " d_model"], layer: int) -> Float[Tensor, " d_model"]:
    """Yang et al. 2025a's ``θ_OV = Σ_{l' ≥ layer} Σ_k θ W_V[l',k] W_O[l',k]``, through the OV ``FactoredMatrix``
    of each layer."""
    layer = model.check_layer(layer)
    with torch.no_grad():
        return sum((theta @ _ov(model, k, theta.dtype)).sum(0) for k in range(layer, model.n_layers))


def _ov(model: HookedModel, layer: int, dtype: torch.dtype) -> FactoredMatrix:
    """``W_V W_O`` of ``layer`` as a factored matrix in ``dtype`` (the analyses compute in at least float32, also
    on a bfloat16 model)."""
    ov = model.OV(layer)
    return FactoredMatrix(ov.A.to(dtype), ov.B.to(dtype))


def analysis_dtype(model: HookedModel) -> torch.dtype:
    """What the analyses compute in: the model's dtype, at least float32 (a bfloat16 model is read in float32)."""
    return torch.promote_types(model.dtype, torch.float32)


@dataclass(frozen=True, eq=False)
class OVResult(Records):
    """Per-head OV decomposition of one injected vector, and the re-injection test.

    Tensors are ``[n_layers, n_heads]`` (``[n_layers]`` for the MLPs), averaged over the prompts;
    rows of layers before ``layer`` are NaN (those blocks never read θ).

    Attributes:
        layer: the block whose ``resid_pre`` θ enters.
        ov_norm: ``‖θ̂ W_V W_O‖`` — what the head's OV circuit makes of θ (LayerNorm folded in).
        attention: ``A[N, p]``, the weight the query puts on θ's position (injected run).
        contribution_norm: ``‖A[N, p] · θ̂ W_V W_O‖``, the θ-term of the head's output at the query.
        logit_effect: that term's direct effect on the answer: through ``ln_final`` (scale at ``N``
            frozen) and ``W_U``, the target label's logit minus the mean logit of the label set
            (regression: the change of the prediction).
        mlp_change: ``‖Δ mlp_out‖`` at the query, injected minus clean run.
        theta_ov: Yang et al. 2025a's ``θ_OV`` (see module docstring).
        theta_mlp: ``Δ mlp_out[l']`` at the query for ``l' ≥ layer``, averaged over prompts, one row per
            layer (``None`` for attention-only models); re-injected at each row's own ``mlp_out``.
        paths: the exact split of the answer effect of the final stream's change at the query, per
            prompt: ``"direct"`` (θ itself when it sits at the query), ``"attention"`` (``Σ Δattn_out``),
            ``"mlp"`` (``Σ Δmlp_out``) and their sum ``"total"``.
        reinjection: score (accuracy or error) on the same prompts of ``"zero_shot"``, ``"vector"`` (θ),
            and in θ's place: ``"theta_ov"``; ``"theta_attention"`` / ``"theta_mlp"`` (prompt-averaged
            terms where written); ``"attention_per_prompt"`` / ``"mlp_per_prompt"`` (each prompt's own terms).
        n_prompts: prompts averaged over; ``seed``: their seed.
    """

    layer: int
    ov_norm: Float[Tensor, "n_layers n_heads"]
    attention: Float[Tensor, "n_layers n_heads"]
    contribution_norm: Float[Tensor, "n_layers n_heads"]
    logit_effect: Float[Tensor, "n_layers n_heads"]
    mlp_change: Float[Tensor, " n_layers"]
    theta_ov: Float[Tensor, " d_model"]
    theta_mlp: Float[Tensor, "layers d_model"] | None
    reinjection: dict[str, EvalResult]
    n_prompts: int
    seed: int
    paths: dict[str, Float[Tensor, " batch"]]

    @property
    def ov_share(self) -> float:
        """Share of θ's gain over zero-shot that ``θ_OV`` recovers: ``(s_OV − s_0) / (s_θ − s_0)``."""
        return _share(self.reinjection, "theta_ov")

    @property
    def mlp_share(self) -> float:
        """The same share for ``θ_MLP`` (NaN for attention-only models)."""
        return _share(self.reinjection, "theta_mlp") if "theta_mlp" in self.reinjection else float("nan")

    def reinjection_shares(self) -> dict[str, float]:
        """Share of θ's gain over zero-shot that each re-injected stand-in recovers."""
        return {key: _share(self.reinjection, key) for key in self.reinjection if key not in ("zero_shot", "vector")}

    def path_shares(self) -> dict[str, float]:
        """Share of the answer effect carried by each path: the per-prompt effects averaged over prompts,
        then divided by the averaged total (they sum to 1). A ratio per prompt is not averaged: it
        explodes on prompts where θ's total effect is near zero."""
        total = float(self.paths["total"].mean())
        return {key: float(self.paths[key].mean()) / total if total != 0 else float("nan")
                for key in ("direct", "attention", "mlp")}

    def summary(self) -> dict[str, float]:
        """Re-injection scores (mean ± stderr), their shares of θ's gain, and the path shares, as plain numbers."""
        out: dict[str, float] = {}
        for key, result in self.reinjection.items():
            out[key], out[f"{key}_stderr"] = result.mean, result.stderr
        out.update({f"{key}_share": value for key, value in self.reinjection_shares().items()})
        out["ov_share"], out["mlp_share"] = self.ov_share, self.mlp_share
        out.update({f"path_{key}": value for key, value in self.path_shares().items()})
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One row per head (layers from θ's on): OV transport, attention on θ, contribution, logit effect."""
        rows = head_records({"ov_norm": self.ov_norm, "attention": self.attention,
                             "contribution_norm": self.contribution_norm, "logit_effect": self.logit_effect})
        return [row for row in rows if row["layer"] >= self.layer]


def _share(scores: dict[str, EvalResult], key: str) -> float:
    zero, full = scores["zero_shot"].mean, scores["vector"].mean
    return (scores[key].mean - zero) / (full - zero) if full != zero else float("nan")


def ov_decomposition(
    model: HookedModel,
    task: Task,
    vector: TaskVector,
    *,
    n_prompts: int = 128,
    n_shots: int | None = None,
    seed: int = 0,
    base: Literal["zero_shot", "icl"] = "zero_shot",
    batch: ICLBatch | None = None,
    reinject: bool = True,
) -> OVResult:
    """Decompose what every later head and MLP makes of an injected vector θ (see the module docstring).

    Args:
        model: the model.
        task: the task the vector was made for (its prompts and label set).
        vector: a single-site ``add`` task vector at ``resid_pre`` (one position per prompt).
        n_prompts: prompts: the ``shared`` split of :class:`~tvlens.tasks.Splits` ``(seed)``, whose queries no
            vector made with a seed trained or chose on.
        n_shots: demonstrations per prompt.
        seed: the user seed.
        batch: these prompts instead of sampled ones.
        base: inject into the zero-shot queries (TVP mode, default) or the n-shot prompts.
        reinject: also run the re-injection test (up to seven extra evaluations).
    """
    theta, site = single_site(model, vector, "ov_decomposition")
    check_base(base)
    dt = analysis_dtype(model)
    layer, n_layers, n_heads = site.layer, model.n_layers, model.n_heads
    if batch is None:
        splits = Splits(seed)
        splits.check_made_with(vector, task)
        batch = splits.sample(task, "shared", n_prompts, n_shots)
    prompts = batch.view(base)
    inputs, mask = prompts.inputs.to(model.device), prompts.attention_mask
    norm = model.capabilities.norm
    attn_only = model.capabilities.attn_only
    layers = range(layer, n_layers)
    names = [model.hook_name(k, "attn.hook_pattern") for k in layers]
    if norm is not None:
        names += [model.hook_name(k, "ln1.hook_scale") for k in layers] + ["ln_final.hook_scale"]
    mlp_names = [] if attn_only else [model.hook_name(k, "mlp_out") for k in layers]
    attn_names = [model.hook_name(k, "attn_out") for k in layers]
    with torch.no_grad():
        clean = model.activations(inputs, mlp_names + attn_names, attention_mask=mask)
        with inject(model, vector):
            cache = model.activations(inputs, names + mlp_names + attn_names, attention_mask=mask)
        p = _one_position(model, site.positions, prompts)
        nan = torch.full((n_layers, n_heads), float("nan"), dtype=torch.float64)
        ov_norm, attention, contribution_norm, logit_effect = nan.clone(), nan.clone(), nan.clone(), nan.clone()
        final_scale = prompts.at_query(cache["ln_final.hook_scale"]).to(dt) if norm is not None else None
        final_weight = _cast(model.norm_parameters("ln_final")[0], dt)
        w_u = model.W_U.to(dt)
        for k in layers:
            scale = at_columns(cache[model.hook_name(k, "ln1.hook_scale")], p).to(dt) if norm is not None else None
            ln1_weight = _cast(model.norm_parameters(f"blocks.{k}.ln1")[0], dt)
            theta_hat = frozen_norm(theta.to(dt).expand(len(prompts), -1), scale, norm, ln1_weight)
            transport = (theta_hat[:, None, None, :] @ _ov(model, k, dt)).AB.squeeze(-2)  # [batch, heads, d]
            pattern = cache[model.hook_name(k, "attn.hook_pattern")]
            weight = at_columns(prompts.at_query(pattern, dim=2), p, dim=2).to(dt)  # [batch, heads]: weight on θ
            contribution = weight[..., None] * transport
            read = frozen_norm(contribution, None if final_scale is None else final_scale[:, None], norm,
                               final_weight)  # [batch, heads, d]: what ln_final passes on to W_U
            ov_norm[k] = transport.norm(dim=-1).double().mean(0).cpu()
            attention[k] = weight.double().mean(0).cpu()
            contribution_norm[k] = contribution.norm(dim=-1).double().mean(0).cpu()
            logit_effect[k] = _answer_effect(read, w_u, prompts).double().mean(0).cpu()
        mlp_change = torch.full((n_layers,), float("nan"), dtype=torch.float64)
        # each later block's change at the query, [batch, layers, d]
        terms = {"attention": torch.stack([prompts.at_query(cache[n] - clean[n]).to(dt) for n in attn_names], 1)}
        if not attn_only:
            terms["mlp"] = torch.stack([prompts.at_query(cache[n] - clean[n]).to(dt) for n in mlp_names], 1)
            mlp_change[layer:] = terms["mlp"].norm(dim=-1).double().mean(0).cpu()
        theta_mlp = terms["mlp"].mean(0) if "mlp" in terms else None

        # the exact split of the final change at the query, read by ln_final (injected scale) and W_U
        def effect(delta: Tensor) -> Tensor:
            read = frozen_norm(delta, final_scale, norm, final_weight)
            return prompts.metric.answer_effect(read, w_u, prompts.targets, prompts.label_set).double().cpu()

        at_query = (p == prompts.query_positions.to(p.device)).to(dt)[:, None]
        paths = {"direct": effect(at_query * theta.to(dt).expand(len(prompts), -1)),
                 "attention": effect(terms["attention"].sum(1)),
                 "mlp": effect(terms["mlp"].sum(1)) if "mlp" in terms else torch.zeros(len(prompts),
                                                                                       dtype=torch.float64)}
        paths["total"] = paths["direct"] + paths["attention"] + paths["mlp"]
        ov_vector = theta_ov(model, theta.to(dt), layer)

    reinjection: dict[str, EvalResult] = {}
    if reinject:
        def score(v: Tensor | None) -> EvalResult:
            if v is None:
                return evaluate(model, task, "zero_shot", batch=batch, progress=False)
            iv = Intervention(v.detach().to(model.dtype), layer, positions=site.positions)
            return evaluate(model, task, "injected", iv, batch=batch, base=base, progress=False)

        def written(kind: str, per_prompt: bool) -> EvalResult:
            # each term goes back where its block wrote it: attn_out / mlp_out of its layer, at the query
            hook = "attn_out" if kind == "attention" else "mlp_out"
            stack = terms[kind] if per_prompt else terms[kind].mean(0)
            ivs = [Intervention((stack[:, i] if per_prompt else stack[i]).to(model.dtype), k, hook=hook)
                   for i, k in enumerate(layers)]
            return evaluate(model, task, "injected", ivs, batch=batch, base=base, progress=False)

        reinjection = {"zero_shot": score(None), "vector": score(theta), "theta_ov": score(ov_vector)}
        for kind in terms:
            reinjection[f"theta_{kind}"] = written(kind, per_prompt=False)
        for kind in terms:
            reinjection[f"{kind}_per_prompt"] = written(kind, per_prompt=True)
    return OVResult(layer=layer, ov_norm=ov_norm, attention=attention, contribution_norm=contribution_norm,
                    logit_effect=logit_effect, mlp_change=mlp_change, theta_ov=ov_vector.detach(),
                    theta_mlp=None if theta_mlp is None else theta_mlp.detach(), reinjection=reinjection,
                    n_prompts=len(prompts), seed=seed, paths=paths)


def _answer_effect(
    read: Float[Tensor, "batch heads d_model"], w_u: Float[Tensor, "d_model d_vocab"], prompts: ICLBatch
) -> Float[Tensor, "batch heads"]:
    """The answer effect of each head's read-out (:meth:`tvlens.tasks.Metric.answer_effect`: the target
    label's logit minus the label set's mean logit; regression: the read-out itself)."""
    return prompts.metric.answer_effect(read, w_u, prompts.targets, prompts.label_set)


@dataclass(frozen=True, eq=False)
class FrozenDecomposition(Records):
    """Exact path decomposition of θ's effect on the final stream with attention and norms frozen.

    Attributes:
        direct: θ's own contribution at the query (θ if it sits at the query, else 0) ``[batch, d]``.
        heads: each head's change of output at the query ``[batch, n_layers, n_heads, d]`` (zero
            before ``layer``).
        total: ``direct + Σ heads`` — the change of the final stream at the query.
    """

    direct: Float[Tensor, "batch d_model"]
    heads: Float[Tensor, "batch n_layers n_heads d_model"]
    total: Float[Tensor, "batch d_model"]

    def to_records(self) -> list[dict[str, Any]]:
        """One row per head: the norm of its term in the final change (mean over prompts); plus the direct term."""
        norms = self.heads.norm(dim=-1).double().mean(0)  # [n_layers, n_heads]
        return [{"layer": None, "head": None, "term": "direct", "norm": float(self.direct.norm(dim=-1).mean())},
                *({**row, "term": "head"} for row in head_records({"norm": norms}))]


def frozen_decomposition(
    model: HookedModel,
    inputs: Tensor,
    theta: Float[Tensor, " d_model"],
    layer: int,
    *,
    positions: PositionSpec = "last",
    attention_mask: Tensor | None = None,
) -> FrozenDecomposition:
    """θ's effect on the final residual stream of an attention-only model, split over heads.

    With every attention pattern and every LayerNorm scale held at the clean run's values, an
    attention-only model is linear in the stream, so the change θ causes is carried exactly::

        Δx^{l} = θ at p
        Δa^{l'}_k = A^{l'}_k · LN^{l'}_{frozen}(Δx^{l'}) W_V W_O
        Δx^{l'+1} = Δx^{l'} + Σ_k Δa^{l'}_k

    (every position ≥ p changes, so later heads see θ through earlier heads too). The result's
    ``total`` equals the final-stream change of the model run with those patterns and scales frozen.

    Raises:
        ValueError for models with MLPs (not linear; use :func:`ov_decomposition`).
    """
    if not model.capabilities.attn_only:
        raise ValueError("frozen_decomposition is exact only for attention-only models (attn_only=True); "
                         "for models with MLPs use ov_decomposition")
    layer = model.check_layer(layer)
    norm = model.capabilities.norm
    batch, n_pos = inputs.shape[0], inputs.shape[1]
    layers = range(layer, model.n_layers)
    names = [model.hook_name(k, "attn.hook_pattern") for k in layers]
    if norm is not None:
        names += [model.hook_name(k, "ln1.hook_scale") for k in layers]
    with torch.no_grad():
        cache = model.activations(inputs, names, attention_mask=attention_mask)
        rows, cols = resolve_positions(positions, batch, n_pos, attention_mask, model.device)
        delta = torch.zeros(batch, n_pos, model.d_model, dtype=model.dtype, device=model.device)
        delta[rows, cols] += theta.to(model.dtype)
        query = resolve_positions("last", batch, n_pos, attention_mask, model.device)[1]
        direct = at_columns(delta, query).clone()
        heads = torch.zeros(batch, model.n_layers, model.n_heads, model.d_model, dtype=model.dtype,
                            device=model.device)
        for k in layers:
            scale = cache[model.hook_name(k, "ln1.hook_scale")] if norm is not None else None
            read = frozen_norm(delta, scale, norm, model.norm_parameters(f"blocks.{k}.ln1")[0])
            v = torch.einsum("bpd,hdk->bphk", read, model.W_V[k])
            z = torch.einsum("bhqp,bphk->bqhk", cache[model.hook_name(k, "attn.hook_pattern")], v)
            out = model.head_outputs(z, k)  # [batch, pos, heads, d]
            heads[:, k] = at_columns(out, query)
            delta = delta + out.sum(2)
        return FrozenDecomposition(direct=direct, heads=heads, total=at_columns(delta, query))


__all__ = ["FrozenDecomposition", "OVResult", "frozen_decomposition", "frozen_norm", "ov_decomposition", "theta_ov"]
