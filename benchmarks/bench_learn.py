"""One learned-task-vector step: the cached last-position path vs the full forward, side by side.

Cases (issue 6): ``perm-mix`` with a 16-shot ICL prompt as the base (67 tokens, vector at layer 1),
a tiny 2-layer model with 64-token prompts, and ``perm-mix`` zero-shot (3 tokens; must not be
slower). A step = forward + loss + backward + AdamW update for a batch of 32 prompts. The cached
path's one-off prefix computation is timed separately and amortised over an epoch (600 prompts).

    python benchmarks/bench_learn.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare  # noqa: E402

import tvlens  # noqa: E402
from tvlens import Intervention, inject, zoo  # noqa: E402
from tvlens.models import transformer_lens_line  # noqa: E402
from tvlens.vectors.fast import SuffixRunner  # noqa: E402


def case(name: str, model, inputs: torch.Tensor, targets: torch.Tensor, layer: int) -> None:
    theta = torch.zeros(model.d_model, requires_grad=True)
    opt = torch.optim.AdamW([theta], lr=1e-3)
    start = __import__("time").perf_counter()
    runner = SuffixRunner(model, inputs, layer)
    build = __import__("time").perf_counter() - start

    def cached_step():
        loss = F.cross_entropy(runner.logits({layer: theta}), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def full_step():
        with inject(model, Intervention(theta, layer=layer)):
            loss = F.cross_entropy(model(inputs)[:, -1], targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    with torch.no_grad():
        a = F.cross_entropy(runner.logits({layer: theta}), targets)
        with inject(model, Intervention(theta, layer=layer)):
            b = F.cross_entropy(model(inputs)[:, -1], targets)
    times = compare({"full": full_step, "cached": cached_step}, repeats=20)
    # the prefix is built once per training run; an epoch of the defaults is 600 prompts
    per_epoch = times["cached"] + build / (600 / inputs.shape[0])
    per_run = times["cached"] + build / (10 * 600 / inputs.shape[0])
    print(f"{name:<44} full {times['full'] * 1e3:7.2f} ms  cached {times['cached'] * 1e3:6.2f} ms  "
          f"speed-up {times['full'] / times['cached']:5.1f}x per step, {times['full'] / per_epoch:4.1f}x with the "
          f"prefix build over 1 epoch, {times['full'] / per_run:4.1f}x over 10   |loss diff| {abs(a - b).item():.1e}")


def main() -> None:
    torch.set_num_threads(2)
    print(f"TransformerLens {transformer_lens_line()}.x, 2 CPU threads, batch 32, one LTV step (fwd+bwd+AdamW)")
    model = zoo.load("perm-mix")
    task = zoo.task("perm-mix").single(0)
    batch = task.sample(32, 16, seed=0)
    case("perm-mix, 16-shot ICL prompt (67 tokens), L1", model, batch.inputs, batch.targets, 1)
    case("perm-mix, zero-shot prompt (3 tokens), L1", model, batch.zero_shot.inputs, batch.targets, 1)
    tiny = tvlens.HookedModel.from_config(tvlens.ModelConfig(n_layers=2, d_model=64, n_heads=4, d_vocab=50, n_ctx=64))
    tokens = torch.randint(50, (32, 64), generator=torch.Generator().manual_seed(0))
    case("tiny 2-layer model, 64-token prompts, L1", tiny, tokens, tokens[:, 0], 1)
    print("goal: >= 10x on the 16-shot case; the zero-shot case not slower than the full forward")


if __name__ == "__main__":
    main()
