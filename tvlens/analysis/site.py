"""The one vector an analysis follows: a single ``add`` site in the residual stream.

The analyses of :mod:`tvlens.analysis` (linear dynamics, OV decomposition, key heads) follow one
vector θ that enters ``blocks.{l}.hook_resid_pre`` at one position of each prompt — the form a
learned task vector has. :func:`single_site` checks a :class:`~tvlens.vectors.TaskVector` has
that form and returns θ (scale folded in) with its site.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from tvlens.models.hooked import HookedModel
from tvlens.vectors.task_vector import Site, TaskVector


def single_site(model: HookedModel, vector: TaskVector, analysis: str) -> tuple[Float[Tensor, " d_model"], Site]:
    """θ (times the vector's scale, in the model's dtype) and its site.

    Raises:
        TypeError: ``vector`` is not a :class:`TaskVector`.
        ValueError: the vector has several sites, is not ``add``, or does not sit at ``resid_pre`` at one
            position (``"last"`` or an int); the message names ``analysis``.
    """
    if not isinstance(vector, TaskVector):
        raise TypeError(f"vector: {analysis} expects a TaskVector, got {type(vector).__name__}")
    if len(vector.vectors) != 1 or vector.mode != "add":
        raise ValueError(f"{analysis} needs a single-site 'add' vector (e.g. a learned task vector); got "
                         f"{len(vector.vectors)} site(s) in mode {vector.mode!r}")
    site = vector.sites[0]
    if site.hook != "resid_pre" or not isinstance(site.positions, int | str) or site.positions == "all":
        raise ValueError(f"the vector sits at {site}; {analysis} needs resid_pre at one position ('last' or an int)")
    model.check_layer(site.layer, "vector layer")
    return (vector.vector() * vector.scale).to(model.dtype).to(model.device), site


__all__ = ["single_site"]
