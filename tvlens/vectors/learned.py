"""Learned task vectors (LTV, Yang et al. 2025a): a free vector trained by gradient descent against a frozen model.

One vector ``θ ∈ R^d`` per (layer ``l``, position ``p``), initialised ``U(−init_scale, init_scale)``,
is **added** to ``h^l_p`` of the zero-shot prompt (or of an n-shot ICL prompt, ``base="icl"``). Only
``θ`` trains: cross-entropy of the answer over the full vocabulary (symbolic) or squared / Huber
error of the query prediction (regression); AdamW (lr 5e-3, weight decay 0.01); at most
``epochs`` passes over ``n_train`` prompts, early stopping with ``patience`` on a validation split
(Yang et al. 2025a's defaults: 600/400 prompts, ≤ 10 epochs, patience 2). The best-validation ``θ`` is kept.

Training runs on :class:`~tvlens.models.engine.QueryEngine`: on every architecture its cached path
covers, the prompts' columns before the first vector's position are computed once and each step
runs only the rest through layers ``≥ l`` (at the last position: the query alone) — the same loss
and gradient as the full forward, a fraction of the work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from tvlens._checks import check_int
from tvlens._config import Config
from tvlens._progress import progress_bar
from tvlens._records import Records
from tvlens.models.engine import QueryEngine, StreamEdit, check_path
from tvlens.models.hooked import HookedModel
from tvlens.scoring import EvalResult, scores_at_query
from tvlens.tasks.base import ICLBatch, Task, check_base
from tvlens.tasks.splits import Splits
from tvlens.vectors.task_vector import Site, TaskVector


@dataclass
class LearnConfig(Config):
    """Hyper-parameters of LTV training.

    The defaults train until the ``dev`` loss stops improving (``patience`` epochs without a new best), with
    ``epochs`` only a safety budget: on the zoo the kept epoch comes before the budget runs out, and a result
    whose budget did run out says so (:attr:`LearnResult.converged`).

    Attributes:
        lr, weight_decay: AdamW settings.
        epochs: most passes over the training prompts (a budget, not a schedule).
        batch_size: prompts per step.
        n_train, n_val: training / validation prompts (the ``train`` and ``dev`` splits of
            :class:`~tvlens.tasks.Splits`).
        patience: epochs without validation improvement before stopping.
        init_scale: ``θ ~ U(−init_scale, init_scale)``.
        loss: ``"auto"`` (cross-entropy for symbolic tasks, ``"mse"`` for regression), ``"ce"``,
            ``"mse"`` or ``"huber"``.
        seed: seeds the prompts, the initialisation and the minibatch order.
    """

    lr: float = 0.05
    weight_decay: float = 0.01
    epochs: int = 60
    batch_size: int = 32
    n_train: int = 600
    n_val: int = 400
    patience: int = 3
    init_scale: float = 0.1
    loss: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "n_train", "n_val", "patience"):
            check_int(f"LearnConfig.{name}", getattr(self, name), 1)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"LearnConfig.lr={self.lr!r}: expected a finite positive number")
        if self.loss not in ("auto", "ce", "mse", "huber"):
            raise ValueError(f"LearnConfig.loss={self.loss!r}: expected 'auto', 'ce', 'mse' or 'huber'")


@dataclass
class LearnResult(Records):
    """What :func:`learn_task_vector` did.

    Attributes:
        history: per-epoch losses.
        best_epoch: the epoch whose vector is kept (chosen on the ``dev`` split).
        val: the kept vector's score on the ``dev`` prompts — the ones early stopping chose it on, so an
            optimistic number.
        test: its score on the ``test`` split's prompts, which neither trained nor chose it.
        path: the query engine's path, ``"cached"`` or ``"full"``.
        converged: whether training stopped because the ``dev`` loss stopped improving (``patience`` epochs
            after the kept one), not because the epoch budget ran out.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    val: EvalResult
    test: EvalResult
    path: str
    extra: dict[str, Any] = field(default_factory=dict)
    converged: bool = True

    def to_records(self) -> list[dict[str, Any]]:
        """One row per epoch (``epoch``, ``train_loss``, ``val_loss``), marking the kept one."""
        return [{**row, "best": row["epoch"] == self.best_epoch, "path": self.path} for row in self.history]


