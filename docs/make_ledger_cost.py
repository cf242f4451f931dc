"""Estimate what the claims ledger costs on a 124M-parameter model (GPT-2 small) from FLOPs counted on a tiny one.

    .venv/bin/python docs/make_ledger_cost.py           # a few minutes on 2 cores: the ledger-cost block
    .venv/bin/python docs/make_ledger_cost.py --needs   # the ledger-needs block alone (which claim needs what)

No GPT-2 weights can be downloaded here, so nothing is timed on GPT-2 itself. Instead:

1. A tiny GPT-2 with GPT-2 small's **depth and heads** (12 layers × 12 heads, d_model 48) and a tokenizer trained
   on the built-in word pairs runs ``tvlens claims --model DIR --tasks antonyms,country_capital --seeds 0
   --prompts 32`` claim by claim; ``torch.utils.flop_counter.FlopCounterMode`` counts every matmul and attention
   FLOP, forward and backward (the layer sweeps, head scans and per-layer vectors have GPT-2 small's sizes).
2. One forward of the same 5-shot prompts through the tiny model and through a randomly initialised model of GPT-2
   small's configuration (124M parameters) gives the ratio of their FLOPs per token.
3. Each claim's tiny FLOPs × that ratio is the estimate, and the time is that over an assumed throughput
   (``make_real_models.THROUGHPUT``).

It is an estimate: the ratio mixes blocks and unembedding as a full forward does (the ledger's cached query
passes compute fewer logits), and a learned vector trains until its dev loss stops improving — on a random tiny
model that is a few epochs, on GPT-2 possibly its whole budget (60 epochs), so the learned-vector claims can cost
several times more.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

from _blocks import replace_blocks  # noqa: E402
from make_real_models import THROUGHPUT, _duration  # noqa: E402

from tests.hf_models import train_tokenizer  # noqa: E402
from tvlens.studies.ledger import (  # noqa: E402
    CLAIMS,
    NEEDS,  # noqa: E402
    LedgerConfig,
    claims_ledger,
)
from tvlens.subjects import OFFERS  # noqa: E402
from tvlens.tasks.text import TextTasks  # noqa: E402

DOC = Path(__file__).parent / "real-models.md"
TASKS = ("antonyms", "country_capital")
CONFIG = dict(seeds=(0,), n_prompts=32)


def _flops(call) -> float:
    with FlopCounterMode(display=False) as counter:
        call()
    return float(counter.get_total_flops())


def _gpt2(tokenizer, **shape):
    import transformers as T

    torch.manual_seed(0)
    config = T.GPT2Config(n_positions=256, n_ctx=256, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **shape)
    return T.GPT2LMHeadModel(config).eval()


def measure() -> dict[str, float]:
    torch.set_num_threads(2)
    tokenizer = train_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = _gpt2(tokenizer, n_layer=12, n_head=12, n_embd=48, vocab_size=len(tokenizer))
        tiny.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # the FLOP ratio per token: one forward of the same 5-shot prompts through both shapes
        inputs = TextTasks(TASKS, tokenizer=tokenizer).sample(32, 5, seed=0).inputs
        out = {"ratio": _ratio(tokenizer, tiny, inputs)}
        start = time.perf_counter()
        for name, claim in CLAIMS.items():
            if claim.needs == "labels":
                out[name] = _flops(lambda name=name: claims_ledger(LedgerConfig(**CONFIG, claims=(name,)),
                                                                   models=[tmp], tasks=TASKS))
        out["all"] = _flops(lambda: claims_ledger(LedgerConfig(**CONFIG), models=[tmp], tasks=TASKS))
        out["seconds"] = time.perf_counter() - start
    return out


def _ratio(tokenizer, tiny, inputs) -> float:
    """FLOPs of one forward through GPT-2 small's configuration (124M parameters) over the tiny model's."""
    small = _gpt2(tokenizer, vocab_size=50257)
    with torch.no_grad():
        return _flops(lambda: small(inputs)) / _flops(lambda: tiny(inputs))


def table(m: dict[str, float]) -> str:
    lines = [f"Estimated from FLOPs counted on a tiny GPT-2 of GPT-2 small's depth and heads (× {m['ratio']:.0f}, the "
             "FLOP ratio of one forward of the same prompts), for `tvlens claims --model DIR --tasks "
             f"{','.join(TASKS)} --seeds 0 --prompts 32` (5-shot prompts in the default arrow template). Each claim "
             "alone, with the vectors it needs; together they share vectors. Throughput assumed as above. Not "
             "measured on GPT-2: an estimate (see `docs/make_ledger_cost.py` for what it leaves out).", "",
             "| claim | FLOPs (GPT-2 small) | " + " | ".join(THROUGHPUT) + " |",
             "|---|---|" + "---|" * len(THROUGHPUT)]
    names = [n for n in CLAIMS if n in m] + ["all"]
    for name in names:
        flops = m[name] * m["ratio"]
        label = f"**all {len(names) - 1} claims together**" if name == "all" else f"`{name}`"
        lines.append(f"| {label} | {flops:.1e} | " + " | ".join(_duration(flops / rate) for rate in THROUGHPUT.values())
                     + " |")
    per_seed = m["all"] * m["ratio"] / len(TASKS)
    lines += ["", f"Each more task or seed adds about {per_seed:.1e} FLOPs "
              f"({' / '.join(_duration(per_seed / r) for r in THROUGHPUT.values())})."]
    return "\n".join(lines)


def needs_table() -> str:
    """Which claims need which model: each claim's need (``Claim.needs``) and whether a pretrained LM offers it."""
    lines = ["| claim | paper | needs | on a pretrained LM with word-pair tasks |", "|---|---|---|---|"]
    for c in CLAIMS.values():
        answer = "measured" if c.needs == "labels" else "not applicable (the row says why)"
        lines.append(f"| `{c.name}` | {c.paper} | {NEEDS[c.needs]} | {answer} |")
    others = [n for n in NEEDS if n not in OFFERS]
    lines += ["", f"The {len(others)} training needs ({', '.join(others)}) are claims about how models are trained, "
              "met by the zoo's matched recipes: `tvlens claims` without `--model` measures them."]
    return "\n".join(lines)


def main() -> None:
    if "--needs" in sys.argv[1:]:  # the table of needs alone (no measurement)
        replace_blocks(DOC, {"ledger-needs": needs_table()})
        return
    m = measure()
    print(f"measured in {m['seconds']:.0f} s; FLOP ratio {m['ratio']:.1f}")
    replace_blocks(DOC, {"ledger-cost": table(m), "ledger-needs": needs_table()})


if __name__ == "__main__":
    main()
