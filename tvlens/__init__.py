"""tvlens — task vectors for in-context learning, on TransformerLens.

The public surface::

    model = tvlens.zoo.load("perm-mix")                 # or HookedModel.from_config / a TL model
    task = tvlens.zoo.task("perm-mix").single(0)        # one task of the family
    tvlens.evaluate(model, task, mode="icl")
    with tvlens.inject(model, tvlens.Intervention(vector, layer=2)):
        logits = model(tokens)
    tvlens.compare(model, task)                         # every task-vector method on the same prompts
"""

from tvlens import zoo
from tvlens._version import __version__
from tvlens.evaluate import EvalResult, evaluate
from tvlens.inject import Intervention, inject
from tvlens.models import HookedModel, ModelConfig
from tvlens.positions import resolve_positions
from tvlens.tasks import ICLBatch, Task
from tvlens.vectors import Site, TaskVector, compare

__all__ = [
    "EvalResult",
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
    "inject",
    "resolve_positions",
    "zoo",
]