def query_loss(logits: Tensor, batch: ICLBatch, rows: Tensor, loss: str) -> Tensor:
    """Training loss of the query predictions ``logits [rows, d_vocab]`` of ``batch``'s ``rows`` (the batch's
    metric decides what ``loss="auto"`` means: cross-entropy, or squared error for regression)."""
    return batch.metric.training_loss(logits, batch.targets[rows].to(logits.device), loss)


def _site_list(model: HookedModel, layer: int | list[int], positions: Any) -> list[Site]:
    layers = [layer] if isinstance(layer, int) else list(layer)
    if not layers:
        raise ValueError("layer=[]: expected at least one layer")
    if isinstance(positions, (list, tuple)):
        pos_list = list(positions)
    elif isinstance(positions, (int, str)) and positions not in ("all",):
        pos_list = [positions]
    else:
        raise ValueError(f"positions={positions!r}: learned vectors take 'last', an int or a list of ints "
                         "(one vector per position)")
    return [Site(model.check_layer(lay), "resid_pre", p) for lay in layers for p in pos_list]


def fit_early_stopping_many(
    groups: list[list[Tensor]],
    optimizer: torch.optim.Optimizer,
    batch_losses: Callable[[Any, list[int]], list[Tensor]],
    val_losses: Callable[[list[int]], list[float]],
    n_train: int,
    config: LearnConfig,
    generator: torch.Generator | Sequence[torch.Generator],
    progress: bool = True,
    desc: str = "learn",
) -> list[tuple[list[dict[str, Any]], int, list[Tensor]]]:
    """Train independent parameter groups side by side, each with its own early stopping.

    Each epoch visits the rows in one fresh order (from ``generator``; the same for every group) in batches of
    ``config.batch_size``. ``batch_losses(rows, active)`` returns one loss per active group (one forward for
    all of them); their sum is back-propagated once, and since the groups share no parameter each group's
    gradient is that of its own loss. ``optimizer`` holds every group's parameters and keeps a state per
    parameter (AdamW, Adam, SGD …: an element-wise rule), and a group that has stopped is left out of the
    forward, so its parameters get no gradient and the optimizer's one step per minibatch skips them: each
    group trains exactly as it would alone with an optimizer of its own (the same numbers, bit for bit, for
    ``torch.optim.AdamW``). After the epoch,
    ``val_losses(active)`` is compared with each group's best so far; a group stops after ``config.patience``
    epochs without improvement and drops out of the later forwards.

    With a sequence of generators (groups trained on several prompt sets, each with its own seed) every
    generator draws its own order each epoch, and ``batch_losses`` receives the list of each stream's rows.

    Returns:
        Per group: the history (``{"epoch", "train_loss", "val_loss"}`` per epoch, epoch 0 = before
        training), the best epoch, and detached copies of its parameters at that epoch.
    """
    n = len(groups)
    if n == 0:
        raise ValueError("groups=[]: expected at least one group of parameters")
    owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
    held = sum(id(p) in owned for group in groups for p in group)
    if held < sum(len(group) for group in groups):
        raise ValueError(f"optimizer: holds {held} of the groups' {sum(len(g) for g in groups)} parameters; expected "
                         "every group's parameters (one optimizer for all, one step per minibatch)")
    streams = [generator] if isinstance(generator, torch.Generator) else list(generator)
    first = val_losses(list(range(n)))
    if not all(math.isfinite(v) for v in first):  # before any step: the model, not the learning rate
        raise ValueError(f"{desc}: the validation loss is {next(v for v in first if not math.isfinite(v))} before "
                         "any learning step; the model's own outputs are not finite (NaN or infinite weights, or "
                         "float16 on a CPU): expected a model that gives finite outputs (e.g. load it in float32)")
    histories: list[list[dict[str, Any]]] = [[{"epoch": 0, "val_loss": v}] for v in first]
    best_loss, best_epoch, bad = list(first), [0] * n, [0] * n
    best = [[p.detach().clone() for p in group] for group in groups]
    active = list(range(n))
    bar = progress_bar(range(1, config.epochs + 1), desc=desc, progress=progress)
    for epoch in bar:
        orders = [torch.randperm(n_train, generator=g) for g in streams]
        losses: list[list[float]] = [[] for _ in active]
        for start in range(0, n_train, config.batch_size):
            rows = [order[start : start + config.batch_size] for order in orders]
            step = torch.stack(batch_losses(rows[0] if isinstance(generator, torch.Generator) else rows, active))
            values = step.detach().tolist()
            for j, value in enumerate(values):
                if not math.isfinite(value):
                    raise ValueError(f"{desc}: the training loss is {value} at epoch {epoch}, step "
                                     f"{len(losses[j]) + 1} (lr={config.lr}); training stopped — lower the "
                                     "learning rate")
                losses[j].append(value)
            optimizer.zero_grad(set_to_none=True)
            step.sum().backward()
            optimizer.step()
        current = val_losses(active)
        for j, g in enumerate(active):
            if not math.isfinite(current[j]):
                raise ValueError(f"{desc}: the validation loss is {current[j]} after epoch {epoch} (lr={config.lr}); "
                                 "training stopped — lower the learning rate")
            histories[g].append({"epoch": epoch, "train_loss": sum(losses[j]) / len(losses[j]),
                                 "val_loss": current[j]})
            if current[j] < best_loss[g] - 1e-6:
                best_loss[g], best_epoch[g], bad[g] = current[j], epoch, 0
                best[g] = [p.detach().clone() for p in groups[g]]
            else:
                bad[g] += 1
        bar.set_postfix(val_loss=f"{min(current):.4f}")
        active = [g for g in active if bad[g] < config.patience]
        if not active:
            break
    return [(histories[g], best_epoch[g], best[g]) for g in range(n)]


