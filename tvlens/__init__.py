"""tvlens — task vectors for in-context learning, on TransformerLens.

The public surface::

    model = tvlens.HookedModel.from_config(tvlens.ModelConfig(...))   # or a zoo model
    task = tvlens.tasks.PermutationMixture()
    tvlens.evaluate(model, task, mode="icl")
    with tvlens.inject(model, tvlens.Intervention(vector, layer=2)):
        logits = model(tokens)
"""

from tvlens import zoo  # noqa: E402  (the zoo needs the package above)
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
