"""One learned-task-vector step: the query engine's cached path vs its full forward, side by side.

Cases: the zoo's ``perm-mix`` with a 16-shot ICL prompt as the base (67 tokens, vector at layer 1)
and zero-shot (3 tokens; must not be slower); a tiny 2-layer model with 64-token prompts; tiny
random Llama-GQA and GPT-NeoX models (4 layers, d_model 128) on 16-shot word-pair prompts; and an
early-position vector (P = 1 of a 16-shot prompt: the suffix is nearly the whole prompt). A step =
forward + loss + backward + AdamW update for a batch of 32 prompts. The cached path's one-off
prefix computation is timed separately and amortised over an epoch (600 prompts).

Prints one ``ratio NAME X`` line per case (the per-step speed-up).

    python benchmarks/bench_learn.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _families import family  # noqa: E402
from _timing import compare  # noqa: E402

import tvlens  # noqa: E402
from tvlens import zoo  # noqa: E402
from tvlens.models import QueryEngine, StreamEdit, transformer_lens_line  # noqa: E402


def case(name: str, label: str, model, inputs: torch.Tensor, mask, targets: torch.Tensor, layer: int,
         position: int | str = "last") -> None:
    theta = torch.zeros(model.d_model, dtype=model.dtype, requires_grad=True)
    opt = torch.optim.AdamW([theta], lr=1e-3)
    start = time.perf_counter()
    cached = QueryEngine(model, inputs, mask, start=layer, positions=[position], path="cached")
    build = time.perf_counter() - start
    full = QueryEngine(model, inputs, mask, start=layer, positions=[position], path="full")

    def step(engine):
        loss = F.cross_entropy(engine.run([StreamEdit(layer, theta, position)]), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    with torch.no_grad():
        diff = (cached.run([StreamEdit(layer, theta, position)]) - full.run([StreamEdit(layer, theta, position)]))
    times = compare({"full": lambda: step(full), "cached": lambda: step(cached)}, repeats=15)
    # the prefix is built once per training run; an epoch of the defaults is 600 prompts
    per_epoch = times["cached"] + build / (600 / inputs.shape[0])
    print(f"{label:<58} full {times['full'] * 1e3:7.2f} ms  cached {times['cached'] * 1e3:6.2f} ms  "
          f"{times['full'] / times['cached']:5.1f}x per step, {times['full'] / per_epoch:4.1f}x with the prefix "
          f"build over 1 epoch   max |logit diff| {diff.abs().max().item():.1e}")
    print(f"ratio {name} {times['full'] / times['cached']:.2f}")


def main() -> None:
    torch.set_num_threads(2)
    print(f"TransformerLens {transformer_lens_line()}.x, 2 CPU threads, batch 32, one LTV step (fwd+bwd+AdamW)")
    model = zoo.load("perm-mix")
    task = zoo.task("perm-mix").single(0)
    batch = task.sample(32, 16, seed=0)
    case("learn_permmix_16shot", "perm-mix, 16-shot ICL prompt (67 tokens), L1", model, batch.inputs, None,
         batch.targets, 1)
    case("learn_permmix_zeroshot", "perm-mix, zero-shot prompt (3 tokens), L1", model, batch.zero_shot.inputs, None,
         batch.targets, 1)
    case("learn_permmix_16shot_P1", "perm-mix, 16-shot, vector at position 1, L1", model, batch.inputs, None,
         batch.targets, 1, 1)
    tiny = tvlens.HookedModel.from_config(tvlens.ModelConfig(n_layers=2, d_model=64, n_heads=4, d_vocab=50, n_ctx=64))
    tokens = torch.randint(50, (32, 64), generator=torch.Generator().manual_seed(0))
    case("learn_tiny_64tok", "tiny 2-layer model, 64-token prompts, L1", tiny, tokens, None, tokens[:, 0], 1)
    for name in ("llama-gqa", "neox"):
        hf, words = family(name)
        prompts = words.sample(32, 16, seed=0)
        width = prompts.inputs.shape[1]
        case(f"learn_{name}_16shot", f"{name} (4 layers, d 128), 16-shot word pairs ({width} cols), L1", hf,
             prompts.inputs, prompts.attention_mask, prompts.targets, 1)
        if name == "llama-gqa":
            case(f"learn_{name}_16shot_P1", f"{name}, 16-shot word pairs, vector at position 1, L1", hf,
                 prompts.inputs, prompts.attention_mask, prompts.targets, 1, 1)
    print("goal: >= 10x on the 16-shot last-position cases; the zero-shot case not slower than the full forward")


if __name__ == "__main__":
    main()
