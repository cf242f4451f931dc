"""Cost of an injection: forward with ``inject`` vs a bare forward, same model and batch, one run; and the cost of
the wrapper itself: ``HookedModel``'s forward with no edit vs the TransformerLens bridge it wraps and vs the
Hugging Face model under that bridge.

Goal: ratio <= 1.10 for an injection. Model: 4 layers, d_model 128, 4 heads; batch 64 prompts of 64 tokens; one
vector added at layer 2, last position (and, second line, at every position of two layers). The wrapper: a
tiny random GPT-2 (6 layers, d_model 384) on 32 prompts of 256 tokens, goal <= 1.05 against the bridge.

    python benchmarks/bench_inject.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare  # noqa: E402

import tvlens  # noqa: E402
from tvlens.models import transformer_lens_line  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = tvlens.HookedModel.from_config(tvlens.ModelConfig(n_layers=4, d_model=128, n_heads=4, d_vocab=64, n_ctx=64))
    tokens = torch.randint(64, (64, 64))
    v = torch.randn(128)
    one = [tvlens.Intervention(v, layer=2)]
    heavy = [tvlens.Intervention(v, layer=1, positions="all"), tvlens.Intervention(v, layer=3, positions="all")]

    def bare():
        with torch.no_grad():
            model(tokens)

    def injected(interventions):
        def run():
            with torch.no_grad(), tvlens.inject(model, *interventions):
                model(tokens)
        return run

    times = compare({"bare": bare, "inject_last": injected(one), "inject_all_2layers": injected(heavy)}, repeats=40)
    print(f"TransformerLens {transformer_lens_line()}.x, CPU threads {torch.get_num_threads()}, batch 64 x 64 tokens, "
          f"4 layers d_model 128")
    print(f"bare forward                  : {times['bare'] * 1e3:7.2f} ms")
    print(f"inject 1 vector, last position: {times['inject_last'] * 1e3:7.2f} ms   "
          f"ratio {times['inject_last'] / times['bare']:.3f}  (goal <= 1.10)")
    print(f"inject 2 layers, all positions: {times['inject_all_2layers'] * 1e3:7.2f} ms   "
          f"ratio {times['inject_all_2layers'] / times['bare']:.3f}")
    print(f"ratio inject_last {times['inject_last'] / times['bare']:.3f}")
    print(f"ratio inject_all_2layers {times['inject_all_2layers'] / times['bare']:.3f}")
    wrapper()


def wrapper() -> None:
    """HookedModel's own forward (no edit) against the bridge it wraps and the Hugging Face model under it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.hf_models import hf_model, train_tokenizer

    tokenizer = train_tokenizer()
    hf = hf_model("gpt2", tokenizer, n_layers=6, d_model=384)
    model = tvlens.HookedModel.from_hf(hf, tokenizer)
    tokens = torch.randint(len(tokenizer), (32, 256), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        times = compare({"hf": lambda: hf(tokens, use_cache=False).logits, "bridge": lambda: model.model(tokens),
                         "tvlens": lambda: model(tokens)}, repeats=10, warmup=2)
    print(f"GPT-2 (6 layers, d 384), 32 x 256 tokens: Hugging Face {times['hf']:.2f} s, TransformerLens bridge "
          f"{times['bridge']:.2f} s, HookedModel {times['tvlens']:.2f} s (goal: HookedModel <= 1.05 x the bridge)")
    print(f"ratio wrapper_vs_bridge {times['tvlens'] / times['bridge']:.3f}")
    print(f"ratio wrapper_vs_hf {times['tvlens'] / times['hf']:.3f}")


if __name__ == "__main__":
    main()
