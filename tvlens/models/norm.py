"""The normalisations of a transformer block, as TransformerLens computes them."""

from __future__ import annotations

import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor


def apply_norm(
    x: Float[Tensor, "... d_model"], kind: str | None, eps: float, weight: Tensor | None, bias: Tensor | None,
) -> Float[Tensor, "... d_model"]:
    """TransformerLens' LayerNorm / RMSNorm and their ``Pre`` variants:
    ``(x − mean x) / √(mean (x − mean x)² + ε) · w + b`` for ``LN`` (``RMS``: no centring, no ``b``)."""
    if kind is None:
        return x
    if kind in ("LN", "LNPre"):  # one fused kernel each way (forward and backward)
        return F.layer_norm(x, x.shape[-1:], weight, bias, eps)
    x = F.rms_norm(x, x.shape[-1:], None, eps)
    if weight is not None:
        x = x * weight
    return x if bias is None else x + bias


__all__ = ["apply_norm"]
