"""The exact all-head ablation scan: heads as batch rows on the cached path vs one forward per head.

``ablation_scan(method="batched")`` zero-ablates each head after the vector's layer alone, every
head a block of rows of one batch, with the prompts' prefix computed once (the vector and the
ablation sit at the last position). The baseline, ``method="loop"``, runs one full forward per head
with ``ablate_heads`` + ``inject`` — the way ``transformer_lens.patching`` iterates. Same prompts,
same vector (an LTV at layer 1); printed: the ratio (goal >= 5x) and the max abs difference of the
scores (goal <= 1e-5), on perm-mix's 16-shot ICL prompts (67 tokens) and zero-shot prompts, and on
tiny random Llama-GQA and GPT-NeoX models (4 layers, d_model 128) with 16-shot word-pair prompts.
One ``ratio NAME X`` line per case.

    python benchmarks/bench_heads.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _families import family  # noqa: E402
from _timing import compare  # noqa: E402

from tvlens import zoo  # noqa: E402
from tvlens.analysis import ablation_scan  # noqa: E402
from tvlens.models import transformer_lens_line  # noqa: E402
from tvlens.vectors import learn_task_vector  # noqa: E402


def scan(name: str, label: str, model, prompts, vector) -> None:
    batched = ablation_scan(model, prompts, vector, method="batched")
    loop = ablation_scan(model, prompts, vector, method="loop")
    diff = max((batched.delta[1:] - loop.delta[1:]).abs().max().item(),
               (batched.metric[1:] - loop.metric[1:]).abs().max().item())
    times = compare({"batched": lambda: ablation_scan(model, prompts, vector, method="batched"),
                     "loop": lambda: ablation_scan(model, prompts, vector, method="loop")}, repeats=5, warmup=1)
    ratio = times["loop"] / times["batched"]
    print(f"{label}: batched {times['batched'] * 1e3:.1f} ms, per-head loop {times['loop'] * 1e3:.1f} ms, "
          f"ratio {ratio:.1f}x (goal >= 5x), max |difference| {diff:.1e} (goal <= 1e-5)")
    print(f"ratio {name} {ratio:.2f}")


def main() -> None:
    torch.set_num_threads(2)
    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    ltv, _ = learn_task_vector(model, task, 1, progress=False)
    print(f"TransformerLens {transformer_lens_line()}.x, {torch.get_num_threads()} threads, "
          f"{model.n_heads * (model.n_layers - 1)} heads scanned (layers 1-{model.n_layers - 1})")
    scan("heads_permmix_16shot", "perm-mix, 16-shot ICL prompts (67 tokens), 64 prompts", model,
         task.sample(64, 16, seed=0), ltv)
    scan("heads_permmix_zeroshot", "perm-mix, zero-shot prompts (3 tokens), 256 prompts", model,
         task.sample(256, 16, seed=0).zero_shot, ltv)
    for name in ("llama-gqa", "neox"):
        hf, words = family(name)
        vector, _ = learn_task_vector(hf, words, 1, progress=False, epochs=2, n_train=64, n_val=32, n_shots=16)
        prompts = words.sample(32, 16, seed=1)
        scan(f"heads_{name}_16shot", f"{name} (4 layers, d 128), 16-shot word pairs ({prompts.inputs.shape[1]} "
             f"cols), 32 prompts, {hf.n_heads * (hf.n_layers - 1)} heads", hf, prompts, vector)


if __name__ == "__main__":
    main()
