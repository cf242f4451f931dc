"""Head-weighted learned task vectors (Saglam et al., Saglam et al. 2025): learn one weight per attention head.

With ``ā^l_k`` the mean projected output of head ``k`` of layer ``l`` at the query position over
clean n-shot prompts (:func:`~tvlens.vectors.function.mean_head_outputs`), the vector of layer
``l`` is a learned weighting of its heads::

    v_l = Σ_k ω_{l,k} ā^l_k,        ω ∈ R^{L×H},  ω ~ N(0, 1) at the start

and ``v_l`` is added to **every** layer's output (``blocks.{l}.hook_resid_post``) at the query
position of the zero-shot prompt. Only ``ω`` trains (``L·H`` numbers): cross-entropy of the answer
(symbolic) or Huber loss of the prediction (regression), Adam, early stopping on a validation split.
Saglam et al. 2025 found that aligning the injected model's last hidden state with the ICL model's is what
makes it work; ``align_weight > 0`` adds ``align_weight · (1 − cos(h^L_inj, h^L_ICL))`` at the query.

Head sources. ``head_source="mean"`` uses ``ā^l_k`` averaged over clean prompts of the task (Saglam et al. 2025's
text setting); ``head_source="prompt"`` uses **each prompt's own** head outputs ``a^l_k(prompt)`` at the
query of a *shorter* ICL prompt (its first ``source_shots`` demonstrations) — Saglam et al. 2025's regression setting,
where every prompt shows a new function and no average can carry it. Then ``v_l`` differs per prompt
and is injected per example; :meth:`HeadWeightedResult.interventions_for` builds it for any batch.

Training runs on :class:`~tvlens.models.engine.QueryEngine` (its cached path wherever it is exact).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from tvlens._records import Records, head_records
from tvlens.interventions import Intervention
from tvlens.models.engine import QueryEngine, StreamEdit, check_path
from tvlens.models.hooked import HookedModel
from tvlens.scoring import EvalResult, evaluate
from tvlens.tasks.base import ICLBatch, Task
from tvlens.tasks.splits import Splits
from tvlens.vectors.function import mean_head_outputs, project_heads, prompt_head_z
from tvlens.vectors.learned import LearnConfig, converged, fit_early_stopping, query_loss
from tvlens.vectors.task_vector import Site, TaskVector

#: Saglam et al. 2025's setting adapted to the small zoo models: Adam on ω, Huber for regression, patience 7.
HEAD_WEIGHTED_DEFAULTS = LearnConfig(lr=0.05, epochs=30, batch_size=64, patience=7, loss="auto")


@dataclass
class HeadWeightedResult(Records):
    """What :func:`head_weighted_task_vector` learned.

    Attributes:
        weights: ``[n_layers, n_heads]`` the learned ``ω``.
        head_means: ``[n_layers, n_heads, d_model]`` the ``ā^l_k`` it weights.
        history: per-epoch losses.
        best_epoch: epoch of the kept weights.
        val: injected score on the ``dev`` prompts — the ones early stopping chose ``ω`` on, so an
            optimistic estimate.
        path: the query engine's path during training, ``"cached"`` or ``"full"``.
        test: injected score on prompts that neither trained ``ω``, nor chose its epoch, nor made the head
            means: the ``validation`` split (the ``test`` split already seeds the head means).
        converged: whether training stopped because the ``dev`` loss stopped improving, not because the
            epoch budget ran out (:func:`~tvlens.vectors.learned.converged`).
    """

    weights: Float[Tensor, "n_layers n_heads"]
    head_means: Float[Tensor, "n_layers n_heads d_model"]
    history: list[dict[str, Any]]
    best_epoch: int
    val: EvalResult | None
    path: str
    head_source: str = "mean"
    source_shots: int | None = None
    task: Task | None = None
    test: EvalResult | None = None
    converged: bool = True

    def interventions_for(self, model: HookedModel, batch: ICLBatch,
                          heads: Float[Tensor, "batch n_layers n_heads d_model"] | None = None) -> list[Intervention]:
        """The per-layer vectors for the prompts of ``batch`` (an ICL batch; inject into its zero-shot view).

        With ``head_source="prompt"`` each example gets ``v_l = Σ_k ω_{l,k} a^l_k`` from its own shorter
        prompt; with ``"mean"`` every example gets the same vectors. ``heads``: the outputs ``a^l_k`` already read
        from ``batch``'s prompts (:func:`~tvlens.vectors.function.project_heads`), when ``source_shots`` keeps
        all their demonstrations (the prompts are then not run again).
        """
        if self.head_source == "mean":
            v = torch.einsum("lh,lhd->ld", self.weights, self.head_means)
        else:
            if self.task is None or self.source_shots is None:
                raise ValueError("interventions_for: head_source='prompt' needs the result's task and source_shots "
                                 "(set by head_weighted_task_vector)")
            if heads is None or self.source_shots != batch.n_shots:
                heads = project_heads(model, prompt_head_z(model, self.task.shorter(batch, self.source_shots)))
            v = torch.einsum("lh,blhd->bld", self.weights, heads)
        return [Intervention(v[..., layer, :], layer, hook="resid_post") for layer in range(model.n_layers)]

    def to_records(self) -> list[dict[str, Any]]:
        """One row per head: its learned weight ``ω`` and the norm of its mean output ``ā^l_k``."""
        return head_records({"weight": self.weights.detach(), "head_mean_norm": self.head_means.norm(dim=-1)},
                            head_source=self.head_source)


def head_weighted_task_vector(
    model: HookedModel,
    task: Task,
    *,
    n_shots: int | None = None,
    n_head_prompts: int = 100,
    head_source: str = "mean",
    source_shots: int | None = None,
    align_weight: float = 0.0,
    config: LearnConfig | None = None,
    progress: bool = True,
    path: str = "auto",
    **overrides: Any,
) -> tuple[TaskVector, HeadWeightedResult]:
    """Learn head weights ``ω`` for ``task`` (use ``task.single(k)`` for one task of a family).

    Args:
        n_head_prompts: clean n-shot prompts averaged into ``ā^l_k`` (the ``test`` split of ``config.seed``).
        head_source: ``"mean"`` (``ā^l_k`` over prompts) or ``"prompt"`` (each prompt's own heads).
        source_shots: demonstrations of the shorter prompt for ``head_source="prompt"`` (default: half).
        align_weight: weight of the ``1 − cos`` alignment to the ICL final hidden state.
        config: training settings (default :data:`HEAD_WEIGHTED_DEFAULTS`); ``overrides`` replace fields.
        path: the query engine's path: ``"auto"`` (cached wherever it is exact), ``"cached"`` or ``"full"``.
    """
    check_path(path)
    if align_weight < 0:
        raise ValueError(f"align_weight={align_weight!r}: expected >= 0")
    if head_source not in ("mean", "prompt"):
        raise ValueError(f"head_source={head_source!r}: expected 'mean' or 'prompt'")
    config = dataclasses.replace(config or HEAD_WEIGHTED_DEFAULTS, **overrides)
    if config.loss == "auto":  # Saglam et al. 2025: a robust loss (Huber) for regression
        config = dataclasses.replace(config, loss=task.metric.robust_loss)
    splits = Splits(config.seed)
    _, head_means = mean_head_outputs(model, splits.sample(task, "test", n_head_prompts, n_shots))
    train_full = splits.sample(task, "train", config.n_train, n_shots)
    val_full = splits.sample(task, "dev", config.n_val, n_shots)
    train, val = train_full.zero_shot, val_full.zero_shot
    prompt_heads: dict[str, Tensor] = {}
    if head_source == "prompt":
        source_shots = source_shots or max(1, train_full.n_shots // 2)
        for split, full in (("train", train_full), ("val", val_full)):
            prompt_heads[split] = project_heads(model, prompt_head_z(model, task.shorter(full, source_shots)))
    gen = torch.Generator().manual_seed(config.seed)
    omega = torch.randn(model.n_layers, model.n_heads, generator=gen).to(model.dtype).requires_grad_(True)
    optimizer = torch.optim.Adam([omega], lr=config.lr)
    n_layers = model.n_layers

    # resid_post of layer l is resid_pre of layer l + 1 (the engine's layer n_layers: the final stream)
    engines = {split: QueryEngine(model, batch.inputs, batch.attention_mask, start=1 if n_layers > 1 else 0,
                                  path=path) for split, batch in (("train", train), ("val", val))}

    def vectors(weights: Tensor, split: str | None = None, rows: Tensor | None = None) -> Tensor:
        """``v_l`` as ``[n_layers, d]`` (mean heads) or ``[rows, n_layers, d]`` (each prompt's heads)."""
        if head_source == "mean" or split is None:
            return torch.einsum("lh,lhd->ld", weights, head_means)
        return torch.einsum("lh,blhd->bld", weights, prompt_heads[split][rows])

    def task_vector(weights: Tensor) -> TaskVector:
        v = vectors(weights.detach())
        return TaskVector({Site(layer, "resid_post", "last"): v[layer] for layer in range(n_layers)},
                          method="head_weighted", task=task.to_dict(), fingerprint=model.fingerprint(),
                          hyperparameters={**config.to_dict(), "align_weight": align_weight, "head_source": head_source,
                                           "source_shots": source_shots, "n_head_prompts": n_head_prompts,
                                           "weights": weights.tolist()})

    def forward(split: str, rows: Tensor) -> tuple[Tensor, Tensor]:
        v = vectors(omega, split, rows)
        edits = [StreamEdit(layer + 1, v[..., layer, :]) for layer in range(n_layers)]
        return engines[split].run(edits, rows=rows, return_resid=True)

    icl_final = {}
    if align_weight > 0:
        for split, full in (("train", train_full), ("val", val_full)):
            _, resid = model.final_residual(full.inputs, attention_mask=full.attention_mask)
            icl_final[split] = full.at_query(resid).detach()

    def loss_of(split: str, rows: Tensor) -> Tensor:
        batch = train if split == "train" else val
        logits, resid = forward(split, rows)
        loss = query_loss(logits, batch, rows, config.loss)
        if align_weight > 0:
            loss = loss + align_weight * (1 - F.cosine_similarity(resid, icl_final[split][rows], dim=-1)).mean()
        return loss

    def val_loss() -> float:
        with torch.no_grad():
            return loss_of("val", torch.arange(len(val))).item()

    history, best_epoch, (best_omega,) = fit_early_stopping(
        [omega], optimizer, lambda rows: loss_of("train", rows), val_loss, len(train), config, gen, progress,
        "learn head weights",
    )
    tv = task_vector(best_omega)
    tv.history.extend(history)
    result = HeadWeightedResult(best_omega, head_means, history, best_epoch, None, engines["train"].path, head_source,
                                source_shots, task, converged=converged(history, best_epoch, config))
    result.val = evaluate(model, task, "injected", result.interventions_for(model, val_full), batch=val_full,
                          progress=False, path=path)
    held_out = splits.sample(task, "validation", config.n_val, n_shots)
    result.test = evaluate(model, task, "injected", result.interventions_for(model, held_out), batch=held_out,
                           progress=False, path=path)
    return tv, result
