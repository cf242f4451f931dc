"""Recipes of the model zoo: architecture, task, training config and the target each model must meet.

Every zoo model is re-created from its recipe by ``tvlens zoo train NAME`` (same seed, same
machine and torch version → same weights). The shipped weights were made from exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tvlens.models.config import ModelConfig
from tvlens.tasks import (
    HMMMixture,
    LinearRegression,
    PermutationMixture,
    RegularLanguages,
    SinusoidRegression,
    SparseLinearRegression,
    Task,
    TokenOffset,
)
from tvlens.training import TrainConfig


@dataclass(frozen=True)
class ZooSpec:
    """How one zoo model is made.

    Attributes:
        name: the zoo name (``perm-mix``, …).
        description: one line for listings.
        task: the task family it is trained on.
        model: the architecture (``d_vocab``/``d_input``/``n_ctx`` fit the task).
        train: the training config.
        target: the ICL score at which training stops early (accuracy ≥ target, or error ≤ target).
    """

    name: str
    description: str
    task: Task
    model: ModelConfig
    train: TrainConfig
    target: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _token_model(task: Task, n_layers: int, n_shots: int, d_model: int = 64, seed: int = 0) -> ModelConfig:
    return ModelConfig(n_layers=n_layers, d_model=d_model, n_heads=4, d_vocab=task.d_vocab,
                       n_ctx=task.prompt_length(n_shots), seed=seed)


def _regression_model(task: Task, n_layers: int, n_shots: int, d_model: int = 64, seed: int = 0,
                      context_shots: int | None = None) -> ModelConfig:
    """``context_shots``: the longest prompt the model accepts (default: the training length ``n_shots``)."""
    return ModelConfig(n_layers=n_layers, d_model=d_model, n_heads=4, d_vocab=1, d_input=task.d_input,
                       n_ctx=task.prompt_length(context_shots or n_shots), seed=seed)


PERM = PermutationMixture(n_symbols=32, n_perms=8, seed=0)
OFFSET = TokenOffset(n_symbols=32, offsets=(1, 2, 3, 4, 5, 6, 7, 8))
#: The complexity ladder of the depth-vs-complexity study (Yang et al. 2025b): mixtures of 2, 8 and 32 permutations
#: of the same 32 symbols on models of the same shape (``perm-mix`` is the middle rung).
PERM_LADDER = {2: PermutationMixture(n_symbols=32, n_perms=2, seed=0),
               32: PermutationMixture(n_symbols=32, n_perms=32, seed=0)}
LINEAR = LinearRegression(d_input=5)
SPARSE = SparseLinearRegression(d_input=8, sparsity=2)
SINUSOID = SinusoidRegression(d_input=2, frequency=1.5)
HMM = HMMMixture(n_symbols=12, n_processes=8, n_states=4, seed=0)
REGULAR = RegularLanguages(n_symbols=8, n_processes=8, n_states=4, out_degree=2, seed=0)

SYMBOLIC_SHOTS = 16
REGRESSION_SHOTS = 20
SEQUENCE_SHOTS = 48

#: Layer the TVP-loss pins the vector to in ``perm-mix-tvp``: the middle of 4 layers (the stream after
#: two blocks). Layer 1 is not reachable for this task: after one block the query position cannot have
#: combined an (x_i, y_i) pair, and a TVP-loss there stalls ICL training (tried: ICL loss still 1.86 at
#: step 1100, where plain training reaches 100 % ICL accuracy by step 500).
PERM_TVP_LAYER = 2
#: Layer the TVP-loss pins the vector to in the token-offset arms: the stream after three of four blocks, where
#: plain training leaves the vector half formed (TVP mode 0.54 against ICL's 1.00; Yang et al. 2025b find it
#: forms at the last layers on token offset).
OFFSET_TVP_LAYER = 3
#: The TVP-loss study's arms (Yang et al. 2025b), per family: ``{family}-arm-s{i}`` (plain training) and
#: ``{family}-tvp-arm-s{i}`` (the TVP-loss, λ=1, at the family's layer once ICL has formed) for
#: i < ``ARM_REPLICATES[family]``: the same :data:`ARM_STEPS` steps, and arm pair i shares its initial weights and its
#: prompt stream (seed i), so the two arms differ only in the loss. Independently trained pairs give the training
#: claims a variance over models, not only over prompts.
ARM_REPLICATES: dict[str, int] = {"perm-mix": 5, "token-offset": 3}
#: family → the layer its TVP-loss pins the vector to.
ARM_LAYERS: dict[str, int] = {"perm-mix": PERM_TVP_LAYER, "token-offset": OFFSET_TVP_LAYER}
ARM_STEPS = 750
#: The TVP-loss is switched on after the first evaluation (every :data:`ARM_EVAL_EVERY` steps) at which ICL accuracy
#: on the monitor prompts reaches this: switched on at a fixed step (400), one of three perm-mix pairs had not formed
#: ICL yet (ICL loss 1.86) and ended at 41 % ICL accuracy.
ARM_TVP_ICL = 0.9
ARM_EVAL_EVERY = 50


def arm_names(replicate: int, family: str = "perm-mix") -> tuple[str, str]:
    """The zoo names of ``family``'s arm pair ``replicate``: (trained with the TVP-loss, trained without)."""
    if family not in ARM_REPLICATES:
        raise ValueError(f"family={family!r}: expected one of {list(ARM_REPLICATES)}")
    return f"{family}-tvp-arm-s{replicate}", f"{family}-arm-s{replicate}"


