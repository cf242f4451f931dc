"""Collecting the changes a perturbed vector causes: batched on the cached path vs one forward per copy.

``collect_changes`` runs every perturbed copy × prompt as a row of the cached last-position path
(the prompts' prefix broadcast over the copies); the baseline runs one full forward per copy (all
prompts in its batch) with the vector injected and reads the final stream. Same numbers (max abs
difference printed), ratio printed (goal >= 10x; medians of 3 runs each), on zero-shot prompts and
on 16-shot ICL prompts; then the time of a full ``linear_dynamics`` sweep (direct map, every
layer-to-layer map, polar splits, accuracy checks) on perm-mix.

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

    def batched_run(prompts=prompts):
        return collect_changes(model, prompts, theta, 1, n_copies=n_copies)

    def loop_run(prompts=prompts):
        with torch.no_grad():
            _, clean = model.final_residual(prompts.inputs)
            out = []
            for i in range(n_copies):
                with inject(model, Intervention(thetas[i], layer=1)):
                    _, resid = model.final_residual(prompts.inputs)
                out.append((resid - clean)[:, -1])
        return out

    def median_time(fn, repeats=3):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2], value

    batched, (thetas, changes) = median_time(batched_run)
    per_copy, loop = median_time(loop_run)
    diff = (torch.stack(loop) - changes[model.n_layers]).abs().max().item()

    # the same on 16-shot ICL prompts (67 tokens): the cached prefix now saves most of the work
    icl_prompts = task.sample(16, 16, seed=0)
    icl_batched, (_, icl_changes) = median_time(lambda: batched_run(icl_prompts))
    icl_loop, icl_out = median_time(lambda: loop_run(icl_prompts))
    icl_diff = (torch.stack(icl_out) - icl_changes[model.n_layers]).abs().max().item()

    start = time.perf_counter()
    result = linear_dynamics(model, task, ltv)
    sweep = time.perf_counter() - start
    print(f"TransformerLens {transformer_lens_line()}.x, 2 CPU threads, perm-mix, LTV at layer 1, "
          f"{n_copies} copies x {len(prompts)} prompts")
    print(f"one forward per copy : {per_copy:6.2f} s")
    print(f"batched, cached      : {batched:6.2f} s   ratio {per_copy / batched:5.1f}x (goal >= 10x)   "
          f"max |difference| {diff:.1e}")
    print(f"16-shot ICL prompts (67 tokens), {n_copies} copies x {len(icl_prompts)} prompts: one forward per copy "
          f"{icl_loop:.2f} s, batched cached {icl_batched:.2f} s, ratio {icl_loop / icl_batched:.1f}x, "
          f"max |difference| {icl_diff:.1e}")
    print(f"full linear_dynamics sweep (direct + {len(result.steps)} layer maps x {len(prompts)} prompts, "
          f"fresh held-out copies, checks): {sweep:.1f} s")


if __name__ == "__main__":
    main()
