"""The exact all-head ablation scan: heads as batch rows on the cached path vs one forward per head.

``ablation_scan(method="batched")`` zero-ablates each head after the vector's layer alone, every
head a block of rows of one batch, with the prompts' prefix computed once (the vector and the
ablation sit at the last position). The baseline, ``method="loop"``, runs one full forward per head
with ``ablate_heads`` + ``inject`` — the way ``transformer_lens.patching`` iterates. Same prompts,
same vector (an LTV at layer 1 of perm-mix); printed: the ratio (goal >= 5x) and the max abs
difference of the scores (goal <= 1e-5), on 16-shot ICL prompts (67 tokens) and on zero-shot prompts.

    python benchmarks/bench_heads.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare  # noqa: E402

from tvlens import zoo  # noqa: E402
from tvlens.analysis import ablation_scan  # noqa: E402
from tvlens.models import transformer_lens_line  # noqa: E402
from tvlens.vectors import learn_task_vector  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    ltv, _ = learn_task_vector(model, task, 1, progress=False, lr=0.05, epochs=15)
    settings = {
        "16-shot ICL prompts (67 tokens), 64 prompts": task.sample(64, 16, seed=0),
        "zero-shot prompts (3 tokens), 256 prompts": task.sample(256, 16, seed=0).zero_shot,
    }
    print(f"TransformerLens {transformer_lens_line()}.x, {torch.get_num_threads()} threads, "
          f"{model.n_heads * (model.n_layers - 1)} heads scanned (layers 1-{model.n_layers - 1})")
    for label, prompts in settings.items():
        batched = ablation_scan(model, prompts, ltv, method="batched")
        loop = ablation_scan(model, prompts, ltv, method="loop")
        diff = max((batched.delta[1:] - loop.delta[1:]).abs().max().item(),
                   (batched.metric[1:] - loop.metric[1:]).abs().max().item())
        times = compare({"batched": lambda p=prompts: ablation_scan(model, p, ltv, method="batched"),
                         "loop": lambda p=prompts: ablation_scan(model, p, ltv, method="loop")}, repeats=7, warmup=1)
        ratio = times["loop"] / times["batched"]
        print(f"{label}: batched {times['batched'] * 1e3:.1f} ms, per-head loop {times['loop'] * 1e3:.1f} ms, "
              f"ratio {ratio:.1f}x (goal >= 5x), max |difference| {diff:.1e} (goal <= 1e-5)")


if __name__ == "__main__":
    main()
