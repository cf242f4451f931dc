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
(:data:`FAMILIES`) and for tvlens' own from-scratch models; anything else runs the full forward —
correct, only slower.

**One table of families.** What an architecture family needs beyond TransformerLens' config — rotary
pairing, a norm offset, sandwich norms, an attention scale or soft caps read from the Hugging Face
config, which norm a parallel block's MLP reads, the config flags the cached block does not implement
— is one :class:`Family` entry in :data:`FAMILIES`. Adding a family is that entry plus one test
fixture (docs/architectures.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    """One Hugging Face architecture family whose cached path the tests check against the full forward.

    Attributes:
        model_type: the Hugging Face ``config.model_type`` (``"gpt_neox"``).
        architecture: its ``*ForCausalLM`` class name (TransformerLens' ``original_architecture``).
        rotary_interleaved: rotary turns adjacent pairs (GPT-J) instead of the two halves of a head.
        norm_offset: added to every norm weight before use (Gemma's RMSNorm scales by ``1 + w``).
        sandwich_norms: the Hugging Face module names of the norms after attention and after the MLP
            (Gemma-2), read there when a 4.x bridge keeps them in the Hugging Face modules.
        attn_scale_key: the Hugging Face config key whose square root divides the attention scores.
        soft_cap_keys: the Hugging Face config keys of the attention-score and the output-logit soft caps.
        parallel_norm: in a parallel block, the norm the MLP reads: ``"own"`` (its own, GPT-NeoX) or
            ``"shared"`` (the attention's, GPT-J and Phi).
        refuse: ``(config flag, reason)``: a Hugging Face config flag that, when set, the cached block does
            not implement (the model then runs the full forward and says why).
    """

    model_type: str
    architecture: str
    rotary_interleaved: bool = False
    norm_offset: float = 0.0
    sandwich_norms: tuple[str, str] | None = None
    attn_scale_key: str | None = None
    soft_cap_keys: tuple[str | None, str | None] = (None, None)
    parallel_norm: str = "own"
    refuse: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.parallel_norm not in ("own", "shared"):
            raise ValueError(f"Family.parallel_norm={self.parallel_norm!r}: expected 'own' or 'shared'")


#: Every family whose cached path the tests check, by ``model_type`` (:func:`register_family` adds one).
FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES`; a second family with the same model type or architecture is refused."""
    clash = [f for f in FAMILIES.values()
             if f.model_type == family.model_type or f.architecture == family.architecture]
    if clash:
        raise ValueError(f"family {family.model_type!r} ({family.architecture}): already registered as "
                         f"{clash[0].model_type!r} ({clash[0].architecture})")
    FAMILIES[family.model_type] = family
    return family


for _family in (
    Family("gpt2", "GPT2LMHeadModel"),
    Family("gpt_neox", "GPTNeoXForCausalLM"),
    Family("llama", "LlamaForCausalLM"),
    Family("mistral", "MistralForCausalLM"),
    Family("qwen2", "Qwen2ForCausalLM"),
    Family("gemma", "GemmaForCausalLM", norm_offset=1.0),
    Family("gemma2", "Gemma2ForCausalLM", norm_offset=1.0,
           sandwich_norms=("post_attention_layernorm", "post_feedforward_layernorm"),
           attn_scale_key="query_pre_attn_scalar",
           soft_cap_keys=("attn_logit_softcapping", "final_logit_softcapping")),
    Family("gptj", "GPTJForCausalLM", rotary_interleaved=True, parallel_norm="shared"),
    Family("phi", "PhiForCausalLM", parallel_norm="shared", refuse=(("qk_layernorm", "Phi with qk_layernorm"),)),
):
    register_family(_family)

#: Hugging Face architectures whose cached suffix is checked against the full forward in the tests
#: (``model_type`` → class name; read from :data:`FAMILIES`).
VERIFIED_ARCHITECTURES = {name: family.architecture for name, family in FAMILIES.items()}


def family_of(architecture: str | None) -> Family | None:
    """The :class:`Family` of a ``*ForCausalLM`` class name (``None`` for a from-scratch or unknown model)."""
    return next((f for f in FAMILIES.values() if f.architecture == architecture), None)

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
        sandwich_norms: their Hugging Face module names, where a 4.x bridge keeps them (``None`` without).
        positional: ``"standard"`` (learned absolute), ``"rotary"`` or another TransformerLens kind.
        rotary_dim: dimensions of each head that rotary rotates (``None`` without rotary).
        rotary_base: rotary's θ base.
        rotary_interleaved: rotate adjacent pairs (GPT-J) instead of the two halves (GPT-NeoX, Llama).
        n_key_value_heads: key/value heads (fewer than ``n_heads`` under grouped-query attention).
        gated_mlp: ``act(x W_gate) · (x W_in)`` MLPs (Llama, Gemma).
        parallel_attn_mlp: attention and MLP read the same block input (GPT-NeoX, GPT-J, Phi).
        parallel_norm: the norm a parallel block's MLP reads: ``"own"`` (``ln2``) or ``"shared"`` (``ln1``).
        act_fn: the MLP non-linearity.
        attn_only: blocks without MLPs.
        attn_scale: the divisor of the attention scores (``√d_head`` unless the model says otherwise).
        attn_soft_cap: ``c·tanh(s/c)`` on attention scores, ``None`` without (Gemma-2).
        logit_soft_cap: the same on the output logits, ``None`` without.
        sliding_windows: per layer, the attention window in positions (``None``: the whole prompt).
        n_ctx: longest prompt the model takes.
        architecture: Hugging Face architecture name, or ``None`` for a from-scratch model.
        rotary_in_model_dtype: the model computes its rotary angles in its own dtype (a TL 3.x
            ``HookedTransformer``); otherwise in float32, as Hugging Face's modules do.
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
    sandwich_norms: tuple[str, str] | None = None
    parallel_norm: str = "own"
    rotary_in_model_dtype: bool = False

    @property
    def learned_positions(self) -> bool:
        """Whether positions enter as a learned absolute embedding added to the stream (``W_pos``): then a
        hidden state carries the position it was computed at, and patching it into another position moves it."""
        return self.positional == "standard"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cap(value: Any) -> float | None:
    value = float(value or -1.0)
    return value if value > 0 else None


def _hf_config(model: Any) -> Any:
    """The Hugging Face config behind a 4.x bridge over a ``transformers`` model (``None`` otherwise)."""
    original = getattr(model, "original_model", None)
    return getattr(original, "config", None)


def is_bridge(tl_model: Any) -> bool:
    """Whether ``tl_model`` is a TL 4.x ``TransformerBridge`` (else a 3.x ``HookedTransformer``)."""
    return type(tl_model).__name__ == "TransformerBridge" or hasattr(tl_model, "tl_parameters")


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
        "rotary_in_model_dtype": positional == "rotary" and not is_bridge(tl_model),
    }
    problems = []
    if hf is not None:
        problems += _from_hf(hf, facts, d_head, n_layers)
    family = family_of(facts["architecture"])
    if family is not None:  # on both lines: which norm a parallel MLP reads, where sandwich norms live
        facts["parallel_norm"], facts["sandwich_norms"] = family.parallel_norm, family.sandwich_norms
    problems += _unsupported(cfg, facts)
    return Capabilities(**facts, cached_suffix=not problems, reason="; ".join(problems))


def _tl_windows(cfg: Any, n_layers: int) -> tuple[int | None, ...]:
    if not getattr(cfg, "use_local_attn", False):
        return (None,) * n_layers
    window, kinds = cfg.window_size, list(cfg.attn_types or ["local"] * n_layers)
    return tuple(int(window) if kinds[k % len(kinds)] == "local" else None for k in range(n_layers))


def _from_hf(hf: Any, facts: dict[str, Any], d_head: int, n_layers: int) -> list[str]:
    """Overwrite the facts a bridge reports only approximately with the Hugging Face config's own, and its
    family's (:data:`FAMILIES`)."""
    model_type = getattr(hf, "model_type", "")
    family = FAMILIES.get(model_type)
    facts["architecture"] = family.architecture if family else (list(getattr(hf, "architectures", None)
                                                                     or [model_type]))[0]
    problems = []
    if family is None:
        problems.append(f"the Hugging Face architecture {model_type!r} is not among those whose cached path is "
                        f"checked ({', '.join(sorted(FAMILIES))})")
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
        facts["rotary_interleaved"] = bool(family and family.rotary_interleaved)
    if family is not None:
        facts["norm_offset"] = family.norm_offset
        if family.sandwich_norms:
            facts["post_norms"] = True
        if family.attn_scale_key:
            facts["attn_scale"] = float(getattr(hf, family.attn_scale_key)) ** 0.5
        attn_cap, logit_cap = family.soft_cap_keys
        if attn_cap:
            facts["attn_soft_cap"] = _cap(getattr(hf, attn_cap, None))
        if logit_cap:
            facts["logit_soft_cap"] = _cap(getattr(hf, logit_cap, None))
        problems += [reason for flag, reason in family.refuse if getattr(hf, flag, False)]
    window = getattr(hf, "sliding_window", None) if getattr(hf, "use_sliding_window", True) else None
    kinds = getattr(hf, "layer_types", None)
    if window:
        facts["sliding_windows"] = tuple(
            int(window) if kinds is None or kinds[k] == "sliding_attention" else None for k in range(n_layers))
    else:
        facts["sliding_windows"] = (None,) * n_layers
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
    if facts["architecture"] is not None and family_of(facts["architecture"]) is None:
        problems.append(f"architecture {facts['architecture']!r} is not among those whose cached path is checked")
    return sorted(set(problems), key=problems.index)


__all__ = ["ACTIVATIONS", "FAMILIES", "VERIFIED_ARCHITECTURES", "Capabilities", "Family", "family_of",
           "read_capabilities", "register_family"]
