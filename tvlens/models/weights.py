"""Weight layouts: TransformerLens' canonical layout and the 4.x native bridge's raw layout.

tvlens stores and exchanges weights in the **TransformerLens layout** — the key names and
shapes of a 3.x ``HookedTransformer`` state dict (``blocks.{l}.attn.W_Q  [H, d, d_head]``,
``W_O [H, d_head, d]``, ``mlp.W_in [d, d_mlp]``…), which a 4.x bridge also produces with
``tl_parameters()``. A 3.x model loads it directly. A 4.x native bridge keeps
``nn.Linear``-style raw weights (``blocks.{l}.attn.q.weight [H·d_head, d]``); this module
converts the TL layout to that one.

With ``x`` a row vector, ``nn.Linear`` computes ``x Wᵀ``; TL computes ``x W_Q[h]`` per head and
``Σ_h z_h W_O[h]``. Hence ``q.weight[h·dh + j, i] = W_Q[h, i, j]`` and
``o.weight = reshape(W_O, [H·dh, d])ᵀ``.
"""

from __future__ import annotations

import torch
from torch import Tensor

_LN_SUFFIX = {"w": "weight", "b": "bias"}


def tl_to_native_bridge(tl: dict[str, Tensor], n_layers: int) -> dict[str, Tensor]:
    """Convert a TL-layout state dict into a 4.x native ``TransformerBridge`` state dict.

    Args:
        tl: parameters in TransformerLens layout (as from ``tl_parameters()`` or a 3.x model).
        n_layers: number of blocks.

    Returns:
        A dict with the bridge's raw keys (``embed.weight``, ``blocks.0.attn.q.weight``, …).
    """
    out: dict[str, Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> Tensor:
        used.add(key)
        return tl[key]

    out["embed.weight"] = take("embed.W_E")
    if "pos_embed.W_pos" in tl:
        out["pos_embed.weight"] = take("pos_embed.W_pos")
    for layer in range(n_layers):
        p = f"blocks.{layer}"
        for name in ("q", "k", "v"):
            w = take(f"{p}.attn.W_{name.upper()}")  # [H, d, dh]
            heads, d_model, d_head = w.shape
            out[f"{p}.attn.{name}.weight"] = w.permute(0, 2, 1).reshape(heads * d_head, d_model)
            out[f"{p}.attn.{name}.bias"] = take(f"{p}.attn.b_{name.upper()}").reshape(heads * d_head)
        w_o = take(f"{p}.attn.W_O")  # [H, dh, d]
        out[f"{p}.attn.o.weight"] = w_o.reshape(-1, w_o.shape[-1]).T
        out[f"{p}.attn.o.bias"] = take(f"{p}.attn.b_O")
        if f"{p}.mlp.W_in" in tl:
            out[f"{p}.mlp.in.weight"] = take(f"{p}.mlp.W_in").T
            out[f"{p}.mlp.in.bias"] = take(f"{p}.mlp.b_in")
            out[f"{p}.mlp.out.weight"] = take(f"{p}.mlp.W_out").T
            out[f"{p}.mlp.out.bias"] = take(f"{p}.mlp.b_out")
        for ln in ("ln1", "ln2"):
            for tl_suffix, raw_suffix in _LN_SUFFIX.items():
                key = f"{p}.{ln}.{tl_suffix}"
                if key in tl:
                    out[f"{p}.{ln}.{raw_suffix}"] = take(key)
    for tl_suffix, raw_suffix in _LN_SUFFIX.items():
        key = f"ln_final.{tl_suffix}"
        if key in tl:
            out[f"ln_final.{raw_suffix}"] = take(key)
    out["unembed.weight"] = take("unembed.W_U").T
    if "unembed.b_U" in tl:
        out["unembed.bias"] = take("unembed.b_U")
    left = sorted(set(tl) - used)
    if left:
        raise ValueError(f"tl_to_native_bridge: keys with no native counterpart: {left}")
    return {k: v.detach().clone() for k, v in out.items()}


def clone_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous copies (what safetensors and ``load_state_dict`` want)."""
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def state_hash(state: dict[str, Tensor]) -> str:
    """SHA-256 over the sorted keys and the raw bytes of every tensor (a weights fingerprint)."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").flatten().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
