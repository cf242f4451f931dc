"""Whole answers: a generated string read and scored against the answer, as Todd et al. 2024 score them.

A word-pair answer may span several tokens (``" Paris"`` is one token, ``" Ouagadougou"`` several), so the
first token's accuracy says only whether the answer *starts* right. Todd et al. also generate the answer and
score the string, in three steps that this module writes once:

1. **read** the answer off the generation (:func:`read_answer`): the first run of word characters, dots and
   spaces (their ``([\\w. ]+)[\\nQ]*``), so ``" Paris\\nQ: ..."`` reads ``" Paris"``;
2. **normalise** it and the true answer (:func:`normalize_answer`, the SQuAD normalisation): lower case, no
   punctuation, no articles (``a``, ``an``, ``the``), single spaces;
3. **score**: exact match (:func:`exact_match`, the normalised strings equal) and token F1 (:func:`token_f1`,
   the harmonic mean of precision and recall of the normalised words, counted with multiplicity).
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ANSWER = re.compile(r"([\w. ]+)[\nQ]*")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def read_answer(generated: str) -> str:
    """The answer a generation gives: its first run of word characters, dots and spaces (``""`` if none)."""
    found = _ANSWER.findall(generated)
    return found[0] if found else ""


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and articles removed, whitespace collapsed to single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answer: str) -> float:
    """``1.0`` when the normalised prediction is the normalised answer, else ``0.0``."""
    return float(normalize_answer(prediction) == normalize_answer(answer))


def token_f1(prediction: str, answer: str) -> float:
    """F1 of the normalised words: ``2PR / (P + R)`` with ``P`` (``R``) the share of the prediction's (answer's)
    words that the other holds, counted with multiplicity; ``1.0`` when both are empty, ``0.0`` when one is."""
    predicted, true = normalize_answer(prediction).split(), normalize_answer(answer).split()
    if not predicted or not true:
        return float(predicted == true)
    common = sum((Counter(predicted) & Counter(true)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(true)
    return 2 * precision * recall / (precision + recall)


__all__ = ["exact_match", "normalize_answer", "read_answer", "token_f1"]
