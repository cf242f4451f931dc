"""Models: the hooked-model adapter over TransformerLens 3.x/4.x, architectures, weights."""

from tvlens.models.config import ModelConfig
from tvlens.models.hooked import BLOCK_HOOKS, HookedModel, transformer_lens_line

__all__ = ["BLOCK_HOOKS", "HookedModel", "ModelConfig", "transformer_lens_line"]
