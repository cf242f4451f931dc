"""tvlens — task vectors for in-context learning, on TransformerLens.

The public surface::

    model = tvlens.zoo.load("perm-mix")                 # or HookedModel.from_config / a TL model
    task = tvlens.zoo.task("perm-mix").single(0)        # one task of the family
    tvlens.evaluate(model, task, mode="icl")
    with tvlens.inject(model, tvlens.Intervention(vector, layer=2)):
        logits = model(tokens)
    tvlens.compare(model, task)                         # every task-vector method on the same prompts
    tvlens.generate(model, tokens, vector, max_new_tokens=5)   # generation with the vector in the stream
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tvlens._version import __version__

# Names are imported on first use (PEP 562), so `import tvlens` — and `tvlens --help` — do not load
# torch and TransformerLens until something needs them. `tvlens.evaluate` and `tvlens.inject` are functions (from
# tvlens.scoring and tvlens.interventions): no module shares their names.
_EXPORTS = {
    "EvalResult": "tvlens.scoring",
    "HookedModel": "tvlens.models",
    "ICLBatch": "tvlens.tasks",
    "Intervention": "tvlens.interventions",
    "ModelConfig": "tvlens.models",
    "Site": "tvlens.vectors",
    "Task": "tvlens.tasks",
    "TaskVector": "tvlens.vectors",
    "compare": "tvlens.vectors",
    "evaluate": "tvlens.scoring",
    "Generation": "tvlens.generation",
    "generate": "tvlens.generation",
    "inject": "tvlens.interventions",
    "resolve_positions": "tvlens.positions",
}
_SUBMODULES = ("zoo",)

if TYPE_CHECKING:
    from tvlens import zoo
    from tvlens.generation import Generation, generate
    from tvlens.interventions import Intervention, inject
    from tvlens.models import HookedModel, ModelConfig
    from tvlens.positions import resolve_positions
    from tvlens.scoring import EvalResult, evaluate
    from tvlens.tasks import ICLBatch, Task
    from tvlens.vectors import Site, TaskVector, compare


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tvlens.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'tvlens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])


__all__ = [
    "EvalResult",
    "Generation",
    "HookedModel",
    "ICLBatch",
    "Intervention",
    "ModelConfig",
    "Site",
    "Task",
    "TaskVector",
    "__version__",
    "compare",
    "evaluate",
    "generate",
    "inject",
    "resolve_positions",
    "zoo",
]