def _symbolic_train(**overrides: Any) -> TrainConfig:
    args = dict(steps=6000, batch_size=64, n_shots=SYMBOLIC_SHOTS, lr=2e-3, warmup_steps=200, eval_every=250,
                eval_prompts=512)
    args.update(overrides)
    return TrainConfig(**args)


def _regression_train(**overrides: Any) -> TrainConfig:
    args = dict(steps=8000, batch_size=64, n_shots=REGRESSION_SHOTS, lr=1e-3, warmup_steps=300, eval_every=500,
                eval_prompts=512)
    args.update(overrides)
    return TrainConfig(**args)


SPECS: dict[str, ZooSpec] = {
    spec.name: spec
    for spec in [
        ZooSpec("perm-mix", "mixture of 8 random permutations of 32 symbols, 4 layers (the default model)",
                PERM, _token_model(PERM, 4, SYMBOLIC_SHOTS), _symbolic_train(), target=0.995),
        ZooSpec("perm-mix-tvp", f"perm-mix trained with TVP-loss (λ=1) pinning the vector to layer {PERM_TVP_LAYER}",
                PERM, _token_model(PERM, 4, SYMBOLIC_SHOTS),
                _symbolic_train(tvp_layer=PERM_TVP_LAYER, tvp_weight=1.0, tvp_start=400, steps=1500), target=None,
                notes={"tvp_start": "with the TVP-loss on from step 0 (λ=1, layer 2) ICL had not formed by step "
                                    "978 (ICL loss 1.84); plain meta-ICL training for the first 400 steps, then "
                                    "L_ICL + λ·L_TVP, forms both"}),
        *[ZooSpec(name, f"{family}, TVP-loss study arm pair {i}: "
                  + (f"TVP-loss (λ=1) at layer {ARM_LAYERS[family]} once ICL accuracy reaches {ARM_TVP_ICL}"
                     if tvp else "plain training")
                  + f", {ARM_STEPS} steps, seed {i}",
                  task, _token_model(task, 4, SYMBOLIC_SHOTS, seed=i),
                  _symbolic_train(steps=ARM_STEPS, seed=i, eval_every=ARM_EVAL_EVERY, eval_prompts=256,
                                  **(dict(tvp_layer=ARM_LAYERS[family], tvp_weight=1.0, tvp_start_icl=ARM_TVP_ICL)
                                     if tvp else {})))
          for family, task in (("perm-mix", PERM), ("token-offset", OFFSET))
          for i in range(ARM_REPLICATES[family]) for tvp, name in zip((True, False), arm_names(i, family))],
        *[ZooSpec(f"perm-mix-{n}", f"mixture of {n} random permutations of 32 symbols, 4 layers (complexity ladder; "
                  "fine training history for the formation study)",
                  task, _token_model(task, 4, SYMBOLIC_SHOTS), _symbolic_train(eval_every=50, eval_prompts=256),
                  target=0.995) for n, task in PERM_LADDER.items()],
        ZooSpec("token-offset", "discrete token offset y = x + k mod 32, k in 1..8 (Yang et al. 2025b), 4 layers",
                OFFSET, _token_model(OFFSET, 4, SYMBOLIC_SHOTS), _symbolic_train(), target=0.995),
        ZooSpec("linear-regression", "linear regression in R^5 (Yang et al. 2025b's 3-layer setting)",
                LINEAR, _regression_model(LINEAR, 3, REGRESSION_SHOTS), _regression_train()),
        ZooSpec("linear-regression-long", "linear regression in R^5, 3 layers, trained on 20-shot prompts with a "
                "context of 40 (to score prompts beyond the training length)",
                LINEAR, _regression_model(LINEAR, 3, REGRESSION_SHOTS, context_shots=2 * REGRESSION_SHOTS),
                _regression_train(steps=4000)),
        ZooSpec("sparse-linear-regression",
                "sparse linear regression in R^8, 2 non-zero weights (Saglam et al. 2025), 3 layers",
                SPARSE, _regression_model(SPARSE, 3, REGRESSION_SHOTS), _regression_train(steps=4000)),
        ZooSpec("sinusoid-regression", "sinusoid regression y = sin(w·x + φ) in R^2 (Yang et al. 2025b), 6 layers",
                SINUSOID, _regression_model(SINUSOID, 6, REGRESSION_SHOTS, d_model=48), _regression_train(steps=3000)),
        ZooSpec("hmm-mixture", "GINC-style mixture of 8 random HMMs (4 states, 12 symbols), 3 layers",
                HMM, _token_model(HMM, 3, SEQUENCE_SHOTS),
                _symbolic_train(n_shots=SEQUENCE_SHOTS, steps=4000, eval_every=500)),
        ZooSpec("regular-languages", "RegBench-style family of 8 random 4-state DFAs over 8 symbols, 3 layers",
                REGULAR, _token_model(REGULAR, 3, SEQUENCE_SHOTS),
                _symbolic_train(n_shots=SEQUENCE_SHOTS, steps=4000, eval_every=500)),
    ]
}