def fit_early_stopping(
    parameters: list[Tensor],
    optimizer: torch.optim.Optimizer,
    batch_loss: Callable[[Tensor], Tensor],
    val_loss: Callable[[], float],
    n_train: int,
    config: LearnConfig,
    generator: torch.Generator,
    progress: bool = True,
    desc: str = "learn",
) -> tuple[list[dict[str, Any]], int, list[Tensor]]:
    """:func:`fit_early_stopping_many` for one group of parameters."""
    (out,) = fit_early_stopping_many([parameters], optimizer, lambda rows, _: [batch_loss(rows)],
                                     lambda _: [val_loss()], n_train, config, generator, progress, desc)
    return out


def converged(history: list[dict[str, Any]], best_epoch: int, config: LearnConfig) -> bool:
    """Whether a run of :func:`fit_early_stopping` converged: ``patience`` epochs ran after the kept one
    without a better ``dev`` loss (training stopped for that reason, or the budget ended right then)."""
    return (len(history) - 1) - best_epoch >= config.patience


def learn_task_vector(
    model: HookedModel,
    task: Task,
    layer: int | list[int] = 0,
    positions: int | str | list[int] = "last",
    *,
    base: str = "zero_shot",
    n_shots: int | None = None,
    config: LearnConfig | None = None,
    path: str = "auto",
    progress: bool = True,
    **overrides: Any,
) -> tuple[TaskVector, LearnResult]:
    """Train a learned task vector for ``task`` (use ``task.single(k)`` for one task of a family).

    Args:
        model: the frozen model.
        task: the task.
        layer: one layer or a list: one vector over all these sites, trained jointly (one vector per layer and
            position). For *independent* vectors, one per layer, use :func:`learn_task_vectors`.
        positions: ``"last"``, an int (negative counts from the end) or a list of ints.
        base: ``"zero_shot"`` (Yang et al. 2025a's main setting) or ``"icl"`` (added to n-shot prompts).
        n_shots: demonstrations of the ICL prompts.
        config: a :class:`LearnConfig`; keyword ``overrides`` replace its fields.
        path: the query engine's path: ``"auto"`` (cached wherever it is exact), ``"cached"`` or ``"full"``.
        progress: tqdm bar over epochs.

    Returns:
        The vector (``mode="add"``) and a :class:`LearnResult`.
    """
    check_base(base)
    check_path(path)
    config = dataclasses.replace(config or LearnConfig(), **overrides)
    ((out,),) = _learn_groups(model, [(task, config)], [[_site_list(model, layer, positions)]], base, n_shots, path,
                              progress)
    return out


