"""Models: the hooked-model adapter over TransformerLens 3.x/4.x, its architecture facts, and the query
engine that runs prompts with edits on a cached suffix or the full forward."""

from tvlens.models.capabilities import Capabilities
from tvlens.models.config import ModelConfig
from tvlens.models.engine import QueryEngine, StreamEdit
from tvlens.models.hooked import BLOCK_HOOKS, HookedModel
from tvlens.models.tl_version import transformer_lens_line

__all__ = ["BLOCK_HOOKS", "Capabilities", "HookedModel", "ModelConfig", "QueryEngine", "StreamEdit",
           "transformer_lens_line"]
