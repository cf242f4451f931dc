"""Tiny random models of two Hugging Face families for the benchmarks, built offline.

A Llama with grouped-query attention (4 layers, d_model 128, 4 query heads over 2 key/value heads)
and a GPT-NeoX (4 layers, d_model 128, parallel attention + MLP, quarter rotary), both wrapped by
TransformerLens like any pretrained model, with a byte-level BPE tokenizer trained here on the
built-in word pairs; prompts are 16-shot word-pair prompts (left-padded, 60+ tokens).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.hf_models import hf_model, train_tokenizer  # noqa: E402
from tvlens.models import HookedModel  # noqa: E402
from tvlens.tasks.text import TextTasks  # noqa: E402

FAMILIES = {"llama-gqa": "llama_gqa", "neox": "neox"}


def family(name: str) -> tuple[HookedModel, TextTasks]:
    """The model of family ``name`` (``"llama-gqa"`` or ``"neox"``) and a word-pair task on its tokenizer."""
    tokenizer = train_tokenizer()
    model = HookedModel.from_hf(hf_model(FAMILIES[name], tokenizer, n_layers=4, d_model=128), tokenizer)
    return model, TextTasks(("antonyms", "country_capital", "english_french"), tokenizer=tokenizer)
