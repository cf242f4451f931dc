"""The papers' reference procedures, re-stated for these tests on a plain Hugging Face GPT-2 forward.

Written for tvlens from the papers' descriptions and their code's behaviour (Hendel et al.'s
``icl_task_vectors``, Todd et al.'s ``function_vectors``), not copied: one prompt at a time, no
padding, no TransformerLens, PyTorch hooks only — so that every step tvlens batches, pads, caches or
hooks differently is checked against the plainest possible computation.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

#: The papers' prompt formats as their code writes them: (one demonstration, the query).
#: Hendel: ``example:{input}->{output}`` joined by ``\n``; Todd: prefixes ``Q:``/``A:`` with a space
#: before input and output, separators ``\n`` and ``\n\n``.
FORMATS = {
    "hendel": ("example:{x}->{y}\n", "example:{x}->"),
    "todd": ("Q: {x}\nA: {y}\n\n", "Q: {x}\nA:"),
}


def prompt_text(template: str, pairs) -> str:
    """Demonstrations ``pairs[:-1]`` and the query ``pairs[-1]``, formatted as the paper's code does."""
    demo, query = FORMATS[template]
    return "".join(demo.format(x=x, y=y) for x, y in pairs[:-1]) + query.format(x=pairs[-1][0])


def encode(tokenizer, text: str) -> torch.Tensor:
    """BOS followed by the whole text's tokens, one prompt ``[1, pos]``."""
    return torch.tensor([[tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False).input_ids])


def block_outputs(hf, ids: torch.Tensor) -> torch.Tensor:
    """Hendel's hidden states: the output of every block at the last token ``[n_layers, d]`` (Hendel's
    code drops ``hidden_states[0]``, the embeddings; forward hooks read the blocks' raw outputs)."""
    captured = []

    def hook(module, inputs, output):
        captured.append((output[0] if isinstance(output, tuple) else output)[0, -1])

    _run_with(hf, ids, [block.register_forward_hook(hook) for block in hf.transformer.h])
    return torch.stack(captured)


def _run_with(hf, ids: torch.Tensor, handles) -> None:
    """One forward with the given hooks attached; they are removed afterwards, always."""
    try:
        with torch.no_grad():
            hf(ids)
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def replace_block_output(hf, layer: int, vector: torch.Tensor):
    """Hendel's HiddenInjector: the output of block ``layer`` at the last token is replaced by ``vector``."""

    def hook(module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[:, -1] = vector
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = hf.transformer.h[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def add_to_block_input(hf, layer: int, vector: torch.Tensor):
    """A vector added to the stream entering block ``layer`` at the last token (a forward pre-hook)."""

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        hidden = hidden.clone()
        hidden[:, -1] += vector
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    handle = hf.transformer.h[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def head_inputs(hf, ids: torch.Tensor) -> torch.Tensor:
    """Todd's mean-activation input: every head's slot of the attention output projection's input
    (``c_proj``) at the last token ``[n_layers, n_heads, d_head]``."""
    n_heads = hf.config.n_head
    captured = []
    _run_with(hf, ids, [block.attn.c_proj.register_forward_pre_hook(lambda m, args: captured.append(args[0][0, -1]))
                        for block in hf.transformer.h])
    return torch.stack([c.reshape(n_heads, -1) for c in captured])


@contextmanager
def patch_head(hf, layer: int, head: int, value: torch.Tensor):
    """Todd's head patch: head ``head``'s slot of ``c_proj``'s input at the last token set to ``value``."""
    d_head = hf.config.n_embd // hf.config.n_head

    def hook(module, args):
        x = args[0].clone()
        x[:, -1, head * d_head:(head + 1) * d_head] = value
        return (x,)

    handle = hf.transformer.h[layer].attn.c_proj.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def last_logits(hf, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(ids).logits[0, -1]


def todd_function_vector(hf, mean_z: torch.Tensor, heads) -> torch.Tensor:
    """Todd's FV: for each head, the output projection (with its bias) applied to a vector holding only
    that head's mean activation; summed."""
    d_model, n_heads = hf.config.n_embd, hf.config.n_head
    d_head = d_model // n_heads
    fv = torch.zeros(d_model, dtype=mean_z.dtype)
    for layer, head in heads:
        x = torch.zeros(1, 1, d_model, dtype=mean_z.dtype)
        x[0, 0, head * d_head:(head + 1) * d_head] = mean_z[layer, head]
        with torch.no_grad():
            fv += hf.transformer.h[layer].attn.c_proj(x)[0, 0]
    return fv
