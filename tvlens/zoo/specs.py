"""Recipes of the model zoo: architecture, task, training config and the target each model must meet.

Every zoo model is re-created from its recipe by ``tvlens zoo train NAME`` (same seed, same
machine and torch version → same weights). The shipped weights were made from exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
#: The simpler rung of the token-offset complexity ladder: 2 of ``OFFSET``'s offsets, on a model of the same shape.
OFFSET_2 = TokenOffset(n_symbols=32, offsets=(1, 2))
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
#: Layer the TVP-loss pins the vector to in the linear-regression arms: the stream after two of three blocks, where
#: Yang et al. 2025b find it forms for linear regression and where plain training leaves it part formed (TVP-mode
#: error 0.14 against ICL's 0.009 and zero-shot's 1.15 per output dimension, the shipped ``linear-regression``).
LINEAR_TVP_LAYER = 2


@dataclass(frozen=True)
class ArmRecipe:
    """The TVP-loss study's arm pairs of one family (Yang et al. 2025b): ``{family}-arm-s{i}`` (plain training) and
    ``{family}-tvp-arm-s{i}`` (the TVP-loss, λ=1, at :attr:`layer` once ICL has formed) for ``i < replicates``. Both
    arms of pair i train for the same :attr:`steps` from the same initial weights on the same prompt stream (seed
    i), so they differ only in the loss; independently trained pairs give the training claims a variance over
    models, not only over prompts.

    Attributes:
        replicates: pairs.
        layer: the layer the TVP-loss pins the vector to.
        steps: training steps of each arm.
        switch_on: the ICL score at which the TVP-loss switches on (after the first evaluation whose ICL accuracy
            is at least this, or whose error is at most this; :attr:`~tvlens.training.TrainConfig.tvp_start_icl`).
        eval_every: steps between evaluations (where ``switch_on`` is checked).
    """

    replicates: int
    layer: int
    steps: int
    switch_on: float
    eval_every: int


#: family → its arm pairs. The loss is switched on once ICL has formed: switched on at a fixed step (400), one of
#: three perm-mix pairs had not formed ICL yet (ICL loss 1.86) and ended at 41 % ICL accuracy.
ARMS: dict[str, ArmRecipe] = {
    "perm-mix": ArmRecipe(replicates=5, layer=PERM_TVP_LAYER, steps=750, switch_on=0.9, eval_every=50),
    "token-offset": ArmRecipe(replicates=3, layer=OFFSET_TVP_LAYER, steps=750, switch_on=0.9, eval_every=50),
    "linear-regression": ArmRecipe(replicates=3, layer=LINEAR_TVP_LAYER, steps=2000, switch_on=0.1, eval_every=100),
}
#: family → how many arm pairs it has.
ARM_REPLICATES: dict[str, int] = {family: recipe.replicates for family, recipe in ARMS.items()}
#: family → the layer its TVP-loss pins the vector to.
ARM_LAYERS: dict[str, int] = {family: recipe.layer for family, recipe in ARMS.items()}


def arm_names(replicate: int, family: str = "perm-mix") -> tuple[str, str]:
    """The zoo names of ``family``'s arm pair ``replicate``: (trained with the TVP-loss, trained without)."""
    if family not in ARMS:
        raise ValueError(f"family={family!r}: expected one of {list(ARMS)}")
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


#: The task each arm family trains on.
_ARM_TASKS: dict[str, Task] = {"perm-mix": PERM, "token-offset": OFFSET, "linear-regression": LINEAR}


def _arm_spec(family: str, replicate: int, tvp: bool) -> ZooSpec:
    """Arm pair ``replicate`` of ``family`` (:data:`ARMS`): with the TVP-loss (``tvp``) or without."""
    recipe, task = ARMS[family], _ARM_TASKS[family]
    loss = dict(tvp_layer=recipe.layer, tvp_weight=1.0, tvp_start_icl=recipe.switch_on) if tvp else {}
    common = dict(steps=recipe.steps, seed=replicate, eval_every=recipe.eval_every, eval_prompts=256, **loss)
    if isinstance(task, LinearRegression):
        model, train = _regression_model(task, 3, REGRESSION_SHOTS, seed=replicate), _regression_train(**common)
        switch = f"once ICL error per output dimension is at most {recipe.switch_on}"
    else:
        model, train = _token_model(task, 4, SYMBOLIC_SHOTS, seed=replicate), _symbolic_train(**common)
        switch = f"once ICL accuracy reaches {recipe.switch_on}"
    how = f"TVP-loss (λ=1) at layer {recipe.layer} {switch}" if tvp else "plain training"
    return ZooSpec(arm_names(replicate, family)[not tvp],
                   f"{family}, TVP-loss study arm pair {replicate}: {how}, {recipe.steps} steps, seed {replicate}",
                   task, model, train)


