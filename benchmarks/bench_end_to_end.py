"""The functions a user calls, end to end: the cached path against ``path="full"``, and vectors learned side by
side against one call at a time.

* ``learn_task_vector`` at Yang et al. 2025a's setting with a 16-shot ICL base (600 train / 400 dev prompts,
  10 epochs run in full, vector at layer 1), on the zoo's ``perm-mix`` and tiny random Llama-GQA and GPT-NeoX
  models (4 layers, d_model 128, 16-shot word pairs): everything the call does — sampling, the engines'
  prefixes, every step, the dev and test scores — cached vs ``path="full"``.
* ``learn_task_vectors`` for every layer of ``perm-mix`` (zero-shot base, the claims ledger's setting: until
  the dev loss stops improving) against ``learn_task_vector`` called once per layer, as the ledger used to; and
  ``learn_task_vectors_many`` for the ledger's 15 units of ``perm-mix`` against one call per unit.
* The function vector's AIE scan (Todd et al. 2024) on 25 corrupted 16-shot prompts against the reference
  procedure on the same prompts: one forward per head, that head's query ``z`` patched with its mean.
* ``head_weighted_task_vector``, ``function_vector`` (at a given layer), ``key_head_analysis`` and
  ``linear_dynamics`` / ``injection_layer_maps`` at their defaults (16-shot perm-mix and 8-shot word-pair prompts;
  the dynamics on 16 prompts), each against the same call with ``path="full"``, on the same three models.

Each case runs its candidates interleaved (median of 3 runs) and prints one ``ratio NAME X`` line.

    python benchmarks/bench_end_to_end.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _families import family  # noqa: E402
from _timing import compare  # noqa: E402

from tvlens import zoo  # noqa: E402
from tvlens.analysis import injection_layer_maps, key_head_analysis, linear_dynamics  # noqa: E402
from tvlens.models import transformer_lens_line  # noqa: E402
from tvlens.studies import LedgerConfig  # noqa: E402
from tvlens.vectors import (  # noqa: E402
    LearnConfig,
    TaskVector,
    function_vector,
    head_weighted_task_vector,
    learn_task_vector,
    learn_task_vectors,
    learn_task_vectors_many,
)
from tvlens.vectors.function import average_indirect_effect, mean_head_outputs  # noqa: E402

# Yang et al. 2025a's budget, run in full (patience = epochs: no early stop, the same work on both paths)
FULL_EPOCHS = LearnConfig(epochs=10, patience=10, n_train=600, n_val=400)


def learn_case(name: str, label: str, model, task) -> None:
    def run(path: str) -> None:
        learn_task_vector(model, task, 1, base="icl", n_shots=16, config=FULL_EPOCHS, path=path, progress=False)

    times = compare({"full": lambda: run("full"), "cached": lambda: run("auto")}, repeats=3, warmup=0)
    print(f"{label:<52} full {times['full']:6.2f} s  cached {times['cached']:5.2f} s  "
          f"{times['full'] / times['cached']:5.1f}x end to end")
    print(f"ratio {name} {times['full'] / times['cached']:.2f}")


def call_cases(key: str, label: str, model, task, shots: int) -> None:
    """The other public calls at their defaults (``shots``-shot prompts), cached path vs ``path="full"``, repeats=2."""
    theta = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0)) * 4
    vector = TaskVector.single(theta.to(model.dtype), 1)
    calls = {
        "head_weighted": lambda path: head_weighted_task_vector(model, task, n_shots=shots, progress=False, path=path),
        "function_vector": lambda path: function_vector(model, task, 1, n_shots=shots, progress=False, path=path),
        "key_heads": lambda path: key_head_analysis(model, task, vector, n_shots=shots, path=path),
        "dynamics": lambda path: linear_dynamics(model, task, vector, n_prompts=16, n_shots=shots, progress=False,
                                                 path=path),
        "injection_maps": lambda path: injection_layer_maps(model, task, vectors={1: vector}, layers=[1],
                                                            n_shots=shots, progress=False, path=path),
    }
    for name, call in calls.items():
        times = compare({"full": lambda call=call: call("full"), "cached": lambda call=call: call("auto")},
                        repeats=2, warmup=0)
        ratio = times["full"] / times["cached"]
        print(f"{name + ', ' + label:<52} full {times['full']:6.2f} s  cached {times['cached']:5.2f} s  "
              f"{ratio:5.1f}x end to end")
        print(f"ratio {name}_e2e_{key} {ratio:.2f}")


def together_vs_apart(key: str, label: str, apart: tuple[str, Callable[[], object]],
                      together: tuple[str, Callable[[], object]]) -> None:
    """One case of vectors trained together against the same vectors trained apart: median of 3 interleaved runs."""
    times = compare(dict([apart, together]), repeats=3, warmup=0)
    ratio = times[apart[0]] / times[together[0]]
    print(f"{label:<52} {apart[0]} {times[apart[0]]:5.2f} s  {together[0]} {times[together[0]]:5.2f} s  {ratio:4.1f}x")
    print(f"ratio {key} {ratio:.2f}")


def side_by_side_case() -> None:
    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    layers = list(range(model.n_layers))

    def one_at_a_time() -> None:
        for layer in layers:
            learn_task_vector(model, task, layer, n_shots=16, progress=False)

    together_vs_apart("learn_all_layers_permmix", "perm-mix, LTVs of all 4 layers (ledger setting)",
                      ("one at a time", one_at_a_time),
                      ("side by side", lambda: learn_task_vectors(model, task, layers, n_shots=16, progress=False)))


def many_units_case() -> None:
    """The ledger's units of one model (its 8 tasks × 1 seed, LTVs of all 4 layers each) learned side by side by
    ``learn_task_vectors_many`` vs one ``learn_task_vectors`` call per unit."""
    model, family = zoo.load("perm-mix"), zoo.task("perm-mix")
    config = LedgerConfig()
    jobs = [(family.single(t), seed) for t in range(config.n_tasks) for seed in config.seeds]

    def one_call_per_unit() -> None:
        for task, seed in jobs:
            learn_task_vectors(model, task, None, n_shots=16, seed=seed, progress=False)

    together_vs_apart("learn_many_units_permmix", f"perm-mix, {len(jobs)} units x 4 layers (the ledger in-process)",
                      ("one call per unit", one_call_per_unit),
                      ("together", lambda: learn_task_vectors_many(model, jobs, None, n_shots=16, progress=False)))


def reference_aie(model, corrupted, z_mean) -> torch.Tensor:
    """Todd et al.'s procedure, batched over prompts: one patched forward per head."""
    rows = torch.arange(len(corrupted))
    query, targets = corrupted.query_positions, corrupted.targets
    with torch.no_grad():
        logits = model(corrupted.inputs, attention_mask=corrupted.attention_mask)
        base = logits[rows, query].softmax(-1)[rows, targets]
        aie = torch.zeros(model.n_layers, model.n_heads)
        for layer in range(model.n_layers):
            for head in range(model.n_heads):
                def patch(z, hook, layer=layer, head=head):
                    z = z.clone()
                    z[rows, query, head] = z_mean[layer, head].to(z.dtype)
                    return z

                logits = model(corrupted.inputs, attention_mask=corrupted.attention_mask,
                               hooks=[(model.hook_name(layer, "attn.hook_z"), patch)])
                aie[layer, head] = (logits[rows, query].softmax(-1)[rows, targets] - base).mean()
    return aie


