"""Regenerate the zoo table in docs/zoo.md from the shipped model cards (tvlens/zoo/weights/*.json).

    python docs/make_zoo_table.py          # rewrites the block between the zoo-table markers
"""

from __future__ import annotations

from pathlib import Path

from _blocks import replace_blocks

from tvlens import zoo


def table() -> str:
    rows = ["| model | task | layers | d_model | ICL (n-shot) | zero-shot | TVP best layer | steps |",
            "|---|---|---|---|---|---|---|---|"]
    for name in zoo.list():
        card = zoo.info(name)
        final, cfg = card["final_metrics"], card["config"]
        metric = final["metric"]
        fmt = (lambda v: f"{v:.1%}") if metric == "accuracy" else (lambda v: f"{v:.3f}")
        tvp = final["tvp"]
        best = max(range(len(tvp)), key=lambda i: tvp[i]) if metric == "accuracy" else min(
            range(len(tvp)), key=lambda i: tvp[i])
        shots = card["train"]["n_shots"]
        icl, zero, at_best = fmt(final["icl"]), fmt(final["zero_shot"]), fmt(tvp[best])
        if "icl_nll" in final and card["task"]["family"] in ("hmm-mixture", "regular-languages"):
            # next-symbol streams are stochastic: cross-entropy (nats) says more than accuracy
            icl += f", CE {final['icl_nll']:.2f}"
            zero += f", CE {final['zero_shot_nll']:.2f}"
            at_best += f", CE {final['tvp_nll'][best]:.2f}"
        rows.append(
            f"| `{name}` | {card['description']} | {cfg['n_layers']} | {cfg['d_model']} | "
            f"{icl} ({shots}-shot) | {zero} | L{best}: {at_best} | {card['steps_done']} |"
        )
    note = ("Symbolic models report accuracy (formal languages also next-symbol cross-entropy in nats); regression "
            "models squared error / D (lower is better). TVP = the query alone with its own ICL prompt's hidden state "
            "put in at that layer. Numbers are read from each model's card (evaluation prompts from seed 10000, "
            "never trained on).")
    return "\n".join(rows) + "\n\n" + note


def main() -> None:
    page = Path(__file__).parent / "zoo.md"
    replace_blocks(page, {"zoo-table": table()})
    print(f"updated {page}")


if __name__ == "__main__":
    main()
