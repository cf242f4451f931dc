"""One surface over TransformerLens 4.x ``TransformerBridge`` and 3.x ``HookedTransformer``.

Everything in tvlens talks to a :class:`HookedModel`. It wraps a TransformerLens model and
gives the rest of the library:

* shape facts (``n_layers``, ``n_heads``, ``d_model``, ``d_head``, ``d_vocab``);
* canonical hook names (``blocks.{l}.hook_resid_pre``, ``blocks.{l}.attn.hook_z``…), which
  resolve on both lines (on 4.x they are aliases of the bridge's own names);
* the weights in TransformerLens layout (``W_E, W_U, W_V, W_O, b_O``) and the OV circuit of
  a head as a ``FactoredMatrix``;
* per-head outputs ``a^l_{t,k} = z^l_{t,k} W_O[l,k]`` computed from ``hook_z`` (a 4.x native
  model has no ``hook_result``);
* ``forward`` from tokens or from input vectors (regression read-in), and a forward that
  starts at layer ``l`` from a given residual stream;
* :meth:`HookedModel.hooks`, the **single** place where tvlens attaches functions to
  TransformerLens ``HookPoint``s and removes exactly those again (``inject`` and every later
  intervention are built on it).

The wrapped model is frozen (``requires_grad=False``) and in eval mode: tvlens analyses a
model, it does not change it. Training code opts in with :meth:`HookedModel.trainable_parameters`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from tvlens.models.capabilities import Capabilities, is_bridge, read_capabilities
from tvlens.models.config import ModelConfig
from tvlens.models.norm import apply_norm
from tvlens.models.pretrained import boot_hf, boot_pretrained
from tvlens.models.tl_version import transformer_lens_line
from tvlens.models.weights import clone_state, state_hash, tl_to_native_bridge

HookFn = Callable[[Tensor, Any], Tensor | None]
"""A TransformerLens hook function: ``fn(activation, hook) -> new activation or None``."""

#: Short names of the residual-stream hook points of a block, in the order the stream meets them.
BLOCK_HOOKS = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")


def _build_tl_model(config: ModelConfig, backend: str, dtype: torch.dtype) -> nn.Module:
    fields = config.tl_fields()
    if backend == "bridge":
        from transformer_lens.config import TransformerBridgeConfig
        from transformer_lens.model_bridge import TransformerBridge

        return TransformerBridge.boot_native(
            TransformerBridgeConfig(**fields, device="cpu", dtype=dtype), tokenizer=None, dtype=dtype
        )
    if backend == "hooked_transformer":
        with warnings.catch_warnings():
            # 3.9 warns that HookedTransformer goes away in 4.0: that is why the bridge path exists.
            warnings.simplefilter("ignore", DeprecationWarning)
            from transformer_lens import HookedTransformer, HookedTransformerConfig

            return HookedTransformer(HookedTransformerConfig(**fields, device="cpu", dtype=dtype))
    raise ValueError(f"backend={backend!r}: expected 'auto', 'bridge' or 'hooked_transformer'")


class _Recorded(Exception):
    """Raised by :meth:`HookedModel.activations` once every requested activation is recorded (stops the forward)."""


class HookedModel(nn.Module):
    """A TransformerLens model seen through one API, whichever TL line is installed.

    Args:
        model: a TL 4.x ``TransformerBridge`` or a TL 3.x ``HookedTransformer``.
        config: the tvlens :class:`ModelConfig` it was built from (``None`` for models
            loaded from elsewhere, e.g. Hugging Face).
        read_in: for regression models, the linear map ``R^d_input → R^d_model`` that replaces
            the token embedding.
        tokenizer: optional tokenizer, kept for text tasks.
        freeze: set ``requires_grad=False`` and eval mode on the wrapped model (default). A
            model wrapped on the fly by :func:`tvlens.inject` is left as the caller had it.
    """

    def __init__(
        self,
        model: nn.Module,
        config: ModelConfig | None = None,
        read_in: nn.Linear | None = None,
        tokenizer: Any = None,
        freeze: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.read_in = read_in
        self.tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        self.is_bridge = is_bridge(model)
        self._attention_mask: Tensor | None = None
        self._capabilities: Capabilities | None = None
        if freeze:
            self.requires_grad_(False)
            self.eval()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: ModelConfig, backend: str = "auto", dtype: torch.dtype = torch.float32) -> HookedModel:
        """Build a randomly initialised model (seeded by ``config.seed``).

        Args:
            config: the architecture.
            backend: ``"bridge"`` (TL 4.x ``TransformerBridge.boot_native``),
                ``"hooked_transformer"`` (TL 3.x) or ``"auto"`` (the installed line's own model).
            dtype: parameter dtype (``float64`` for exact comparisons).
        """
        if backend == "auto":
            backend = "bridge" if transformer_lens_line() >= 4 else "hooked_transformer"
        model = _build_tl_model(config, backend, dtype)
        read_in = None
        if config.d_input is not None:
            gen = torch.Generator().manual_seed(config.seed + 1)
            read_in = nn.Linear(config.d_input, config.d_model, dtype=dtype)
            with torch.no_grad():
                bound = config.d_input**-0.5
                read_in.weight.copy_(torch.empty_like(read_in.weight).uniform_(-bound, bound, generator=gen))
                read_in.bias.zero_()
        return cls(model, config=config, read_in=read_in)

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, dtype: torch.dtype = torch.float32, device: str | None = None,
                        **kwargs: Any) -> HookedModel:
        """A Hugging Face causal LM through TransformerLens (see :func:`tvlens.models.pretrained.boot_pretrained`)."""
        model, tokenizer = boot_pretrained(name_or_path, dtype=dtype, device=device, **kwargs)
        return cls(model, tokenizer=tokenizer)

    @classmethod
    def from_hf(cls, model: Any, tokenizer: Any, *, dtype: torch.dtype | None = None, copy: bool = True) -> HookedModel:
        """An already loaded ``transformers`` model and its tokenizer (see :func:`tvlens.models.pretrained.boot_hf`).

        The caller's model is left intact (a copy is wrapped) unless ``copy=False``."""
        return cls(boot_hf(model, tokenizer, dtype=dtype, copy=copy), tokenizer=tokenizer)

    # ------------------------------------------------------------------ shape facts
    @property
    def cfg(self) -> Any:
        """The wrapped model's TransformerLens config."""
        return self.model.cfg

    @property
    def n_layers(self) -> int:
        return int(self.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.cfg.n_heads)

    @property
    def d_model(self) -> int:
        return int(self.cfg.d_model)

    @property
    def d_head(self) -> int:
        return int(self.cfg.d_head)

    @property
    def d_vocab(self) -> int:
        return int(self.cfg.d_vocab)

    @property
    def d_input(self) -> int | None:
        """Width of real-valued inputs (regression models), ``None`` for token models."""
        return None if self.read_in is None else self.read_in.in_features

    @property
    def dtype(self) -> torch.dtype:
        return self.W_E.dtype

    @property
    def device(self) -> torch.device:
        return self.W_E.device

    @property
    def capabilities(self) -> Capabilities:
        """The architecture's facts (norms, rotary, grouped K/V heads, gated/parallel blocks, soft caps …)
        and whether the query engine's cached path reproduces it; read once."""
        if self._capabilities is None:
            self._capabilities = read_capabilities(self.model)
        return self._capabilities

    @property
    def line(self) -> int:
        """TransformerLens line of the wrapped model: 4 for a bridge, 3 for a ``HookedTransformer``."""
        return 4 if self.is_bridge else 3

    # ------------------------------------------------------------------ hook names
    def hook_name(self, layer: int, hook: str = "resid_pre") -> str:
        """Canonical TransformerLens hook name, e.g. ``hook_name(2, "resid_pre")`` → ``blocks.2.hook_resid_pre``.

        Args:
            layer: block index, ``0 <= layer < n_layers`` (negative counts from the end).
            hook: one of :data:`BLOCK_HOOKS`, or an attention hook ``"attn.hook_z"``-style suffix.
        """
        layer = self.check_layer(layer, "layer")
        if hook in BLOCK_HOOKS:
            return f"blocks.{layer}.hook_{hook}"
        if hook.startswith(("attn.", "mlp.", "ln1.", "ln2.", "hook_")):
            return f"blocks.{layer}.{hook}"
        raise ValueError(f"hook={hook!r}: expected one of {BLOCK_HOOKS} or a block-relative name like 'attn.hook_z'")

    def check_layer(self, layer: int, argument: str = "layer") -> int:
        """Validate a block index and return it non-negative (``-1`` is the last block)."""
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise TypeError(f"{argument}={layer!r}: expected an int")
        if not -self.n_layers <= layer < self.n_layers:
            raise ValueError(
                f"{argument}={layer} is out of range for a model with n_layers={self.n_layers}; "
                f"expected {-self.n_layers} <= {argument} < {self.n_layers}"
            )
        return layer % self.n_layers

    def hook_point(self, name: str) -> nn.Module:
        """The TransformerLens ``HookPoint`` named ``name`` (legacy names resolve on 4.x)."""
        hook_dict = self.model.hook_dict
        if name not in hook_dict:
            close = sorted(k for k in hook_dict if k.split(".")[-1] == name.split(".")[-1])[:5]
            raise KeyError(f"hook point {name!r} does not exist on this model; similar names: {close}")
        return hook_dict[name]

    def hook_points(self) -> Iterator[nn.Module]:
        """Every TransformerLens ``HookPoint`` of the wrapped model (each once)."""
        seen: set[int] = set()
        for module in self.model.modules():
            if type(module).__name__ == "HookPoint" and id(module) not in seen:
                seen.add(id(module))
                yield module

    def attached_hooks(self) -> int:
        """Number of hook functions attached to any hook point, counted at the PyTorch level.

        Counts what TransformerLens' ``add_hook`` registers as well as raw ``register_forward_hook``
        calls, so ``0`` means nothing at all will run during a forward.
        """
        return sum(len(hp._forward_hooks) + len(hp._backward_hooks) for hp in self.hook_points())

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[str, HookFn]] = ()) -> Iterator[HookedModel]:
        """Attach TransformerLens hook functions for the duration of a ``with`` block.

        This is the one hook path of tvlens. Each function is added with the hook point's
        own ``add_hook``; on exit — normal, exception or ``KeyboardInterrupt`` — exactly the
        handles added here are removed, so hooks a user attached beforehand survive.

        Args:
            fwd_hooks: ``(hook_name, fn)`` pairs; ``fn(activation, hook)`` returns the new
                activation (or ``None`` to leave it).
        """
        attached: list[tuple[nn.Module, Any]] = []
        try:
            for name, fn in fwd_hooks:
                hook_point = self.hook_point(name)
                hook_point.add_hook(fn, dir="fwd")
                # 3.x add_hook returns None; both lines append the new handle last.
                attached.append((hook_point, hook_point.fwd_hooks[-1]))
            yield self
        finally:
            for hook_point, handle in reversed(attached):
                handle.hook.remove()
                hook_point.fwd_hooks = [h for h in hook_point.fwd_hooks if h is not handle]

    # ------------------------------------------------------------------ weights
    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        return self.model.W_E

    @property
    def W_pos(self) -> Float[Tensor, "n_ctx d_model"]:
        return self.model.W_pos

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.model.W_U

    @property
    def W_V(self) -> Float[Tensor, "n_layers n_heads d_model d_head"]:
        """Value weights of every query head. Under grouped-query attention (fewer key/value heads)
        query head ``h`` reads its group's value head ``h // (n_heads / n_key_value_heads)``; a 4.x
        bridge stores one matrix per key/value head, which is expanded here."""
        weight = self.model.W_V
        if weight.shape[1] != self.n_heads:
            weight = weight.repeat_interleave(self.n_heads // weight.shape[1], dim=1)
        return weight

    @property
    def W_O(self) -> Float[Tensor, "n_layers n_heads d_head d_model"]:
        return self.model.W_O

    @property
    def b_O(self) -> Float[Tensor, "n_layers d_model"]:
        return self.model.b_O

    def OV(self, layer: int, head: int | None = None) -> Any:
        """The OV circuit ``W_V[l,h] W_O[l,h]`` of one head (or all heads of a layer) as a TL ``FactoredMatrix``.

        A vector ``x`` in the residual stream (a row) is carried by head ``h`` to
        ``x W_V[l,h] W_O[l,h]`` (times its attention weight), which is ``x @ model.OV(l, h)``.
        """
        from transformer_lens import FactoredMatrix

        layer = self.check_layer(layer)
        if head is None:
            return FactoredMatrix(self.W_V[layer], self.W_O[layer])
        if not 0 <= head < self.n_heads:
            raise ValueError(f"head={head} is out of range; expected 0 <= head < {self.n_heads}")
        return FactoredMatrix(self.W_V[layer, head], self.W_O[layer, head])

    def head_outputs(
        self, z: Float[Tensor, "batch pos n_heads d_head"], layer: int
    ) -> Float[Tensor, "batch pos n_heads d_model"]:
        """Per-head outputs projected into the stream: ``a^l_{t,k} = z^l_{t,k} W_O[l,k]`` (without ``b_O``).

        ``Σ_k a^l_{t,k} + b_O[l]`` equals ``blocks.{l}.hook_attn_out``.
        """
        layer = self.check_layer(layer)
        return torch.einsum("bphk,hkd->bphd", z, self.W_O[layer])

    def norm_parameters(self, name: str) -> tuple[Tensor | None, Tensor | None]:
        """Scale and bias of the normalisation ``name`` (``"blocks.{l}.ln1"``, ``"ln_final"`` …) as the model
        applies them (Gemma's ``1 + w`` included); ``None`` where it has none."""
        state = self.tl_state_dict(clone=False)
        weight, bias = state.get(f"{name}.w"), state.get(f"{name}.b")
        if weight is not None:
            weight = weight + self.capabilities.norm_offset
        return weight, bias

    def ln_final(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The final normalisation applied to ``x`` (what ``W_U`` reads)."""
        caps = self.capabilities
        return apply_norm(x, caps.final_norm, caps.eps, *self.norm_parameters("ln_final"))

    def hf_module(self, name: str) -> nn.Module:
        """A submodule of the Hugging Face model a 4.x bridge wraps (``"model.layers.0.post_attention_layernorm"``)."""
        original = getattr(self.model, "original_model", None)
        if original is None:
            raise ValueError(f"hf_module({name!r}): this model does not wrap a Hugging Face model")
        return original.get_submodule(name)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters a trainer updates, the same set on both TL lines.

        tvlens models have no unembedding bias (the 4.x native architecture has none), so a
        3.x ``b_U`` is left out and stays zero.
        """
        params = [p for n, p in self.model.named_parameters() if not n.endswith("b_U")]
        if self.read_in is not None:
            params += list(self.read_in.parameters())
        return params

    def tl_state_dict(self, clone: bool = True) -> dict[str, Tensor]:
        """Weights in TransformerLens layout (3.x ``HookedTransformer`` key names), plus ``read_in.*``.

        Args:
            clone: return detached copies (safe to keep, save or load elsewhere). ``False`` returns
                detached tensors that may share storage with the model's parameters: for code that
                only reads the weights while the model is unchanged (the cached paths, the OV and
                dynamics analyses), so a large model's weights are not held twice.
        """
        if self.is_bridge:
            state = dict(self.model.tl_parameters())
        else:
            state = dict(self.model.named_parameters())
        if self.read_in is not None:
            state.update({f"read_in.{k}": v for k, v in self.read_in.state_dict().items()})
        return clone_state(state) if clone else {k: v.detach() for k, v in state.items()}

    def load_tl_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load weights in TransformerLens layout (as written by :meth:`tl_state_dict`), on either line."""
        state = dict(state)
        read_in = {k.removeprefix("read_in."): state.pop(k) for k in list(state) if k.startswith("read_in.")}
        if bool(read_in) != (self.read_in is not None):
            raise ValueError(
                "load_tl_state_dict: read-in weights "
                f"{'present' if read_in else 'missing'} but the model "
                f"{'has no' if self.read_in is None else 'has a'} read-in"
            )
        if self.read_in is not None:
            self.read_in.load_state_dict(read_in)
        if self.is_bridge:
            raw = tl_to_native_bridge(state, self.n_layers)
            if "unembed.bias" not in raw:
                raw["unembed.bias"] = torch.zeros(self.d_vocab, dtype=self.dtype)
            self.model.load_state_dict(raw, strict=True)
        else:
            if "unembed.b_U" not in state:
                state["unembed.b_U"] = torch.zeros(self.d_vocab, dtype=self.dtype)
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            params = {n for n, _ in self.model.named_parameters()}
            missing = [k for k in missing if k in params]
            if missing or unexpected:
                raise ValueError(f"load_tl_state_dict: missing {missing}, unexpected {unexpected}")

    def fingerprint(self) -> dict[str, Any]:
        """Architecture facts plus a SHA-256 of the weights: identifies the model a result was made on.

        Hashed once and reused until a weight changes (each parameter's and buffer's identity, storage
        and in-place version counter are the memo's key: read without building a state dict, which
        on a bridge costs ~10 ms), so checking a vector's provenance before every injection costs
        nothing."""
        key = tuple((id(t), t.data_ptr(), t._version) for t in (*self.model.parameters(), *self.model.buffers()))
        memo = self.__dict__.get("_fingerprint_memo")
        if memo is not None and memo[0] == key:
            return dict(memo[1])
        value = self._compute_fingerprint()
        self.__dict__["_fingerprint_memo"] = (key, value)
        return dict(value)

    def _compute_fingerprint(self) -> dict[str, Any]:
        return {
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_model": self.d_model,
            "d_head": self.d_head,
            "d_vocab": self.d_vocab,
            "d_input": self.d_input,
            "weights_sha256": state_hash(self.tl_state_dict()),
        }

    # ------------------------------------------------------------------ forward
    @property
    def current_attention_mask(self) -> Tensor | None:
        """The attention mask of the forward now running (``None`` outside a forward or when unpadded)."""
        return self._attention_mask

    @contextlib.contextmanager
    def _forward_state(self, attention_mask: Tensor | None) -> Iterator[None]:
        previous, self._attention_mask = self._attention_mask, attention_mask
        try:
            yield
        finally:
            self._attention_mask = previous

    def position_ids(
        self, batch: int, pos: int, attention_mask: Int[Tensor, "batch pos"] | None = None
    ) -> Int[Tensor, "batch pos"]:
        """Positions of the tokens, counted from each example's first real token (left padding aware)."""
        if attention_mask is None:
            return torch.arange(pos, device=self.device).expand(batch, pos)
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def embed(
        self,
        inputs: Int[Tensor, "batch pos"] | Float[Tensor, "batch pos d_input"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        """The stream entering block 0: token (or read-in) embedding plus positional embedding."""
        batch, pos = inputs.shape[:2]
        # Unpadded: a slice of W_pos (its backward is deterministic; a gather with repeated indices
        # accumulates in a thread-dependent order and breaks bit-for-bit reproducible training).
        if attention_mask is None:
            pos_embed = self.W_pos[:pos].unsqueeze(0)
        else:
            pos_embed = self.W_pos[self.position_ids(batch, pos, attention_mask)]
        if inputs.is_floating_point():
            if self.read_in is None:
                raise ValueError(
                    f"inputs has floating dtype {inputs.dtype} but this model has no read-in; "
                    "pass token ids (a LongTensor [batch, pos])"
                )
            return self.read_in(inputs) + pos_embed
        self._check_token_ids(inputs)
        return self.W_E[inputs] + pos_embed

    def _check_token_ids(self, inputs: Int[Tensor, "batch pos"]) -> None:
        """Token ids outside the vocabulary are a clear error, not an ``IndexError`` deep in the embedding."""
        if inputs.numel():
            low, high = int(inputs.min()), int(inputs.max())
            if low < 0 or high >= self.d_vocab:
                raise ValueError(f"inputs holds token id {low if low < 0 else high}: expected ids in "
                                 f"[0, d_vocab={self.d_vocab}) (tokens of another vocabulary?)")

    def _check_inputs(self, inputs: Tensor, start_at_layer: int | None) -> None:
        if start_at_layer is not None:
            if not inputs.is_floating_point() or inputs.ndim != 3 or inputs.shape[-1] != self.d_model:
                raise ValueError(
                    f"inputs of shape {tuple(inputs.shape)} and dtype {inputs.dtype}: with start_at_layer "
                    f"a residual stream [batch, pos, d_model={self.d_model}] is expected"
                )
            return
        if inputs.is_floating_point():
            expected = self.d_input
            if expected is None or inputs.ndim != 3 or inputs.shape[-1] != expected:
                raise ValueError(
                    f"inputs of shape {tuple(inputs.shape)}: expected token ids [batch, pos]"
                    + (f" or vectors [batch, pos, {expected}]" if expected else "")
                )
        elif inputs.ndim != 2:
            raise ValueError(f"inputs of shape {tuple(inputs.shape)}: expected token ids [batch, pos]")
        elif self.read_in is not None:
            raise ValueError(
                f"this is a regression model (d_input={self.d_input}); inputs must be float vectors "
                f"[batch, pos, {self.d_input}], got token ids"
            )
        if not inputs.is_floating_point():
            self._check_token_ids(inputs)
        if inputs.shape[1] > self.cfg.n_ctx:
            raise ValueError(f"inputs has {inputs.shape[1]} positions; the model's n_ctx is {self.cfg.n_ctx}")

    def forward(
        self,
        inputs: Int[Tensor, "batch pos"] | Float[Tensor, "batch pos d_in"],
        *,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[tuple[str, HookFn]] = (),
        start_at_layer: int | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits of the model on ``inputs``.

        Args:
            inputs: token ids ``[batch, pos]``; input vectors ``[batch, pos, d_input]`` for a
                regression model (read-in + positional embedding); or, with ``start_at_layer``,
                the residual stream ``[batch, pos, d_model]`` entering that block.
            attention_mask: 1 for real tokens, 0 for padding (left or right padding).
            hooks: extra ``(hook_name, fn)`` pairs attached for this call only.
            start_at_layer: run blocks ``start_at_layer … L-1`` from the given stream.

        Returns:
            Logits ``[batch, pos, d_vocab]``; for a regression model ``d_vocab = 1`` and
            ``logits[..., 0]`` is the prediction (see :meth:`predict`).
        """
        self._check_inputs(inputs, start_at_layer)
        if start_at_layer is not None:
            start_at_layer = self.check_layer(start_at_layer, "start_at_layer")
        elif inputs.is_floating_point():
            inputs, start_at_layer = self.embed(inputs, attention_mask), 0
        with self._forward_state(attention_mask), self.hooks([*self._padding_guard(attention_mask), *hooks]):
            return self.model(inputs, attention_mask=attention_mask, start_at_layer=start_at_layer)

    def _padding_guard(self, attention_mask: Tensor | None) -> list[tuple[str, HookFn]]:
        """Hooks that keep padding from poisoning real tokens on a 4.x bridge over a Hugging Face model.

        In float64 the bridge's attention turns a padded query's scores (it sees no key) into NaN —
        its masking sentinel overflows to ``-inf`` — and at the next layer every real query multiplies
        that padded position's NaN value by its weight 0: the whole prompt turns NaN, forward and
        gradient. The scores are floored at ``-1e30`` before the mask (a float64-only guard): masked
        keys still get weight 0, and a padded query averages over the prompt instead; its output is
        never read."""
        if attention_mask is None or not self.is_bridge or self.dtype != torch.float64 \
                or getattr(self.model, "original_model", None) is None or bool(attention_mask.bool().all()):
            return []

        def floor(scores: Tensor, hook: Any) -> Tensor:
            return scores.clamp(min=-1e30)

        return [(self.hook_name(layer, "attn.hook_attn_scores"), floor) for layer in range(self.n_layers)]

    def run_from_layer(
        self,
        resid: Float[Tensor, "batch pos d_model"],
        layer: int,
        *,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        hooks: Sequence[tuple[str, HookFn]] = (),
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits when ``resid`` is the stream entering block ``layer`` (``blocks.{layer}.hook_resid_pre``)."""
        return self.forward(resid, attention_mask=attention_mask, hooks=hooks, start_at_layer=layer)

    def run_with_cache(
        self,
        inputs: Tensor,
        names: Sequence[str],
        *,
        attention_mask: Tensor | None = None,
        hooks: Sequence[tuple[str, HookFn]] = (),
        start_at_layer: int | None = None,
    ) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[str, Tensor]]:
        """Logits plus the activations at the named hook points (as seen after ``hooks`` ran).

        Args:
            names: canonical hook names, e.g. ``["blocks.1.hook_resid_pre", "blocks.1.attn.hook_z"]``.
        """
        return self._recording_forward(inputs, names, attention_mask, hooks, start_at_layer, stop=False)

    def _recording_forward(self, inputs: Tensor, names: Sequence[str], attention_mask: Tensor | None,
                           hooks: Sequence[tuple[str, HookFn]], start_at_layer: int | None, stop: bool
                           ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """A forward that records the activations at ``names`` (after ``hooks`` ran); with ``stop``, it ends once
        every one is recorded and returns no logits."""
        cache: dict[str, Tensor] = {}
        wanted = len(set(names))

        def make_store(key: str) -> HookFn:
            def store(act: Tensor, hook: Any) -> None:
                cache[key] = act
                if stop and len(cache) == wanted:
                    raise _Recorded

            return store

        try:
            logits = self.forward(inputs, attention_mask=attention_mask,
                                  hooks=[*hooks, *((n, make_store(n)) for n in dict.fromkeys(names))],
                                  start_at_layer=start_at_layer)
        except _Recorded:
            logits = None
        return logits, cache

    def activations(
        self,
        inputs: Tensor,
        names: Sequence[str],
        *,
        attention_mask: Tensor | None = None,
        hooks: Sequence[tuple[str, HookFn]] = (),
    ) -> dict[str, Tensor]:
        """The activations at the named hook points, as :meth:`run_with_cache` records them, from a forward that
        stops once the last of them is recorded: the blocks after it and the unembedding never run (a
        prefix cache entering the last block costs ``(L-1)/L`` of a forward and no ``[batch, pos, d_vocab]``
        logits).

        Args:
            names: canonical hook names (at least one, each once).
        """
        if not names:
            raise ValueError("names=[]: expected at least one hook name")
        _, cache = self._recording_forward(inputs, names, attention_mask, hooks, None, stop=True)
        missing = [n for n in dict.fromkeys(names) if n not in cache]
        if missing:
            raise ValueError(f"names: {missing} never ran in the forward; expected hook points of this model")
        return cache

    def final_residual(
        self,
        inputs: Tensor,
        *,
        attention_mask: Tensor | None = None,
        hooks: Sequence[tuple[str, HookFn]] = (),
        start_at_layer: int | None = None,
    ) -> tuple[Float[Tensor, "batch pos d_vocab"], Float[Tensor, "batch pos d_model"]]:
        """Logits and the stream leaving the last block (the input of ``ln_final``)."""
        name = f"blocks.{self.n_layers - 1}.hook_resid_post"
        logits, cache = self.run_with_cache(
            inputs, [name], attention_mask=attention_mask, hooks=hooks, start_at_layer=start_at_layer
        )
        return logits, cache[name]

    def predict(self, logits: Float[Tensor, "... d_vocab"]) -> Float[Tensor, ...]:
        """The scalar prediction of a regression model (its single read-out unit)."""
        if self.d_input is None:
            raise ValueError("predict() is for regression models (d_input set); this is a token model")
        return logits[..., 0]

    def __repr__(self) -> str:
        kind = "TransformerBridge (TL 4.x)" if self.is_bridge else "HookedTransformer (TL 3.x)"
        return (
            f"HookedModel({kind}, n_layers={self.n_layers}, n_heads={self.n_heads}, d_model={self.d_model}, "
            f"d_head={self.d_head}, d_vocab={self.d_vocab}, d_input={self.d_input})"
        )
