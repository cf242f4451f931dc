"""Tiny Hugging Face models built offline: a tokenizer trained here on the built-in word pairs and
configs of every architecture family tvlens' cached path covers (GPT-2, GPT-NeoX, Llama with grouped
K/V heads, Mistral, Qwen2, Gemma, Gemma-2, GPT-J, Phi) with a few layers, saved with
``save_pretrained`` to a directory or built in memory."""

from __future__ import annotations

from pathlib import Path

import torch

from tvlens.tasks.text import TEMPLATES, builtin_tasks

ARCHITECTURES = ("gpt2", "neox", "llama")
"""The families the whole method suite runs on in ``tests/models/test_pretrained.py``."""

FAMILIES = ("gpt2", "neox", "llama_gqa", "mistral", "qwen2", "gemma", "gemma2", "gptj", "phi")
"""Every family the query engine's cached path is checked on (``tests/models/test_engine.py``)."""


def train_tokenizer():
    """A byte-level BPE tokenizer trained on the built-in word-pair data and the templates."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for task in builtin_tasks().values():
        for x, y in task.pairs:
            corpus += [TEMPLATES["arrow"].format(x=x, y=y), TEMPLATES["todd"].format(x=x, y=y)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=1200, special_tokens=["<unk>", "<pad>", "<bos>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<bos>")


def train_sentencepiece_tokenizer():
    """A SentencePiece-style (Llama) tokenizer trained here: ``▁`` marks a word's leading space, BOS ``<s>``."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import PreTrainedTokenizerFast

    corpus = []
    for task in builtin_tasks().values():
        for x, y in task.pairs:
            corpus += [template.format(x=x, y=y) for template in TEMPLATES.values()]
    tok = SentencePieceBPETokenizer()
    tok.train_from_iterator(corpus, vocab_size=900, special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok._tokenizer, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>")


def hf_model(architecture: str, tokenizer, n_layers: int = 2, d_model: int = 64, seed: int = 0,
             d_mlp: int | None = None):
    """A randomly initialised tiny ``transformers`` model of ``architecture`` (one of :data:`FAMILIES`).

    Norm weights and biases are perturbed away from their 1/0 initialisation so a wrong offset or a
    dropped bias shows in the logits."""
    import transformers as T

    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    heads = 4
    shape = dict(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=heads,
                 intermediate_size=d_mlp or 2 * d_model, max_position_embeddings=256)
    if architecture == "llama_gqa":
        config, cls = T.LlamaConfig(**shape, num_key_value_heads=2, attention_bias=True, **common), T.LlamaForCausalLM
    elif architecture == "mistral":
        config, cls = T.MistralConfig(**shape, num_key_value_heads=2, sliding_window=24, **common), \
            T.MistralForCausalLM
    elif architecture == "qwen2":
        config, cls = T.Qwen2Config(**shape, num_key_value_heads=2, **common), T.Qwen2ForCausalLM
    elif architecture == "gemma":
        config, cls = T.GemmaConfig(**shape, num_key_value_heads=1, head_dim=d_model // heads, **common), \
            T.GemmaForCausalLM
    elif architecture == "gemma2":
        config, cls = T.Gemma2Config(**shape, num_key_value_heads=2, head_dim=d_model // heads, sliding_window=16,
                                     query_pre_attn_scalar=24, attn_logit_softcapping=5.0,
                                     final_logit_softcapping=3.0, **common), T.Gemma2ForCausalLM
    elif architecture == "gptj":
        config, cls = T.GPTJConfig(n_layer=n_layers, n_embd=d_model, n_head=heads, n_positions=256,
                                   rotary_dim=(d_model // heads) // 2, **common), T.GPTJForCausalLM
    elif architecture == "phi":
        config, cls = T.PhiConfig(**shape, **common), T.PhiForCausalLM
    else:
        return _classic(architecture, tokenizer, n_layers, d_model, seed, common)
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or "ln" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def _classic(architecture: str, tokenizer, n_layers: int, d_model: int, seed: int, common: dict):
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    if architecture == "gpt2":
        # n_ctx: TL 3.9's converter still reads this old GPT-2 config field
        config, cls = GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=4, n_positions=256, n_ctx=256, **common), \
            GPT2LMHeadModel
    elif architecture == "neox":
        config, cls = GPTNeoXConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=4,
                                    intermediate_size=4 * d_model, max_position_embeddings=256, **common), \
            GPTNeoXForCausalLM
    elif architecture == "llama":
        config, cls = LlamaConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=4,
                                  num_key_value_heads=4, intermediate_size=2 * d_model, max_position_embeddings=256,
                                  **common), LlamaForCausalLM
    else:
        raise ValueError(f"architecture={architecture!r}: expected one of {FAMILIES}")
    torch.manual_seed(seed)
    return cls(config)


def build(architecture: str, directory: Path, tokenizer, n_layers: int = 2, d_model: int = 64, seed: int = 0) -> Path:
    """Save a randomly initialised tiny model of ``architecture`` and the tokenizer to ``directory``.

    (Name the directory without the architecture's name: TL 3.9 infers e.g. Llama from a name
    containing "llama" and then ignores the directory's config.)"""
    model = _classic(architecture, tokenizer, n_layers, d_model, seed, dict(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)) if architecture in ARCHITECTURES else \
        hf_model(architecture, tokenizer, n_layers, d_model, seed)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
