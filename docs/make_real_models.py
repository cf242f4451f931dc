"""Regenerate the cost table of docs/real-models.md from FLOP counts (no model is downloaded or run).

    .venv/bin/python docs/make_real_models.py

The table estimates, for tvlens' default settings, the forward-pass FLOPs each method spends and the
time that takes at an assumed throughput; memory is the weights plus the largest activation set a
method keeps for its backward pass. No accelerator was lent when this was written, so nothing here is
measured; rerun with your numbers of ``THROUGHPUT``.
"""

from __future__ import annotations

from pathlib import Path

from _blocks import replace_blocks

DOC = Path(__file__).parent / "real-models.md"

#: (name, n_layers, d_model, n_heads, d_vocab, parameters) — public architecture facts.
MODELS = [
    ("gpt2 (small)", 12, 768, 12, 50257, 124e6),
    ("EleutherAI/pythia-410m", 24, 1024, 16, 50304, 405e6),
    ("EleutherAI/pythia-1.4b", 24, 2048, 16, 50304, 1.41e9),
    ("meta-llama/Llama-2-7b-hf", 32, 4096, 32, 32000, 6.74e9),
]
#: Effective FLOP/s assumed: a 2-core CPU in float32, one H100 in bfloat16 at ~40 % utilisation.
THROUGHPUT = {"2-core CPU": 5e10, "1× H100": 1.2e14}
T_ICL, T_ZERO = 32, 4  # tokens of a 5-shot Hendel word-pair prompt and of its zero-shot query


def forward_flops(n_layers: int, d: int, vocab: int, params: float, tokens: int, context: int) -> float:
    """≈ 2 FLOPs per weight per token, plus attention scores/values over ``context`` keys, plus the unembedding."""
    non_embedding = params - vocab * d
    return tokens * (2 * non_embedding + 4 * n_layers * context * d + 2 * d * vocab)


def method_flops(n_layers: int, d: int, heads: int, vocab: int, params: float) -> dict[str, float]:
    icl = forward_flops(n_layers, d, vocab, params, T_ICL, T_ICL)
    zero = forward_flops(n_layers, d, vocab, params, T_ZERO, T_ZERO)
    last = forward_flops(n_layers, d, vocab, params, 1, T_ICL)  # one cached query token over an ICL prefix
    sweep = n_layers * 300 * zero  # dev (100) + test (200) prompts at every layer
    return {
        "vanilla TV (sweep)": 100 * (icl + zero) + sweep,
        "function vector (AIE + sweep)": 100 * icl + n_layers * heads * 25 * icl + sweep,
        "learned TV (10 epochs × 600)": 6000 * 3 * zero + 10 * 400 * zero,
        "key heads (saliency + 2 scans + 20 draws)": 128 * 3 * zero + (2 * n_layers * heads + 22) * 128 * last,
        "linear dynamics (2d copies × 64 prompts)": 2 * d * 64 * last,
    }


def memory_gib(d: int, n_layers: int, params: float, bytes_per: int = 2) -> tuple[float, float]:
    """Weights, and weights plus the activations an LTV step on 32 zero-shot prompts keeps (~16 d per token-layer)."""
    weights = params * bytes_per
    activations = 32 * T_ZERO * n_layers * 16 * d * bytes_per
    return weights / 2**30, (weights + activations) / 2**30


def table() -> str:
    lines = []
    for name, n_layers, d, heads, vocab, params in MODELS:
        w, ltv = memory_gib(d, n_layers, params)
        lines += [f"### {name} — {n_layers} layers, d_model {d}, {heads} heads, {params / 1e9:.2f} B parameters",
                  "", f"Memory in bfloat16: weights {w:.1f} GiB; learning a vector {ltv:.1f} GiB "
                  f"(float32 doubles both).", "", "| method | forward FLOPs | " + " | ".join(THROUGHPUT) + " |",
                  "|---|---|" + "---|" * len(THROUGHPUT)]
        for method, flops in method_flops(n_layers, d, heads, vocab, params).items():
            times = " | ".join(_duration(flops / rate) for rate in THROUGHPUT.values())
            lines.append(f"| {method} | {flops:.1e} | {times} |")
        lines.append("")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    replace_blocks(DOC, {"cost-table": table()})
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