#: Seeds of the flagship recipes' replicates: ``{name}-s{i}`` is ``name``'s recipe (architecture, task, training,
#: target) with its weights initialised and its training prompts drawn from seed ``i`` (the flagship is seed 0).
REPLICATE_SEEDS = (1, 2)
#: The flagship models trained again from :data:`REPLICATE_SEEDS` (the families the claims ledger measures its
#: mechanism claims on, each over several independently trained models).
REPLICATED = ("perm-mix", "perm-mix-32", "token-offset", "sparse-linear-regression", "sinusoid-regression",
              "linear-regression-long")


def _replicate(spec: ZooSpec, seed: int) -> ZooSpec:
    """``spec`` trained again from ``seed``: the same recipe, other initial weights and training prompts."""
    return replace(spec, name=f"{spec.name}-s{seed}", description=f"{spec.name} trained again from seed {seed} "
                   f"(same recipe: {spec.description})", model=replace(spec.model, seed=seed),
                   train=replace(spec.train, seed=seed))


_SPECS: list[ZooSpec] = [
    ZooSpec("perm-mix", "mixture of 8 random permutations of 32 symbols, 4 layers (the default model)",
            PERM, _token_model(PERM, 4, SYMBOLIC_SHOTS), _symbolic_train(), target=0.995),
    ZooSpec("perm-mix-tvp", f"perm-mix trained with TVP-loss (λ=1) pinning the vector to layer {PERM_TVP_LAYER}",
            PERM, _token_model(PERM, 4, SYMBOLIC_SHOTS),
            _symbolic_train(tvp_layer=PERM_TVP_LAYER, tvp_weight=1.0, tvp_start=400, steps=1500), target=None,
            notes={"tvp_start": "with the TVP-loss on from step 0 (λ=1, layer 2) ICL had not formed by step "
                                "978 (ICL loss 1.84); plain meta-ICL training for the first 400 steps, then "
                                "L_ICL + λ·L_TVP, forms both"}),
    *[_arm_spec(family, i, tvp) for family, recipe in ARMS.items() for i in range(recipe.replicates)
      for tvp in (True, False)],
    *[ZooSpec(f"perm-mix-{n}", f"mixture of {n} random permutations of 32 symbols, 4 layers (complexity ladder; "
              "fine training history for the formation study)",
              task, _token_model(task, 4, SYMBOLIC_SHOTS), _symbolic_train(eval_every=50, eval_prompts=256),
              target=0.995) for n, task in PERM_LADDER.items()],
    ZooSpec("token-offset", "discrete token offset y = x + k mod 32, k in 1..8 (Yang et al. 2025b), 4 layers",
            OFFSET, _token_model(OFFSET, 4, SYMBOLIC_SHOTS), _symbolic_train(), target=0.995),
    ZooSpec("token-offset-2", "discrete token offset y = x + k mod 32, k in {1, 2}, 4 layers (complexity ladder: "
            "2 offsets against token-offset's 8)",
            OFFSET_2, _token_model(OFFSET_2, 4, SYMBOLIC_SHOTS), _symbolic_train(), target=0.995),
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


def _registry(specs: list[ZooSpec]) -> dict[str, ZooSpec]:
    """The recipes by name; a name given twice is refused."""
    out: dict[str, ZooSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"zoo recipe {spec.name!r} is given twice; expected each name once")
        out[spec.name] = spec
    return out


_FLAGSHIPS = _registry(_SPECS)
SPECS: dict[str, ZooSpec] = _registry(
    [*_SPECS, *[_replicate(_FLAGSHIPS[name], seed) for name in REPLICATED for seed in REPLICATE_SEEDS]])

#: family → the independently trained models of one recipe the ledger measures it on (seeds 0, 1, 2): the flagship
#: and its replicates; linear regression's flagship (8000 steps, 17 min a seed) is replicated by its plain TVP-loss
#: arms instead, the same architecture and task trained for 2000 steps from seeds 0, 1, 2.
FAMILY_MODELS: dict[str, tuple[str, ...]] = {
    **{name: (name, *(f"{name}-s{seed}" for seed in REPLICATE_SEEDS)) for name in REPLICATED},
    "linear-regression": tuple(arm_names(seed, "linear-regression")[1] for seed in (0, *REPLICATE_SEEDS)),
}
