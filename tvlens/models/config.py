"""Architecture of a from-scratch tvlens model, independent of the TransformerLens line.

A :class:`ModelConfig` describes a GPT-style decoder the way TransformerLens does
(``n_layers``, ``d_model``, ``n_heads``…), plus one tvlens field: ``d_input``. When
``d_input`` is set the model reads real vectors (regression prompts, Saglam et al. 2025 and Yang et al. 2025b):
a learned linear *read-in* maps ``R^d_input → R^d_model`` in place of the token
embedding, and the unembedding has ``d_vocab = 1`` output, i.e. it is a linear
*read-out* of the final stream to one scalar. Everything between (blocks, hooks,
injection) is the ordinary hooked transformer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tvlens._checks import check_int
from tvlens._config import Config

_ACT_FNS = ("gelu", "gelu_new", "relu", "silu")
_NORMS = ("LN", "LNPre", "RMS", "RMSPre", None)


@dataclass
class ModelConfig(Config):
    """Shape of a decoder-only transformer built from scratch.

    Attributes:
        n_layers: number of blocks L.
        d_model: residual-stream width d.
        n_heads: attention heads per layer H.
        d_vocab: vocabulary size (``1`` for a regression read-out).
        n_ctx: longest prompt, in positions.
        d_head: head width; defaults to ``d_model // n_heads``.
        d_mlp: MLP width; defaults to ``4 * d_model`` (ignored when ``attn_only``).
        act_fn: MLP non-linearity.
        normalization_type: ``"LN"``, ``"LNPre"``, ``"RMS"``, ``"RMSPre"`` or ``None``.
        attn_only: blocks without MLPs.
        d_input: width of real-valued inputs; ``None`` for token models.
        seed: seed of the weight initialisation.
    """

    n_layers: int
    d_model: int
    n_heads: int
    d_vocab: int
    n_ctx: int
    d_head: int | None = None
    d_mlp: int | None = None
    act_fn: str = "gelu"
    normalization_type: str | None = "LN"
    attn_only: bool = False
    d_input: int | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_vocab", "n_ctx"):
            check_int(f"ModelConfig.{name}", getattr(self, name), 1)
        if self.d_head is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"ModelConfig.d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                    "set d_head explicitly"
                )
            self.d_head = self.d_model // self.n_heads
        if self.d_mlp is None and not self.attn_only:
            self.d_mlp = 4 * self.d_model
        if self.act_fn not in _ACT_FNS:
            raise ValueError(f"ModelConfig.act_fn={self.act_fn!r}: expected one of {_ACT_FNS}")
        if self.normalization_type not in _NORMS:
            raise ValueError(
                f"ModelConfig.normalization_type={self.normalization_type!r}: expected one of {_NORMS}"
            )
        if self.d_input is not None:
            check_int("ModelConfig.d_input", self.d_input, 1, "or None: token inputs")

    @property
    def is_regression(self) -> bool:
        """Whether the model reads real vectors (``d_input`` set) instead of tokens."""
        return self.d_input is not None

    def tl_fields(self) -> dict[str, Any]:
        """Keyword arguments shared by TL 3.x ``HookedTransformerConfig`` and 4.x ``TransformerBridgeConfig``."""
        return {
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "d_head": self.d_head,
            "d_mlp": self.d_mlp,
            "d_vocab": self.d_vocab,
            "n_ctx": self.n_ctx,
            "act_fn": self.act_fn,
            "normalization_type": self.normalization_type,
            "attn_only": self.attn_only,
            "seed": self.seed,
            "positional_embedding_type": "standard",
        }