def learn_task_vectors(
    model: HookedModel,
    task: Task,
    layers: list[int] | None = None,
    positions: int | str | list[int] = "last",
    *,
    base: str = "zero_shot",
    n_shots: int | None = None,
    config: LearnConfig | None = None,
    path: str = "auto",
    progress: bool = True,
    **overrides: Any,
) -> dict[int, tuple[TaskVector, LearnResult]]:
    """Independent learned task vectors, one per layer of ``layers`` (default: every block), trained side by side.

    Each result equals ``learn_task_vector(model, task, layer, positions, …)`` with the same arguments, to float
    tolerance: the same prompts, initial vector, minibatch order and early stopping, its own optimizer. The
    work is shared: every split's prompts are run up to the lowest layer once (the query engine's prefix), the
    vectors train as copies of each minibatch in one batched forward, each copy leaves the batch when its
    ``dev`` loss stops improving, and the kept vectors are scored on ``dev`` and ``test`` by the same engines.

    Returns:
        ``{layer: (vector, result)}`` in the order of ``layers``.
    """
    config = dataclasses.replace(config or LearnConfig(), **overrides)
    (out,) = learn_task_vectors_many(model, [(task, config.seed)], layers, positions, base=base, n_shots=n_shots,
                                     config=config, path=path, progress=progress)
    return out


def learn_task_vectors_many(
    model: HookedModel,
    jobs: Sequence[tuple[Task, int] | tuple[Task, int, list[int]]],
    layers: list[int] | None = None,
    positions: int | str | list[int] = "last",
    *,
    base: str = "zero_shot",
    n_shots: int | None = None,
    config: LearnConfig | None = None,
    path: str = "auto",
    progress: bool = True,
    **overrides: Any,
) -> list[dict[int, tuple[TaskVector, LearnResult]]]:
    """:func:`learn_task_vectors` for several ``(task, seed)`` jobs at once (the tasks of a family, several seeds),
    trained side by side on one model.

    Job ``i``'s result equals ``learn_task_vectors(model, task_i, layers_i, positions, seed=seed_i, …)`` to float
    tolerance: its own prompts (the splits of ``seed_i``), initial vector, minibatch order, optimizers and early
    stopping. A job is ``(task, seed)`` (its layers: ``layers``) or ``(task, seed, its_layers)`` (each unit of a
    ledger at the layer chosen for it). The work is shared: each split's prompts of every job form one query
    engine (one prefix forward, from the lowest layer of any job), and every step runs all the jobs' minibatches
    with their vectors in one batched forward, so a ledger of many small units pays the per-step cost once
    instead of once per unit.

    Returns:
        Per job, ``{layer: (vector, result)}`` in the order of its layers.
    """
    check_base(base)
    check_path(path)
    config = dataclasses.replace(config or LearnConfig(), **overrides)
    jobs = list(jobs)
    if not jobs:
        raise ValueError("jobs=[]: expected (task, seed) pairs, at least one")
    per_job = []
    for i, job in enumerate(jobs):
        if not (isinstance(job, tuple) and len(job) in (2, 3) and isinstance(job[1], int)
                and not isinstance(job[1], bool)):
            raise TypeError(f"jobs[{i}]={job!r}: expected a (task, seed) pair or a (task, seed, layers) triple")
        mine = (list(range(model.n_layers)) if layers is None else list(layers)) if len(job) == 2 else list(job[2])
        if not mine or len(set(mine)) != len(mine):
            where = "layers" if len(job) == 2 else f"jobs[{i}] layers"
            raise ValueError(f"{where}={mine!r}: expected distinct layers, at least one")
        per_job.append(mine)
    configs = [(job[0], dataclasses.replace(config, seed=job[1])) for job in jobs]
    groups = [[_site_list(model, layer, positions) for layer in mine] for mine in per_job]
    return [dict(zip(mine, out)) for mine, out in
            zip(per_job, _learn_groups(model, configs, groups, base, n_shots, path, progress))]


