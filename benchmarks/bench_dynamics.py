"""Collecting the changes a perturbed vector causes: batched on the cached path vs one forward per copy.

``collect_changes`` runs every perturbed copy × prompt as a row of the query engine's cached path
(the prompts' prefix broadcast over the copies); the baseline runs one full forward per copy (all
prompts in its batch) with the vector injected and reads the final stream. Same numbers (max abs
difference printed), ratio printed (goal >= 10x; medians of 3 runs each), on perm-mix's zero-shot and
16-shot ICL prompts and on tiny random Llama-GQA and GPT-NeoX models (4 layers, d_model 128) with
16-shot word-pair prompts; then the time of a full ``linear_dynamics`` sweep (direct map, every
layer-to-layer map, polar splits, accuracy checks) on perm-mix. One ``ratio NAME X`` line per case.

    python benchmarks/bench_dynamics.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _families import family  # noqa: E402

from tvlens import Intervention, inject, zoo  # noqa: E402
from tvlens.analysis import collect_changes, linear_dynamics  # noqa: E402
from tvlens.models import transformer_lens_line  # noqa: E402
from tvlens.vectors import learn_task_vector  # noqa: E402


def median_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], value


def compare_collection(name: str, label: str, model, prompts, theta, n_copies: int) -> None:
    """``collect_changes`` (batched, cached) against one full forward per copy, same copies."""
    batched, (thetas, changes) = median_time(lambda: collect_changes(model, prompts, theta, 1, n_copies=n_copies))

    def loop_run():
        with torch.no_grad():
            _, clean = model.final_residual(prompts.inputs, attention_mask=prompts.attention_mask)
            out = []
            for i in range(n_copies):
                with inject(model, Intervention(thetas[i], layer=1)):
                    _, resid = model.final_residual(prompts.inputs, attention_mask=prompts.attention_mask)
                out.append((resid - clean)[:, -1])
        return out

    per_copy, loop = median_time(loop_run)
    diff = (torch.stack(loop) - changes[model.n_layers]).abs().max().item()
    print(f"{label}, {n_copies} copies x {len(prompts)} prompts: one forward per copy {per_copy:.2f} s, batched "
          f"cached {batched:.2f} s, ratio {per_copy / batched:.1f}x (goal >= 10x), max |difference| {diff:.1e}")
    print(f"ratio {name} {per_copy / batched:.2f}")


def main() -> None:
    torch.set_num_threads(2)
    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    ltv, _ = learn_task_vector(model, task, 1, progress=False)
    print(f"TransformerLens {transformer_lens_line()}.x, 2 CPU threads, vectors at layer 1")
    compare_collection("dynamics_permmix_zeroshot", "perm-mix, zero-shot prompts (3 tokens)", model,
                       task.sample(64, 16, seed=0).zero_shot, ltv.vector(), 256)
    compare_collection("dynamics_permmix_16shot", "perm-mix, 16-shot ICL prompts (67 tokens)", model,
                       task.sample(16, 16, seed=0), ltv.vector(), 256)
    for name in ("llama-gqa", "neox"):
        hf, words = family(name)
        theta = torch.randn(hf.d_model, generator=torch.Generator().manual_seed(0))
        prompts = words.sample(16, 16, seed=0)
        compare_collection(f"dynamics_{name}_16shot", f"{name} (4 layers, d 128), 16-shot word pairs "
                           f"({prompts.inputs.shape[1]} cols)", hf, prompts, theta, 64)
    start = time.perf_counter()
    result = linear_dynamics(model, task, ltv, progress=False)
    sweep = time.perf_counter() - start
    print(f"full linear_dynamics sweep on perm-mix (direct + {len(result.steps)} layer maps, fresh held-out copies, "
          f"checks): {sweep:.1f} s")


if __name__ == "__main__":
    main()
