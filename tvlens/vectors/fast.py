"""The fast path for vectors at the last position: run only the query through layers ≥ l.

Attention is causal, so a vector put into the stream at the **last** position ``N`` at layer ``l``
changes nothing at positions ``< N``: for every block ``l' ≥ l`` their keys and values are the
same at every step of learning a vector and for every candidate vector. :class:`SuffixRunner`
computes them once (with the stream entering layer ``l`` at ``N``) and then runs the query
position alone through blocks ``l … L-1``, attending to the cached keys/values — tvlens' own
cached attention, because key-value caching does not work through a 4.x ``TransformerBridge``.
It works on both TransformerLens lines from the TL-layout weights.

The math per block (TransformerLens conventions, row vectors)::

    a = LN1(x);  q,k,v = a W_{Q,K,V} + b;  p = softmax(q·[K_prefix; k] / √d_head)   (padded keys masked)
    x ← x + Σ_h (p_h [V_prefix; v]_h) W_O[h] + b_O;   x ← x + MLP(LN2(x))

Supported: LayerNorm / LNPre / RMS / RMSPre, standard positional embeddings, MLP or attention-only
blocks. Anything else (rotary, parallel blocks, gated MLPs, grouped KV, soft caps) reports
:func:`supports_fast_path` ``False`` and callers use the full forward. Tests check loss and gradient
against the full forward (float64, atol 1e-5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from tvlens.models.hooked import HookedModel

_ACTS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
}


def supports_fast_path(model: HookedModel) -> bool:
    """Whether :class:`SuffixRunner` reproduces this architecture exactly."""
    cfg = model.cfg
    return (
        (getattr(cfg, "normalization_type", None) in ("LN", "LNPre", "RMS", "RMSPre"))
        and (getattr(cfg, "positional_embedding_type", "standard") or "standard") == "standard"
        and not getattr(cfg, "parallel_attn_mlp", False)
        and not getattr(cfg, "gated_mlp", False)
        and getattr(cfg, "n_key_value_heads", None) in (None, cfg.n_heads)
        and (getattr(cfg, "act_fn", None) in _ACTS or getattr(cfg, "attn_only", False))
        and float(getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0) <= 0
        and float(getattr(cfg, "output_logits_soft_cap", -1.0) or -1.0) <= 0
        and not getattr(cfg, "final_rms", False)
    )


def apply_norm(x: Tensor, norm: str, eps: float, weights: Mapping[str, Tensor], prefix: str) -> Tensor:
    """TransformerLens' LayerNorm / RMSNorm (and their ``Pre`` variants) with the TL-layout weights
    ``{prefix}.w`` / ``{prefix}.b``: ``(x − mean x) / √(mean (x − mean x)² + ε) · w + b`` for ``LN``."""
    if norm in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    if norm in ("LN", "RMS"):
        x = x * weights[f"{prefix}.w"]
        if norm == "LN":
            x = x + weights[f"{prefix}.b"]
    return x


class SuffixRunner:
    """Logits at the last position of fixed prompts, with vectors in the stream from layer ``start`` on.

    Args:
        model: the model (its weights are read once; it is not modified).
        inputs: the prompts (token ids or regression vectors), all ending at their query.
        start: the first layer a vector is put in (``resid_pre``).
        attention_mask: padding mask (left padding: the query is the last column).
    """

    def __init__(
        self,
        model: HookedModel,
        inputs: Tensor,
        start: int,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> None:
        if not supports_fast_path(model):
            raise ValueError(f"the fast path does not support this architecture ({model.cfg.normalization_type=}, …)")
        self.model, self.start = model, model.check_layer(start, "start")
        cfg = model.cfg
        self.eps = float(getattr(cfg, "eps", 1e-5))
        self.norm = cfg.normalization_type
        self.attn_only = bool(getattr(cfg, "attn_only", False))
        self.act = _ACTS.get(getattr(cfg, "act_fn", None) or "gelu")
        # TL 3.x stores √d_head in cfg.attn_scale; the 4.x bridge config leaves it at -1 (= default √d_head).
        attn_scale = float(getattr(cfg, "attn_scale", -1.0) or -1.0)
        self.scale = attn_scale if attn_scale > 0 else math.sqrt(model.d_head)
        if getattr(cfg, "use_attn_scale", True) is False:
            self.scale = 1.0
        self.w = model.tl_state_dict(clone=False)
        layers = range(self.start, model.n_layers)
        names = [model.hook_name(self.start, "resid_pre")]
        names += [model.hook_name(layer, f"attn.hook_{kv}") for layer in layers for kv in ("k", "v")]
        with torch.no_grad():
            _, cache = model.run_with_cache(inputs, names, attention_mask=attention_mask)
        self.query_stream = cache[names[0]][:, -1].detach()  # [b, d]
        # Cached prefix, laid out for batched matmuls: keys [b, h, d_head, pos-1], values [b, h, pos-1, d_head].
        self.keys = {layer: cache[model.hook_name(layer, "attn.hook_k")][:, :-1].detach().permute(0, 2, 3, 1)
                     .contiguous() for layer in layers}
        self.values = {layer: cache[model.hook_name(layer, "attn.hook_v")][:, :-1].detach().permute(0, 2, 1, 3)
                       .contiguous() for layer in layers}
        self.prefix_bias = None  # additive mask for padded prefix keys: 0 or -inf, [b, 1, pos-1]
        if attention_mask is not None:
            pad = ~attention_mask[:, :-1].bool()
            self.prefix_bias = torch.zeros(pad.shape, dtype=self.query_stream.dtype).masked_fill(pad, float("-inf"))
            self.prefix_bias = self.prefix_bias[:, None, :]
        # Fused per-layer projections: [d, 3·h·d_head] for q, k, v and [h·d_head, d] for the output.
        h, dk = model.n_heads, model.d_head
        self.qkv = {}
        for layer in layers:
            p = f"blocks.{layer}.attn"
            weight = torch.cat([self.w[f"{p}.W_{n}"].permute(1, 0, 2).reshape(model.d_model, h * dk) for n in "QKV"], 1)
            bias = torch.cat([self.w[f"{p}.b_{n}"].reshape(h * dk) for n in "QKV"])
            self.qkv[layer] = (weight, bias, self.w[f"{p}.W_O"].reshape(h * dk, model.d_model))

    def __len__(self) -> int:
        return self.query_stream.shape[0]

    def _norm(self, x: Tensor, prefix: str) -> Tensor:
        return apply_norm(x, self.norm, self.eps, self.w, prefix)

    def _attend(
        self,
        layer: int,
        x: Float[Tensor, "batch d_model"],
        rows: Tensor | slice,
        copies: int | None,
        bias: Float[Tensor, "batch 1 prefix"] | None,
    ) -> Float[Tensor, "batch n_heads d_head"]:
        """The query's per-head attention results ``z [batch, n_heads, d_head]`` at ``layer`` (before ``W_O``)."""
        batch, heads, d_head = x.shape[0], self.model.n_heads, self.model.d_head
        p = f"blocks.{layer}"
        w_qkv, b_qkv, _ = self.qkv[layer]
        q, k, v = (self._norm(x, f"{p}.ln1") @ w_qkv + b_qkv).view(batch, 3, heads, d_head).unbind(1)
        # scores against the cached prefix keys and against the query's own key, then one softmax
        keys, values = self.keys[layer][rows], self.values[layer][rows]
        if copies is not None:  # one matmul per (prompt, head) over all copies
            prefix_scores = torch.einsum("cphk,phkt->cpht", q.view(copies, -1, heads, d_head), keys)
            prefix_scores = prefix_scores.reshape(batch, heads, -1) / self.scale
        else:  # broadcast products, not batched matmuls: per-row matrices are tiny and bmm overhead dominates
            prefix_scores = (q[..., None] * keys).sum(-2) / self.scale  # [b, h, pos-1]
        if bias is not None:
            prefix_scores = prefix_scores + bias
        self_score = (q * k).sum(-1, keepdim=True) / self.scale  # [b, h, 1]
        pattern = torch.cat([prefix_scores, self_score], -1).softmax(-1)
        if copies is not None:
            prefix_z = torch.einsum("cpht,phtk->cphk",
                                    pattern[..., :-1].reshape(copies, -1, heads, pattern.shape[-1] - 1), values)
            z = prefix_z.reshape(batch, heads, d_head) + pattern[:, :, -1:] * v
        else:
            z = (pattern[..., :-1, None] * values).sum(-2) + pattern[:, :, -1:] * v
        return z

    def logits(
        self,
        vectors: Mapping[int, Float[Tensor, "*batch d_model"]],
        mode: str = "add",
        rows: Tensor | slice | None = None,
        return_resid: bool = False,
        streams: list[Tensor] | None = None,
        copies: int | None = None,
        z_hook: Callable[[int, Tensor], Tensor] | None = None,
        resume: tuple[int, Float[Tensor, "prompts d_model"]]
        | tuple[int, Float[Tensor, "prompts d_model"], Float[Tensor, "prompts n_heads d_head"]]
        | None = None,
    ) -> Float[Tensor, "batch d_vocab"]:
        """Last-position logits with ``vectors[l]`` put into ``blocks.{l}.hook_resid_pre`` (``l ≥ start``).

        Args:
            vectors: ``{layer: [d_model] or [batch, d_model]}``; the key ``n_layers`` means the final
                stream (``blocks.{L-1}.hook_resid_post``, the input of ``ln_final``).
            mode: ``"add"`` or ``"replace"``.
            rows: a subset of the prompts (a minibatch), possibly repeated (to run several vectors per prompt).
            return_resid: also return the final stream at the query (input of ``ln_final``).
            streams: if a list is given, the query's stream is appended to it at every ``resid_pre``
                from ``start`` on (after that layer's vector) and finally the ``ln_final`` input.
            copies: run ``copies`` vectors over every prompt: the batch is ``copies × prompts`` (copy-major)
                and the vectors have that many rows. The cached prefix is broadcast over the copies,
                never copied (``rows`` must be ``None``).
            z_hook: ``z_hook(layer, z)`` may return a changed ``z [batch, n_heads, d_head]`` (the
                query's per-head attention results before ``W_O``, as at ``attn.hook_z``): how head
                ablations run on this path.
            resume: ``(layer, stream)`` or ``(layer, stream, z)``: start at ``blocks.{layer}.hook_resid_pre``
                from this query stream ``[prompts, d_model]`` (as ``streams`` recorded it in an earlier
                call: that layer's vector already in) instead of recomputing the layers before it;
                vectors at layers up to ``layer`` are taken as already in the stream. With ``z``
                ``[prompts, n_heads, d_head]`` (what ``z_hook`` saw at ``layer`` in that call) the
                layer's attention is not recomputed either. Used when copies differ only from ``layer``
                on (a head ablated there), so everything before equals a run made once.
        """
        if copies is not None and rows is not None:
            raise ValueError("pass either rows or copies, not both")
        rows = slice(None) if rows is None else rows
        bad = [layer for layer in vectors if layer < self.start or layer > self.model.n_layers]
        if bad:
            raise ValueError(f"layers {bad} are outside this runner's range [{self.start}, {self.model.n_layers}]")
        w = self.w
        first, x, resume_z = self.start, self.query_stream, None
        if resume is not None:
            first, x, resume_z = resume if len(resume) == 3 else (*resume, None)
            n, d = self.query_stream.shape
            z_shape = (n, self.model.n_heads, self.model.d_head)
            if (not self.start <= first < self.model.n_layers or tuple(x.shape) != (n, d)
                    or (resume_z is not None and tuple(resume_z.shape) != z_shape)):
                raise ValueError(f"resume: expected a layer in [{self.start}, {self.model.n_layers}), a stream of "
                                 f"shape {(n, d)} and z of shape {z_shape}; got layer {first}, stream "
                                 f"{tuple(x.shape)}, z {None if resume_z is None else tuple(resume_z.shape)}")
        x = x[rows]
        if copies is not None:
            x = x.repeat(copies, 1)
        batch, heads, d_head = x.shape[0], self.model.n_heads, self.model.d_head
        bias = None if self.prefix_bias is None else self.prefix_bias[rows]
        if bias is not None and copies is not None:
            bias = bias.repeat(copies, 1, 1)
        for layer in range(first, self.model.n_layers):
            if layer in vectors and not (resume is not None and layer == first):
                x = x + vectors[layer] if mode == "add" else vectors[layer].expand_as(x)
            if streams is not None:
                streams.append(x)
            p = f"blocks.{layer}"
            if resume_z is not None and layer == first:  # the intact run's attention at this layer
                z = resume_z[rows].repeat(copies or 1, 1, 1)
            else:
                z = self._attend(layer, x, rows, copies, bias)
            if z_hook is not None:
                z = z_hook(layer, z)
            x = x + z.reshape(batch, heads * d_head) @ self.qkv[layer][2] + w[f"{p}.attn.b_O"]
            if not self.attn_only:
                hidden = self.act(self._norm(x, f"{p}.ln2") @ w[f"{p}.mlp.W_in"] + w[f"{p}.mlp.b_in"])
                x = x + hidden @ w[f"{p}.mlp.W_out"] + w[f"{p}.mlp.b_out"]
        final = self.model.n_layers
        if final in vectors:
            x = x + vectors[final] if mode == "add" else vectors[final].expand_as(x)
        if streams is not None:
            streams.append(x)
        logits = self._norm(x, "ln_final") @ w["unembed.W_U"]
        if "unembed.b_U" in w:
            logits = logits + w["unembed.b_U"]
        return (logits, x) if return_resid else logits