def _concat(batches: list[ICLBatch]) -> tuple[Tensor, Tensor | None]:
    """The inputs and attention mask of several prompt sets as one (left-padded to the widest)."""
    if len(batches) == 1:
        return batches[0].inputs, batches[0].attention_mask
    width = max(b.inputs.shape[1] for b in batches)
    if all(b.inputs.shape[1] == width and b.attention_mask is None for b in batches):
        return torch.cat([b.inputs for b in batches]), None
    inputs, masks = [], []
    for b in batches:
        pad = width - b.inputs.shape[1]
        mask = torch.ones(b.inputs.shape[:2], dtype=torch.long) if b.attention_mask is None else b.attention_mask
        inputs.append(torch.cat([b.inputs.new_zeros((len(b), pad, *b.inputs.shape[2:])), b.inputs], 1))
        masks.append(torch.cat([mask.new_zeros(len(b), pad), mask], 1))
    return torch.cat(inputs), torch.cat(masks)


def _learn_groups(
    model: HookedModel, jobs: list[tuple[Task, LearnConfig]], groups: list[list[list[Site]]], base: str,
    n_shots: int | None, path: str, progress: bool,
) -> list[list[tuple[TaskVector, LearnResult]]]:
    """The one fitting routine of learned vectors: per job (a task and its config, seed included), each of its
    ``groups`` of sites is one vector; all vectors independent, trained side by side.

    The groups of a job have the same number of sites, so each starts from the same initial values a lone run
    draws (``U(−init_scale, init_scale)`` from ``Generator(seed)``, site by site) and the minibatch order that
    follows those draws is the same for all the groups of a job. The jobs differ in task, seed and groups.
    """
    for job_groups in groups:
        if len({len(g) for g in job_groups}) != 1:
            raise ValueError("every independent vector of a job needs the same number of sites")
    config = jobs[0][1]
    n_jobs = len(jobs)
    #: copy ``g`` (one vector): its job and its sites, job by job
    owner = [j for j, job_groups in enumerate(groups) for _ in job_groups]
    sites = [group for job_groups in groups for group in job_groups]
    full, prompts, gens, thetas = [], [], [], []
    for (task, job_config), job_groups in zip(jobs, groups):
        splits = Splits(job_config.seed)
        batches = {split: splits.sample(task, name, n, n_shots) for split, name, n in
                   (("train", "train", config.n_train), ("val", "dev", config.n_val), ("test", "test", config.n_val))}
        full.append(batches)
        prompts.append({split: batch.view(base) for split, batch in batches.items()})
        gen = torch.Generator().manual_seed(job_config.seed)
        init = [((torch.rand(model.d_model, generator=gen) * 2 - 1) * config.init_scale).to(model.dtype)
                for _ in job_groups[0]]
        gens.append(gen)
        thetas += [{site: value.clone().to(model.device).requires_grad_(True) for site, value in zip(group, init)}
                   for group in job_groups]
    # one optimizer for every copy, one update per minibatch: AdamW keeps a state per vector, and a copy that has
    # stopped gets no gradient, so it is skipped (bit for bit what an optimizer per copy does)
    optimizer = torch.optim.AdamW([v for theta in thetas for v in theta.values()], lr=config.lr,
                                  weight_decay=config.weight_decay, foreach=True)
    zero = torch.zeros(model.d_model, dtype=model.dtype, device=model.device)  # a copy's vector at a site it lacks
    every = [site for group in sites for site in group]
    lowest = [min(site.layer for site in group) for group in sites]  # copy g's first edited layer
    start, where = min(s.layer for s in every), list(dict.fromkeys(s.positions for s in every))
    engines, offsets = {}, {}
    for split in ("train", "val", "test"):
        inputs, mask = _concat([p[split] for p in prompts])
        engines[split] = QueryEngine(model, inputs, mask, start=start, positions=where, path=path)
        sizes = [len(p[split]) for p in prompts]
        offsets[split] = [sum(sizes[:j]) for j in range(n_jobs)]

    def forward(split: str, rows: list[Tensor], active: list[int], vectors: list[dict[Site, Tensor]]) -> Tensor:
        """Query logits ``[len(active), n, d_vocab]``: copy ``j`` runs the minibatch ``rows`` of copy
        ``active[j]``'s job and carries that copy's vector (zeros at the sites it does not have)."""
        if len(active) == 1 and n_jobs == 1:  # one vector: edits of one row, as a lone run makes them
            edits = [StreamEdit(site.layer, v, site.positions) for site, v in vectors[active[0]].items()]
            return engines[split].run(edits, rows=rows[0])[None]
        # the copies by their lowest layer: a copy's rows join the run there (the engine's ``enter``)
        order = sorted(range(len(active)), key=lambda j: lowest[active[j]])
        ordered = [active[j] for j in order]
        n, edits = len(rows[0]), []
        for site in dict.fromkeys(s for g in ordered for s in vectors[g]):
            per_copy = torch.stack([vectors[g].get(site, zero) for g in ordered])  # [copies, d]
            edits.append(StreamEdit(site.layer, per_copy[:, None].expand(-1, n, -1).reshape(-1, per_copy.shape[-1]),
                                    site.positions))
        index = torch.cat([rows[owner[g]] + offsets[split][owner[g]] for g in ordered])
        # a copy's rows carry one vector: a prompt repeated in its minibatch runs once
        variants = torch.arange(len(ordered), device=index.device).repeat_interleave(n)
        enter = torch.tensor([lowest[g] for g in ordered], device=index.device).repeat_interleave(n)
        logits = engines[split].run(edits, rows=index, variants=variants, enter=enter).view(len(ordered), n, -1)
        return logits[torch.tensor(order).argsort()]

    def val_losses(active: list[int]) -> list[float]:
        totals = [0.0] * len(active)
        n_val = len(prompts[0]["val"])
        with torch.no_grad():
            for rows in _row_chunks(n_val):
                logits = forward("val", [rows] * n_jobs, active, thetas)
                for j, g in enumerate(active):
                    totals[j] += query_loss(logits[j], prompts[owner[g]]["val"], rows, config.loss).item() * len(rows)
        return [t / n_val for t in totals]

    def batch_losses(rows: list[Tensor], active: list[int]) -> list[Tensor]:
        logits = forward("train", rows, active, thetas)
        return [query_loss(logits[j], prompts[owner[g]]["train"], rows[owner[g]], config.loss)
                for j, g in enumerate(active)]

    fitted = fit_early_stopping_many([list(theta.values()) for theta in thetas], optimizer, batch_losses, val_losses,
                                     len(prompts[0]["train"]), config, gens, progress, "learn task vector")
    kept = [dict(zip(sites[g], best)) for g, (_, _, best) in enumerate(fitted)]
    everyone = list(range(len(thetas)))
    with torch.no_grad():  # the kept vectors scored by the same engines: no prompt runs through the model again
        scores = {}
        for split in ("val", "test"):
            chunks: list[list[dict[str, Tensor]]] = [[] for _ in everyone]
            for rows in _row_chunks(len(prompts[0][split])):
                logits = forward(split, [rows] * n_jobs, everyone, kept)
                for g in everyone:
                    chunks[g].append(scores_at_query(prompts[owner[g]][split].select(rows), logits[g]))
            scores[split] = [EvalResult.from_scores("injected", prompts[owner[g]][split],
                                                    {k: torch.cat([c[k] for c in chunks[g]]) for k in chunks[g][0]})
                             for g in everyone]
    out: list[list[tuple[TaskVector, LearnResult]]] = [[] for _ in jobs]
    fingerprint = model.fingerprint()
    for g, (history, best_epoch, _) in enumerate(fitted):
        j = owner[g]
        task, job_config = jobs[j]
        tv = TaskVector(kept[g], mode="add", method="learned", task=task.to_dict(), fingerprint=dict(fingerprint),
                        hyperparameters={**job_config.to_dict(), "base": base, "n_shots": full[j]["train"].n_shots,
                                         "sites": [s.to_dict() for s in sites[g]], "path": engines["train"].path},
                        history=history)
        result = LearnResult(history=history, best_epoch=best_epoch, val=scores["val"][g], test=scores["test"][g],
                             path=engines["train"].path, converged=converged(history, best_epoch, job_config))
        out[j].append((tv, result))
    return out


def _row_chunks(n: int, size: int = 256) -> list[Tensor]:
    """The row indices ``0 … n-1`` in chunks of ``size`` (what one no-grad engine call scores)."""
    return list(torch.arange(n).split(size))


