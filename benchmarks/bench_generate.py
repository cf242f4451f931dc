"""Cost of generating with a vector: ``tvlens.generate`` with an intervention vs without, the KV-cached path vs
recomputing the sequence at every step, and tvlens' cached generation vs the Hugging Face model's own ``generate``
(its ``past_key_values``), all greedy, in one run.

Goal: ratio generate_injected_vs_plain <= 1.10 (a vector at layer 2 on the prompt's last token and every new
token, when="all"). Models: a tvlens model (4 layers, d_model 128, learned positions) and tiny random GPT-2 and
Llama (grouped K/V heads) models (4 layers, d_model 256); 16 left-padded prompts of 48–64 tokens, 32 new tokens.

    python benchmarks/bench_generate.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _timing import compare  # noqa: E402

import tvlens  # noqa: E402
from tvlens.models import transformer_lens_line  # noqa: E402

N_NEW = 32


def prompts(d_vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(48, 65, (16,), generator=gen)
    inputs = torch.randint(3, d_vocab, (16, 64), generator=gen)
    mask = (torch.arange(64)[None] >= 64 - lengths[:, None]).long()
    return inputs.masked_fill(mask == 0, 0), mask


def case(name: str, model: tvlens.HookedModel, hf=None) -> float:
    inputs, mask = prompts(model.d_vocab)
    vector = [tvlens.Intervention(torch.randn(model.d_model, generator=torch.Generator().manual_seed(1)), 2)]

    def run(interventions, path):
        return lambda: tvlens.generate(model, inputs, interventions, attention_mask=mask, max_new_tokens=N_NEW,
                                       when="all", path=path)

    candidates = {"plain": run([], "cached"), "injected": run(vector, "cached"), "recompute": run([], "full")}
    if hf is not None:
        pad = int(inputs[0, 0])

        def hf_generate():
            with torch.no_grad():
                hf.generate(inputs, attention_mask=mask, max_new_tokens=N_NEW, min_new_tokens=N_NEW, do_sample=False,
                            use_cache=True, pad_token_id=pad)
        candidates["hf"] = hf_generate
    times = compare(candidates, repeats=11, warmup=2)
    plain = tvlens.generate(model, inputs, attention_mask=mask, max_new_tokens=N_NEW)
    full = tvlens.generate(model, inputs, attention_mask=mask, max_new_tokens=N_NEW, path="full")
    assert plain.path == "cached" and torch.equal(plain.tokens, full.tokens), "the paths disagree"
    print(f"{name}: plain {times['plain'] * 1e3:.0f} ms, with a vector {times['injected'] * 1e3:.0f} ms, recompute "
          f"{times['recompute'] * 1e3:.0f} ms" + (f", Hugging Face generate {times['hf'] * 1e3:.0f} ms" if hf else ""))
    print(f"ratio generate_injected_vs_plain_{name} {times['injected'] / times['plain']:.3f}")
    print(f"ratio generate_recompute_vs_cached_{name} {times['recompute'] / times['plain']:.3f}")
    if hf is not None:
        print(f"ratio generate_cached_vs_hf_{name} {times['plain'] / times['hf']:.3f}")
    return times["injected"] / times["plain"]


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"TransformerLens {transformer_lens_line()}.x, CPU threads {torch.get_num_threads()}, 16 left-padded prompts "
          f"of 48-64 tokens, {N_NEW} new tokens, greedy")
    own = tvlens.HookedModel.from_config(tvlens.ModelConfig(n_layers=4, d_model=128, n_heads=4, d_vocab=64, n_ctx=128))
    ratios = [case("tvlens", own)]
    from tests.hf_models import hf_model, train_tokenizer

    tokenizer = train_tokenizer()
    for arch in ("gpt2", "llama_gqa"):
        hf = hf_model(arch, tokenizer, n_layers=4, d_model=256).eval()
        ratios.append(case(arch, tvlens.HookedModel.from_hf(hf, tokenizer), hf))
    print(f"ratio generate_injected_vs_plain {max(ratios):.3f}  (the largest of the three; goal <= 1.10)")


if __name__ == "__main__":
    main()
