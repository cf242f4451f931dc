"""The bench: every task-vector method made once for one model, task and seed, and scored on the same prompts.

A comparison of methods is only fair when each method's vector is made from its own prompts of the same
splits (:class:`~tvlens.tasks.Splits` of one seed) and every vector is scored on the same held-out prompts. A
:class:`Bench` holds what that takes — the model, the task, the seed, the shots, the learned vectors'
settings — and makes each method's vector once per site, through the :data:`METHODS` registry:

    >>> bench = Bench(model, task, seed=0)
    >>> tv = bench.vector("learned", layer=2)                 # learned on the train split, stopped on dev
    >>> bench.score(tv, bench.prompts("shared", 200)).mean    # scored on held-out prompts

**Methods.** A method is a :class:`Method` in :data:`METHODS`: its name, readable label and colour (every table
and figure reads them from here), and the function that makes its vectors, ``make(bench, layers, positions,
base, n_shots) → {layer: TaskVector}``. A method whose vector spans every layer at once (the head-weighted
vector) has ``per_layer=False`` and one vector, at ``layer=None``. :func:`~tvlens.vectors.compare`, the method
table (:func:`~tvlens.studies.method_table`), the ledger's workbench, the report, the plot styles and the CLI
read the registry, so a new method is one function and one :func:`register_method` call
(``docs/vectors.md``, "Adding a method").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from tvlens.models.hooked import HookedModel
from tvlens.scoring import EvalResult, PromptScorer
from tvlens.tasks.base import ICLBatch, Task
from tvlens.tasks.splits import Splits
from tvlens.vectors.function import FunctionVectorResult, default_top_k, function_vector
from tvlens.vectors.head_weighted import HeadWeightedResult, head_weighted_task_vector
from tvlens.vectors.learned import LearnConfig, learn_task_vector, learn_task_vectors
from tvlens.vectors.task_vector import TaskVector
from tvlens.vectors.vanilla import sweep_layers, vanilla_task_vector

#: What a method's ``make`` is given: the bench, the layers (``[None]`` for a method over every layer), the
#: positions, the prompts the vector is added to (``"zero_shot"`` or ``"icl"``) and their demonstrations.
Maker = Callable[["Bench", list[Any], Any, str, "int | None"], dict[Any, TaskVector]]


@dataclass(frozen=True)
class Method:
    """One way to make a task vector.

    Attributes:
        name: its key in :data:`METHODS` (and the ``method`` column of every table).
        label: its readable name in tables and figures.
        color: its colour in every figure (``#rrggbb``).
        make: ``make(bench, layers, positions, base, n_shots) → {layer: TaskVector}`` (see :data:`Maker`).
        learned: whether the vector is trained by gradient descent (else extracted from activations).
        per_layer: ``False`` for a method whose one vector spans every layer (made at ``layer=None``).
        own_layer: ``own_layer(bench) → layer``: where the method puts its vector when no layer is asked
            (:meth:`Bench.vector`), chosen on ``dev`` prompts; ``None``: the vanilla TV's layer
            (:attr:`Bench.vanilla_layer`).
    """

    name: str
    label: str
    color: str
    make: Maker
    learned: bool = False
    per_layer: bool = True
    own_layer: Callable[[Bench], int] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"Method.name={self.name!r}: expected an identifier (it names table columns)")
        if not (len(self.color) == 7 and self.color.startswith("#")):
            raise ValueError(f"Method {self.name!r}: color={self.color!r}; expected '#rrggbb'")


#: Every method, by name, in the order of tables and figures.
METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (a name already registered is refused: one name, one method)."""
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered already; expected a new name (have {list(METHODS)})")
    METHODS[method.name] = method
    return method


def check_methods(methods: Sequence[str] | str, argument: str = "methods") -> tuple[str, ...]:
    """``methods`` as a tuple of registered names (one line naming the unknown ones otherwise)."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"{argument}={list(methods)!r}: unknown {unknown}; expected a subset of {list(METHODS)}")
    return methods


class Bench:
    """One model, one task, one seed: each method's vector made once per site and scored on shared prompts.

    Args:
        model: the frozen model.
        task: one task (a family is restricted to ``task_id`` first: a task vector is per task).
        seed: the user seed: every method's prompts and every scored batch come from :class:`~tvlens.tasks.Splits`
            ``(seed)`` (it overrides ``learn.seed``).
        n_shots: demonstrations of the prompts vectors are made from (``None``: the task's default).
        learn: settings of the learned vectors (:class:`~tvlens.vectors.LearnConfig`).
        top_k: heads of the function vector (default: 10 % of the heads, at least 2).
        task_id: which task of a family; ``None``: the task as given (a regression family's vectors carry what
            all its functions share).
        head_source: the head-weighted vector's heads: ``"mean"`` over prompts or each ``"prompt"``'s own
            (:func:`~tvlens.vectors.head_weighted_task_vector`).
        progress: progress bars of the slow makers (learning, head weights).
    """

    def __init__(self, model: HookedModel, task: Task, *, seed: int = 0, n_shots: int | None = None,
                 learn: LearnConfig | None = None, top_k: int | None = None, task_id: int | None = 0,
                 head_source: str = "mean", progress: bool = True) -> None:
        if head_source not in ("mean", "prompt"):
            raise ValueError(f"head_source={head_source!r}: expected 'mean' or 'prompt'")
        self.model = model
        self.task = task.single(task_id) if task_id is not None and getattr(task, "fixed", None) is None else task
        self.seed, self.n_shots, self.learn, self.progress = seed, n_shots, learn or LearnConfig(), progress
        self.head_source = head_source
        self.top_k = top_k or default_top_k(model)
        self.splits = Splits(seed)
        self._vectors: dict[tuple[Any, ...], TaskVector] = {}
        #: what a maker keeps between calls (the FV's heads, the vanilla TV's chosen layer): maker name → object
        self.made: dict[str, Any] = {}
        self._scorers: dict[int, PromptScorer] = {}
        self._prompts: dict[tuple[Any, ...], ICLBatch] = {}

    def __repr__(self) -> str:
        return f"Bench({self.task.name}, seed={self.seed}, n_shots={self.n_shots})"

    def vectors(self, method: str, layers: Sequence[int | None], *, positions: Any = "last",
                base: str = "zero_shot", n_shots: int | None = None) -> dict[Any, TaskVector]:
        """``method``'s vector at each of ``layers`` (made once: a second call returns the same objects). A method
        with ``per_layer=False`` takes ``layers=[None]``; ``n_shots``: the demonstrations of the prompts the vector
        is made from and added to, where they differ from the bench's (``base="icl"``)."""
        (name,) = check_methods([method], "method")
        spec = METHODS[name]
        if not spec.per_layer and list(layers) != [None]:
            raise ValueError(f"layers={list(layers)!r}: method {name!r} makes one vector over every layer; "
                             "expected [None]")
        shots = self.n_shots if n_shots is None else n_shots
        key = self._key(name, positions, base, shots)
        missing = [k for k in dict.fromkeys(layers) if (*key, k) not in self._vectors]
        if missing:
            made = spec.make(self, missing, positions, base, shots)
            self._vectors.update({(*key, k): made[k] for k in missing})
        return {k: self._vectors[(*key, k)] for k in layers}

    def vector(self, method: str, layer: int | None = None, **options: Any) -> TaskVector:
        """``method``'s vector at ``layer`` (:meth:`vectors`); for a per-layer method ``layer=None`` is the
        method's own layer (:attr:`Method.own_layer`; by default the vanilla TV's, :attr:`vanilla_layer`), chosen
        on ``dev`` prompts."""
        spec = METHODS[check_methods([method], "method")[0]]
        if layer is None and spec.per_layer:
            layer = spec.own_layer(self) if spec.own_layer is not None else self.vanilla_layer
        return self.vectors(method, [layer], **options)[layer]

    @property
    def vanilla_layer(self) -> int:
        """The layer whose vanilla TV scores best on the ``dev`` split (the site the methods are compared at)."""
        return self.best_vanilla()[1]

    def best_vanilla(self, mode: str = "add") -> tuple[TaskVector, int]:
        """The vanilla TV added (``mode="add"``) or replaced (``"replace"``, scored position-matched) at the layer
        where it scores best on the ``dev`` split, and that layer (the sweep runs once per mode)."""
        if mode not in ("add", "replace"):
            raise ValueError(f"mode={mode!r}: expected 'add' or 'replace'")
        if f"vanilla_sweep/{mode}" not in self.made:
            tv, result = vanilla_task_vector(self.model, self.task, mode=mode, n_shots=self.n_shots, seed=self.seed,
                                             progress=False)
            self.made[f"vanilla_sweep/{mode}"] = tv, result.sweep.best_layer
            if mode == "add":  # the vanilla method's vector at that layer: the same tensor
                self._vectors[(*self._key("vanilla", "last", "zero_shot", self.n_shots), result.sweep.best_layer)] = tv
        return self.made[f"vanilla_sweep/{mode}"]

    def function_result(self, n_shots: int | None = None) -> tuple[TaskVector, FunctionVectorResult]:
        """Todd et al.'s function vector of the bench's task (heads ranked on ``train`` prompts, made once per
        ``n_shots``): its vector at layer 0 and what :func:`~tvlens.vectors.function_vector` measured (the heads,
        their mean outputs)."""
        shots = self.n_shots if n_shots is None else n_shots
        if f"function/{shots}" not in self.made:
            self.made[f"function/{shots}"] = function_vector(self.model, self.task, 0, top_k=self.top_k, n_shots=shots,
                                                             seed=self.seed, progress=False)
        return self.made[f"function/{shots}"]

    def head_weights(self) -> HeadWeightedResult:
        """Saglam et al. 2025's learned head weights ``ω`` of the bench's task (learned once, heads read as
        :attr:`head_source` says); :meth:`~tvlens.vectors.HeadWeightedResult.interventions_for` reads them on
        prompts."""
        if "head_weighted" not in self.made:
            self.made["head_weighted"] = head_weighted_task_vector(
                self.model, self.task, n_shots=self.n_shots, seed=self.seed, head_source=self.head_source,
                progress=self.progress)
        return self.made["head_weighted"][1]

    @staticmethod
    def _key(method: str, positions: Any, base: str, n_shots: int | None) -> tuple[Any, ...]:
        """What identifies a method's vectors apart from their layer (:meth:`vectors` keeps them by it and layer)."""
        return method, repr(positions), base, n_shots

    def prompts(self, split: str, n: int, n_shots: int | None = None) -> ICLBatch:
        """``n`` prompts of ``split`` (made once per split, size and shots)."""
        shots = self.n_shots if n_shots is None else n_shots
        key = (split, n, shots)
        if key not in self._prompts:
            self._prompts[key] = self.splits.sample(self.task, split, n, shots)
        return self._prompts[key]

    def score(self, what: str | TaskVector | Any, batch: ICLBatch, base: str = "zero_shot",
              query_at: int | Tensor | None = None) -> EvalResult:
        """The score on ``batch`` of ``"zero_shot"``, ``"icl"``, or a vector injected into the ``base`` view (each
        view of a batch runs into the query engine once, :class:`~tvlens.scoring.PromptScorer`); ``query_at``:
        the scored prompts moved so that their query sits there (:meth:`~tvlens.scoring.PromptScorer.scores`)."""
        key = id(batch)
        if key not in self._scorers or self._scorers[key].batch is not batch:  # the batch itself, not one at its id
            self._scorers[key] = PromptScorer(self.model, batch)
        if isinstance(what, str):
            return self._scorers[key].evaluate(what, None, base, query_at)
        return self._scorers[key].evaluate("injected", what, base, query_at)

def _vanilla(bench: Bench, layers: list[Any], positions: Any, base: str, n_shots: int | None
             ) -> dict[Any, TaskVector]:
    """Yang et al. 2025a's vanilla TV (mean ICL state minus mean zero-shot state), read where it is added."""
    position = positions if isinstance(positions, int) else "last"
    return {k: vanilla_task_vector(bench.model, bench.task, k, position=position, n_shots=n_shots, seed=bench.seed,
                                   progress=False)[0] for k in layers}


def _function(bench: Bench, layers: list[Any], positions: Any, base: str, n_shots: int | None
              ) -> dict[Any, TaskVector]:
    """Todd et al.'s function vector: its heads and their mean outputs do not depend on the layer (made once)."""
    tv, result = bench.function_result(n_shots)
    return {k: TaskVector.single(result.vector, k, positions, method="function", task=bench.task.to_dict(),
                                 fingerprint=tv.fingerprint, hyperparameters={**tv.hyperparameters, "layer": k})
            for k in layers}


def _function_layer(bench: Bench) -> int:
    """The function vector's own layer: the best on the ``dev`` split of the FV added at each layer (Todd et al.
    choose it for the FV, not for another method)."""
    vectors = bench.vectors("function", list(range(bench.model.n_layers)))
    return sweep_layers(bench.model, bench.task, vectors, n_shots=bench.n_shots, dev_prompts=100, test_prompts=1,
                        seed=bench.seed, progress=False).best_layer


def _learned(bench: Bench, layers: list[Any], positions: Any, base: str, n_shots: int | None
             ) -> dict[Any, TaskVector]:
    """Yang et al. 2025a's learned TV: one vector per layer, trained side by side (one alone when one is asked)."""
    options = {"positions": positions, "base": base, "n_shots": n_shots, "config": bench.learn, "seed": bench.seed,
               "progress": bench.progress}
    if len(layers) == 1:
        return {layers[0]: learn_task_vector(bench.model, bench.task, layers[0], **options)[0]}
    return {k: tv for k, (tv, _) in learn_task_vectors(bench.model, bench.task, list(layers), **options).items()}


def _head_weighted(bench: Bench, layers: list[Any], positions: Any, base: str, n_shots: int | None
                   ) -> dict[Any, TaskVector]:
    """Saglam et al. 2025's head-weighted LTV: learned weights of every head's output, over every layer."""
    if n_shots != bench.n_shots:
        raise ValueError(f"n_shots={n_shots}: the head-weighted vector is learned on the bench's prompts "
                         f"(n_shots={bench.n_shots}); expected that")
    bench.head_weights()
    return {None: bench.made["head_weighted"][0]}


register_method(Method("vanilla", "vanilla TV", "#d95f02", _vanilla))
register_method(Method("function", "function vector", "#7570b3", _function, own_layer=_function_layer))
register_method(Method("learned", "learned TV", "#e7298a", _learned, learned=True))
register_method(Method("head_weighted", "head-weighted LTV", "#66a61e", _head_weighted, learned=True,
                       per_layer=False))


__all__ = ["METHODS", "Bench", "Maker", "Method", "check_methods", "register_method"]