def aie_case(name: str, label: str, model, task) -> None:
    clean = task.sample(100, 16, seed=0)
    z_mean, _ = mean_head_outputs(model, clean)
    corrupted = task.with_shuffled_labels(clean.select(slice(0, 25)), torch.Generator().manual_seed(0))
    def tvlens_aie() -> torch.Tensor:
        return average_indirect_effect(model, corrupted, z_mean, progress=False)

    diff = (tvlens_aie() - reference_aie(model, corrupted, z_mean)).abs().max()
    times = compare({"reference": lambda: reference_aie(model, corrupted, z_mean), "tvlens": tvlens_aie},
                    repeats=5, warmup=1)
    ratio = times["reference"] / times["tvlens"]
    print(f"{label:<52} reference {times['reference']:5.2f} s  tvlens {times['tvlens']:5.2f} s  {ratio:4.1f}x  "
          f"max |AIE diff| {float(diff):.1e}")
    print(f"ratio {name} {ratio:.2f}")


def main() -> None:
    torch.set_num_threads(2)
    print(f"TransformerLens {transformer_lens_line()}.x, 2 CPU threads, end to end (one call, everything it does)")
    learn_case("learn_e2e_permmix", "learn_task_vector, perm-mix, 16-shot base, L1", zoo.load("perm-mix"),
               zoo.task("perm-mix").single(0))
    call_cases("permmix", "perm-mix, 16-shot", zoo.load("perm-mix"), zoo.task("perm-mix").single(0), 16)
    for name in ("llama-gqa", "neox"):
        model, words = family(name)
        learn_case(f"learn_e2e_{name}", f"learn_task_vector, {name}, 16-shot word pairs, L1", model, words.single(0))
        aie_case(f"fv_aie_{name}", f"FV's AIE scan, {name}, 25 corrupted 16-shot prompts", model, words.single(0))
        # 8 shots: the head-weighted vector is scored on the validation block (10 % of a task's word pairs)
        call_cases(name, f"{name}, 8-shot word pairs", model, words.single(0), 8)
    aie_case("fv_aie_permmix", "FV's AIE scan, perm-mix, 25 corrupted 16-shot prompts", zoo.load("perm-mix"),
             zoo.task("perm-mix").single(0))
    side_by_side_case()
    many_units_case()
    print("goal: learn_task_vector >= 8x end to end on Llama-GQA and GPT-NeoX; the AIE scan >= 5x the reference")


if __name__ == "__main__":
    main()
