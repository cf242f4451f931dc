"""Function vectors (Todd et al. 2024): a sum of the mean outputs of the causally important heads.

1. **Mean head outputs.** Over clean n-shot prompts, average every head's output at the query
   position, projected into the stream: ``ā^l_k = mean_i z^l_{N,k}(i) W_O[l,k]``.
2. **Average indirect effect (AIE).** Corrupt prompts by shuffling their labels. For each head,
   patch its query-position output with ``ā^l_k`` and measure how much the answer improves:
   ``AIE(l,k) = mean_i [ p(y_q | patched_i) − p(y_q | corrupted_i) ]`` (for regression the drop
   of the squared error). The patch touches the query column only, so the corrupted prompts'
   other columns run once (the query engine's prefix) and each layer's ``H`` patches run as ``H``
   copies of the query column alone: copy ``k`` patches head ``k``.
3. **Function vector.** ``FV = Σ_{(l,k) ∈ top-k by AIE} ā^l_k``, added at one layer (≈ L/3 in
   Todd; or swept on a dev split) at the last position.

Todd et al.'s code differs in two details, both available: it projects a head's mean ``z`` with
the attention output layer *including its bias*, so every selected head adds its layer's output
bias ``b_O[l]`` once (``output_bias=True``); and it averages over prompts of its *validation*
split that the model answers correctly in context (``procedure="todd"``, which also turns the
bias on). tvlens' default leaves the bias out — ``ā^l_k`` is the head's own contribution — and
averages over the extraction prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from tvlens._progress import progress_bar
from tvlens._records import Records, head_records
from tvlens.models.engine import QueryEngine, check_path
from tvlens.models.hooked import HookedModel
from tvlens.scoring import evaluate
from tvlens.tasks.base import ICLBatch, Task
from tvlens.tasks.splits import Splits
from tvlens.vectors.task_vector import TaskVector
from tvlens.vectors.vanilla import LayerSweep, query_states, sweep_layers


def prompt_head_z(
    model: HookedModel, batch: ICLBatch, batch_size: int = 256
) -> Float[Tensor, "batch n_layers n_heads d_head"]:
    """Every head's ``z`` at each prompt's query position (one forward per chunk of prompts)."""
    layers = list(range(model.n_layers))
    return query_states(model, batch, layers, hook="attn.hook_z", batch_size=batch_size).transpose(0, 1)


def project_heads(
    model: HookedModel, z: Float[Tensor, "*batch n_layers n_heads d_head"]
) -> Float[Tensor, "*batch n_layers n_heads d_model"]:
    """Head outputs in the stream: ``a^l_k = z^l_k W_O[l,k]``."""
    return torch.einsum("...lhk,lhkd->...lhd", z, model.W_O)


def mean_head_outputs(
    model: HookedModel, batch: ICLBatch, batch_size: int = 256
) -> tuple[Float[Tensor, "n_layers n_heads d_head"], Float[Tensor, "n_layers n_heads d_model"]]:
    """Mean ``z`` and mean projected output ``ā^l_k = z̄ W_O[l,k]`` of every head at the query position."""
    z_mean = prompt_head_z(model, batch, batch_size).mean(0)
    return z_mean, project_heads(model, z_mean)


def _answer_score(query: Tensor, batch: ICLBatch, repeat: int) -> Tensor:
    """Per-row score of the query answer from the logits at the queries ``[rows, d_vocab]``
    (:meth:`tvlens.tasks.Metric.answer_score`: the answer's probability, or −squared error for regression)."""
    return batch.metric.answer_score(query, batch.targets.to(query.device).repeat(repeat))


def average_indirect_effect(
    model: HookedModel, corrupted: ICLBatch, z_mean: Float[Tensor, "n_layers n_heads d_head"], progress: bool = True,
    path: str = "auto",
) -> Float[Tensor, "n_layers n_heads"]:
    """AIE of every head: the rise of the answer's score when its query-position ``z`` is set to ``z̄``.

    The patch changes the query column only, so everything before it is the same for every head: the
    corrupted prompts' columns before the query are run once (the query engine's prefix, ``path``), and each
    layer's ``n_heads`` patches run as copies of the query column alone — copy ``k`` patches head ``k``.
    """
    n, heads = len(corrupted), model.n_heads
    group = torch.arange(heads).repeat_interleave(n)  # the head patched in each row (copy-major)
    rows = torch.arange(heads * n)
    engine = QueryEngine(model, corrupted.inputs, corrupted.attention_mask, start=0, path=path)
    with torch.no_grad():
        base = _answer_score(engine.run([]), corrupted, 1)
        aie = torch.zeros(model.n_layers, heads, dtype=base.dtype)
        for layer in progress_bar(range(model.n_layers), desc="AIE per layer", progress=progress):
            def patch(at: int, z: Tensor, layer: int = layer) -> Tensor:  # z: the query's [rows, heads, d_head]
                if at != layer:
                    return z
                z = z.clone()
                z[rows, group] = z_mean[layer, group].to(z.device, z.dtype)
                return z

            patched = _answer_score(engine.run([], copies=heads, z_edit=patch), corrupted, heads)
            aie[layer] = (patched - base.repeat(heads)).reshape(heads, n).mean(1)
    return aie


@dataclass
class FunctionVectorResult(Records):
    """What :func:`function_vector` measured.

    Attributes:
        aie: ``[n_layers, n_heads]`` average indirect effect of every head (for plotting).
        head_means: ``[n_layers, n_heads, d_model]`` mean projected head outputs ``ā^l_k`` (plus the
            layer's output bias ``b_O[l]`` when it was asked for).
        top_heads: the ``(layer, head)`` pairs summed into the vector, most important first.
        vector: the function vector ``[d_model]``.
        sweep: per-layer dev scores, chosen layer, test score (when the layer was swept).
    """

    aie: Float[Tensor, "n_layers n_heads"]
    head_means: Float[Tensor, "n_layers n_heads d_model"]
    top_heads: list[tuple[int, int]]
    vector: Float[Tensor, " d_model"]
    layer: int
    sweep: LayerSweep | None = None

    def to_records(self) -> list[dict[str, Any]]:
        """One row per head: its AIE, whether it is in the vector, and its rank there."""
        rank = {head: i for i, head in enumerate(self.top_heads)}
        return [{**row, "in_vector": (row["layer"], row["head"]) in rank,
                 "rank": rank.get((row["layer"], row["head"]))} for row in head_records({"aie": self.aie})]


def default_top_k(model: HookedModel) -> int:
    """The function vector's default number of heads: 10 % of the model's heads, at least 2 (Todd et al. 2024
    use 10 heads of GPT-J's 448)."""
    return max(2, model.n_layers * model.n_heads // 10)


def function_vector(
    model: HookedModel,
    task: Task,
    layer: int | None = None,
    *,
    top_k: int = 10,
    n_prompts: int = 100,
    n_corrupted: int = 25,
    n_shots: int | None = None,
    dev_prompts: int = 100,
    test_prompts: int = 200,
    seed: int = 0,
    procedure: str = "tvlens",
    output_bias: bool | None = None,
    progress: bool = True,
    path: str = "auto",
) -> tuple[TaskVector, FunctionVectorResult]:
    """Todd et al.'s function vector of ``task`` (use ``task.single(k)`` for one task of a family).

    Args:
        layer: injection layer; ``None`` sweeps every layer on a dev split (Todd: ≈ L/3).
        top_k: heads summed (Todd: 10 for 6B models; scale with size).
        n_prompts: clean prompts for the mean head outputs (the ``train`` split of :class:`~tvlens.tasks.Splits`).
        n_corrupted: prompts with shuffled labels for the AIE (the first ``n_corrupted`` clean ones).
        procedure: ``"tvlens"`` (means over ``n_prompts`` prompts of the ``train`` split) or ``"todd"`` (Todd's
            reference: means over the prompts of the ``validation`` split — apart from the ``dev`` split
            that chooses the layer and the ``test`` split that scores it — that the model answers
            correctly in context; output bias on unless ``output_bias=False``).
        output_bias: add the attention output bias ``b_O[l]`` once per selected head, as Todd's code
            does (default: off for ``"tvlens"``, on for ``"todd"``).
        progress: tqdm bars over the AIE layers and the layer sweep.
        path: the query engine's path for the AIE scan: ``"auto"`` (cached wherever it is exact), ``"cached"``
            or ``"full"``.
    """
    check_path(path)
    if procedure not in ("tvlens", "todd"):
        raise ValueError(f"procedure={procedure!r}: expected 'tvlens' or 'todd'")
    if output_bias is not None and not isinstance(output_bias, bool):
        raise TypeError(f"output_bias={output_bias!r}: expected True, False or None (the procedure's default)")
    with_bias = procedure == "todd" if output_bias is None else output_bias
    n_heads_total = model.n_layers * model.n_heads
    if not 1 <= top_k <= n_heads_total:
        raise ValueError(f"top_k={top_k}: expected 1 <= top_k <= {n_heads_total} (the model's heads)")
    if not 1 <= n_corrupted <= n_prompts:
        raise ValueError(f"n_corrupted={n_corrupted}: expected 1 <= n_corrupted <= n_prompts={n_prompts}")
    at = None if layer is None else model.check_layer(layer)  # before the expensive head effects
    splits = Splits(seed)
    if procedure == "todd":
        # its own split: the layer sweep chooses on the dev split and scores on the test split
        validation = splits.sample(task, "validation", n_prompts, n_shots)
        correct = evaluate(model, task, "icl", batch=validation, progress=False).values.bool()
        if int(correct.sum()) < n_corrupted:
            raise ValueError(f"procedure='todd': the model answers {int(correct.sum())} of {n_prompts} validation "
                             f"prompts correctly; expected at least n_corrupted={n_corrupted} (use more prompts)")
        clean = validation.select(correct.nonzero().flatten())
    else:
        clean = splits.sample(task, "train", n_prompts, n_shots)
    z_mean, head_means = mean_head_outputs(model, clean)
    if with_bias:  # Todd's out_proj(z in head k's slot) = z W_O[l,k] + b_O[l]
        head_means = head_means + model.b_O[:, None, :].to(head_means.dtype)
    corrupted = task.with_shuffled_labels(clean.select(slice(0, n_corrupted)), torch.Generator().manual_seed(seed))
    aie = average_indirect_effect(model, corrupted, z_mean, progress=progress, path=path)
    order = aie.flatten().argsort(descending=True)[:top_k]
    top = [(int(i) // model.n_heads, int(i) % model.n_heads) for i in order]
    vector = sum(head_means[lh] for lh in top)

    hyper = {"top_k": top_k, "n_prompts": n_prompts, "n_corrupted": n_corrupted, "n_shots": clean.n_shots,
             "seed": seed, "top_heads": top, "procedure": procedure, "output_bias": with_bias,
             "n_mean_prompts": len(clean)}
    fingerprint, task_dict = model.fingerprint(), task.to_dict()

    def make(at: int) -> TaskVector:
        return TaskVector.single(vector, at, method="function", task=task_dict, fingerprint=fingerprint,
                                 hyperparameters={**hyper, "layer": at})

    if at is not None:
        return make(at), FunctionVectorResult(aie, head_means, top, vector, at)
    sweep = sweep_layers(model, task, {at: make(at) for at in range(model.n_layers)}, n_shots=n_shots,
                         dev_prompts=dev_prompts, test_prompts=test_prompts, seed=seed, progress=progress)
    tv = make(sweep.best_layer)
    tv.history.append(sweep.to_dict())
    return tv, FunctionVectorResult(aie, head_means, top, vector, sweep.best_layer, sweep)
