"""What an architecture is made of, read once from the model: the facts tvlens' own block needs.

TransformerLens describes an architecture in its config (``normalization_type``, ``rotary_dim``,
``n_key_value_heads``, ``parallel_attn_mlp`` …). On 3.x those fields are what the model computes;
a 4.x ``TransformerBridge`` runs the Hugging Face modules themselves and fills some fields only
approximately (it reports no ``rotary_dim`` for GPT-NeoX's quarter rotary, no interleaving for
GPT-J, ``√d_head`` as Gemma-2's attention scale). So for a bridge over a Hugging Face model the
facts that decide the arithmetic are read from the Hugging Face config, and a 3.x model's from its
TransformerLens config. :class:`Capabilities` is the one place that does this: no module outside
``tvlens/models`` reads a TransformerLens config field.

``cached_suffix`` says whether :class:`tvlens.models.engine.QueryEngine` may run prompts on its
cached path for this model; ``reason`` says why not when it may not. The cached path is allowed
for the architecture families whose equality with the full forward the test-suite checks
(:data:`VERIFIED_ARCHITECTURES`) and for tvlens' own from-scratch models; anything else runs the
full forward — correct, only slower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Hugging Face architectures whose cached suffix is checked against the full forward in the tests.
VERIFIED_ARCHITECTURES = {
    "gpt2": "GPT2LMHeadModel",
    "gpt_neox": "GPTNeoXForCausalLM",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gptj": "GPTJForCausalLM",
    "phi": "PhiForCausalLM",
}

#: MLP non-linearities of the cached block (names as TransformerLens and Hugging Face spell them).
ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish")

_NORMS = ("LN", "LNPre", "RMS", "RMSPre", None)


@dataclass(frozen=True)
class Capabilities:
    """Architecture facts of one model.

    Attributes:
        norm: block normalisation, ``"LN"``, ``"LNPre"``, ``"RMS"``, ``"RMSPre"`` or ``None``.
        final_norm: normalisation before the unembedding (same kinds).
        eps: the normalisations' ε.
        norm_offset: added to every norm weight before use (Gemma's RMSNorm scales by ``1 + w``).
        post_norms: sandwich norms after attention and after the MLP (Gemma-2).
        positional: ``"standard"`` (learned absolute), ``"rotary"`` or another TransformerLens kind.
        rotary_dim: dimensions of each head that rotary rotates (``None`` without rotary).
        rotary_base: rotary's θ base.
        rotary_interleaved: rotate adjacent pairs (GPT-J) instead of the two halves (GPT-NeoX, Llama).
        n_key_value_heads: key/value heads (fewer than ``n_heads`` under grouped-query attention).
        gated_mlp: ``act(x W_gate) · (x W_in)`` MLPs (Llama, Gemma).
        parallel_attn_mlp: attention and MLP read the same block input (GPT-NeoX, GPT-J, Phi).
        act_fn: the MLP non-linearity.
        attn_only: blocks without MLPs.
        attn_scale: the divisor of the attention scores (``√d_head`` unless the model says otherwise).
        attn_soft_cap: ``c·tanh(s/c)`` on attention scores, ``None`` without (Gemma-2).
        logit_soft_cap: the same on the output logits, ``None`` without.
        sliding_windows: per layer, the attention window in positions (``None``: the whole prompt).
        n_ctx: longest prompt the model takes.
        architecture: Hugging Face architecture name, or ``None`` for a from-scratch model.
        cached_suffix: whether the query engine's cached path reproduces this model.
        reason: why it does not (empty when it does).
    """

    norm: str | None
    final_norm: str | None
    eps: float
    norm_offset: float
    post_norms: bool
    positional: str
    rotary_dim: int | None
    rotary_base: float
    rotary_interleaved: bool
    n_key_value_heads: int
    gated_mlp: bool
    parallel_attn_mlp: bool
    act_fn: str | None
    attn_only: bool
    attn_scale: float
    attn_soft_cap: float | None
    logit_soft_cap: float | None
    sliding_windows: tuple[int | None, ...]
    n_ctx: int
    architecture: str | None
    cached_suffix: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cap(value: Any) -> float | None:
    value = float(value or -1.0)
    return value if value > 0 else None


def _hf_config(model: Any) -> Any:
    """The Hugging Face config behind a 4.x bridge over a ``transformers`` model (``None`` otherwise)."""
    original = getattr(model, "original_model", None)
    return getattr(original, "config", None)


def read_capabilities(tl_model: Any) -> Capabilities:
    """The :class:`Capabilities` of a TransformerLens model (a 4.x bridge or a 3.x ``HookedTransformer``)."""
    cfg = tl_model.cfg
    n_layers, n_heads, d_head = int(cfg.n_layers), int(cfg.n_heads), int(cfg.d_head)
    hf = _hf_config(tl_model)
    norm = getattr(cfg, "normalization_type", None)
    final_norm = "RMS" if getattr(cfg, "final_rms", False) and norm == "LN" else norm
    positional = getattr(cfg, "positional_embedding_type", "standard") or "standard"
    attn_scale = float(getattr(cfg, "attn_scale", -1.0) or -1.0)
    attn_scale = attn_scale if attn_scale > 0 else d_head**0.5
    if getattr(cfg, "use_attn_scale", True) is False:
        attn_scale = 1.0
    kv = getattr(cfg, "n_key_value_heads", None) or n_heads
    facts: dict[str, Any] = {
        "norm": norm, "final_norm": final_norm, "eps": float(getattr(cfg, "eps", 1e-5)), "norm_offset": 0.0,
        "post_norms": bool(getattr(cfg, "use_normalization_before_and_after", False)),
        "positional": positional,
        "rotary_dim": (int(getattr(cfg, "rotary_dim", None) or d_head) if positional == "rotary" else None),
        "rotary_base": float(getattr(cfg, "rotary_base", 10000) or 10000),
        "rotary_interleaved": bool(getattr(cfg, "rotary_adjacent_pairs", False)),
        "n_key_value_heads": int(kv), "gated_mlp": bool(getattr(cfg, "gated_mlp", False)),
        "parallel_attn_mlp": bool(getattr(cfg, "parallel_attn_mlp", False)),
        "act_fn": getattr(cfg, "act_fn", None), "attn_only": bool(getattr(cfg, "attn_only", False)),
        "attn_scale": attn_scale, "attn_soft_cap": _cap(getattr(cfg, "attn_scores_soft_cap", -1.0)),
        "logit_soft_cap": _cap(getattr(cfg, "output_logits_soft_cap", -1.0)),
        "sliding_windows": _tl_windows(cfg, n_layers), "n_ctx": int(cfg.n_ctx),
        "architecture": getattr(cfg, "original_architecture", None),
    }
    problems = []
    if hf is not None:
        problems += _from_hf(hf, facts, d_head, n_layers)
    problems += _unsupported(cfg, facts)
    return Capabilities(**facts, cached_suffix=not problems, reason="; ".join(problems))


def _tl_windows(cfg: Any, n_layers: int) -> tuple[int | None, ...]:
    if not getattr(cfg, "use_local_attn", False):
        return (None,) * n_layers
    window, kinds = cfg.window_size, list(cfg.attn_types or ["local"] * n_layers)
    return tuple(int(window) if kinds[k % len(kinds)] == "local" else None for k in range(n_layers))


def _from_hf(hf: Any, facts: dict[str, Any], d_head: int, n_layers: int) -> list[str]:
    """Overwrite the facts a bridge reports only approximately with the Hugging Face config's own."""
    model_type = getattr(hf, "model_type", "")
    facts["architecture"] = VERIFIED_ARCHITECTURES.get(model_type) or (list(getattr(hf, "architectures", None)
                                                                           or [model_type]))[0]
    problems = []
    if model_type not in VERIFIED_ARCHITECTURES:
        problems.append(f"the Hugging Face architecture {model_type!r} is not among those whose cached path is "
                        f"checked ({', '.join(sorted(VERIFIED_ARCHITECTURES))})")
    if facts["positional"] == "rotary":
        rope = dict(getattr(hf, "rope_parameters", None) or {})
        if rope.get("rope_type", "default") != "default":
            problems.append(f"rotary scaling {rope.get('rope_type')!r} (only plain rotary is cached)")
        partial = rope.get("partial_rotary_factor", getattr(hf, "partial_rotary_factor", None))
        if getattr(hf, "rotary_dim", None):  # GPT-J
            facts["rotary_dim"] = int(hf.rotary_dim)
        elif partial is not None:
            facts["rotary_dim"] = int(d_head * float(partial))
        facts["rotary_base"] = float(rope.get("rope_theta", getattr(hf, "rope_theta", facts["rotary_base"])))
        facts["rotary_interleaved"] = model_type in ("gptj", "codegen")
    if model_type in ("gemma", "gemma2"):
        facts["norm_offset"] = 1.0
    if model_type == "gemma2":
        facts["post_norms"] = True
        facts["attn_scale"] = float(hf.query_pre_attn_scalar) ** 0.5
        facts["attn_soft_cap"] = _cap(getattr(hf, "attn_logit_softcapping", None))
        facts["logit_soft_cap"] = _cap(getattr(hf, "final_logit_softcapping", None))
    window = getattr(hf, "sliding_window", None) if getattr(hf, "use_sliding_window", True) else None
    kinds = getattr(hf, "layer_types", None)
    if window:
        facts["sliding_windows"] = tuple(
            int(window) if kinds is None or kinds[k] == "sliding_attention" else None for k in range(n_layers))
    else:
        facts["sliding_windows"] = (None,) * n_layers
    if model_type == "phi" and getattr(hf, "qk_layernorm", False):
        problems.append("Phi with qk_layernorm")
    return problems


def _unsupported(cfg: Any, facts: dict[str, Any]) -> list[str]:
    problems = []
    if facts["norm"] not in _NORMS:
        problems.append(f"normalization_type={facts['norm']!r}")
    if facts["positional"] not in ("standard", "rotary"):
        problems.append(f"positional_embedding_type={facts['positional']!r}")
    if not facts["attn_only"] and facts["act_fn"] not in ACTIVATIONS:
        problems.append(f"act_fn={facts['act_fn']!r}")
    if getattr(cfg, "use_qk_norm", False):
        problems.append("query/key normalisation")
    if getattr(cfg, "use_NTK_by_parts_rope", False):
        problems.append("NTK-by-parts rotary")
    if getattr(cfg, "post_embedding_ln", False):
        problems.append("post-embedding LayerNorm")
    if facts["architecture"] is not None and facts["architecture"] not in VERIFIED_ARCHITECTURES.values():
        problems.append(f"architecture {facts['architecture']!r} is not among those whose cached path is checked")
    return sorted(set(problems), key=problems.index)


__all__ = ["ACTIVATIONS", "Capabilities", "VERIFIED_ARCHITECTURES", "read_capabilities"]
