"""Tiny Hugging Face models built offline: a tokenizer trained here on the built-in word pairs and
GPT-2 / GPT-NeoX / Llama configs with a few layers, saved with ``save_pretrained`` to a directory."""

from __future__ import annotations

from pathlib import Path

import torch

from tvlens.tasks.text import TEMPLATES, builtin_tasks

ARCHITECTURES = ("gpt2", "neox", "llama")


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


def build(architecture: str, directory: Path, tokenizer, n_layers: int = 2, d_model: int = 64, seed: int = 0) -> Path:
    """Save a randomly initialised tiny model of ``architecture`` and the tokenizer to ``directory``.

    (Name the directory without the architecture's name: TL 3.9 infers e.g. Llama from a name
    containing "llama" and then ignores the directory's config.)"""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
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
        raise ValueError(f"architecture={architecture!r}: expected one of {ARCHITECTURES}")
    torch.manual_seed(seed)
    model = cls(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
