"""Collecting the changes a perturbed vector causes: batched on the cached path vs one forward per copy.

``collect_changes`` runs every perturbed copy × prompt as a row of the cached last-position path;
the baseline runs one full forward per copy (all prompts in its batch) with the vector injected
and reads the final stream. Same numbers (max abs difference printed), ratio printed (goal >= 10x),
then the time of a full ``linear_dynamics`` sweep (direct map + every layer-to-layer map, polar
splits, accuracy checks) on perm-mix.

    python benchmarks/bench_dynamics.py
"""

from __future__ import annotations

import time

import torch

from tvlens import Intervention, inject, zoo
from tvlens.analysis import collect_changes, linear_dynamics
from tvlens.models import transformer_lens_line
from tvlens.vectors import learn_task_vector


def main() -> None:
    torch.set_num_threads(2)
    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    ltv, _ = learn_task_vector(model, task, 1, progress=False, lr=0.05, epochs=15)
    theta = ltv.vector()
    prompts = task.sample(64, 16, seed=0).zero_shot
    n_copies = 256

    start = time.perf_counter()
    thetas, changes = collect_changes(model, prompts, theta, 1, n_copies=n_copies)
    batched = time.perf_counter() - start

    start = time.perf_counter()
    with torch.no_grad():
        _, clean = model.final_residual(prompts.inputs)
        loop = []
        for i in range(n_copies):
            with inject(model, Intervention(thetas[i], layer=1)):
                _, resid = model.final_residual(prompts.inputs)
            loop.append((resid - clean)[:, -1])
    per_copy = time.perf_counter() - start
    diff = (torch.stack(loop) - changes[model.n_layers]).abs().max().item()

    start = time.perf_counter()
    result = linear_dynamics(model, task, ltv)
    sweep = time.perf_counter() - start
    print(f"TransformerLens {transformer_lens_line()}.x, 2 CPU threads, perm-mix, LTV at layer 1, "
          f"{n_copies} copies x {len(prompts)} prompts")
    print(f"one forward per copy : {per_copy:6.2f} s")
    print(f"batched, cached      : {batched:6.2f} s   ratio {per_copy / batched:5.1f}x (goal >= 10x)   "
          f"max |difference| {diff:.1e}")
    print(f"full linear_dynamics sweep (direct + {len(result.steps)} layer maps x {len(prompts)} prompts, "
          f"fresh held-out copies, checks): {sweep:.1f} s")


if __name__ == "__main__":
    main()
