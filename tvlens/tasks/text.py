"""Text ICL tasks for real language models: word pairs shown through a prompt template.

A word-pair task maps an input word to an answer (``hot → cold``). A prompt shows ``n_shots``
pairs through a **template** and ends with the query's input::

    Hendel (default)  "{x} -> {y}\\n"         hot -> cold\\nbig -> small\\nup ->
    Todd              "Q: {x}\\nA: {y}\\n\\n"   Q: hot\\nA: cold\\n\\nQ: up\\nA:

or any template string with ``{x}`` and ``{y}``. The target is the **first token** of the answer
with the model's leading-space convention: when the template puts a space before ``{y}``, the
space belongs to the answer (``" cold"``), so the prompt ends at ``->`` and the target is the
first token of ``" cold"``. Each demonstration is tokenized as two segments — the part up to the
answer, and the answer with the rest of its line — so every answer position is exact.

Prompts of one batch have different lengths: they are **left-padded** (the query is the last
column, as the last-position methods expect) with an attention mask. The label set of a task is
the first tokens of all its answers (for label-constrained accuracy).

Nine built-in tasks ship as small JSON files in ``tvlens/data/word_pairs`` (CC0, written for
tvlens): :func:`builtin_tasks`. Add your own from a list of pairs (:class:`WordPairs`) or a CSV
(:func:`word_pairs_from_csv`).
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from tvlens.tasks.base import ICLBatch, Task

DATA_DIR = Path(__file__).parents[1] / "data" / "word_pairs"
TEMPLATES = {"hendel": "{x} -> {y}\n", "todd": "Q: {x}\nA: {y}\n\n"}


@dataclass(frozen=True)
class WordPairs:
    """One word-pair task: a name and its ``(input, answer)`` pairs."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    description: str = ""

    def __post_init__(self) -> None:
        pairs = tuple((str(x), str(y)) for x, y in self.pairs)
        if len(pairs) < 2:
            raise ValueError(f"WordPairs {self.name!r}: expected at least 2 pairs, got {len(pairs)}")
        empty = [p for p in pairs if not p[0].strip() or not p[1].strip()]
        if empty:
            raise ValueError(f"WordPairs {self.name!r}: empty input or answer in {empty[:3]}")
        answers: dict[str, str] = {}
        unique: list[tuple[str, str]] = []
        for x, y in pairs:
            if x not in answers:
                answers[x] = y
                unique.append((x, y))
            elif answers[x] != y:  # one input, two answers: the task would score a right answer as wrong
                raise ValueError(f"WordPairs {self.name!r}: input {x!r} has two answers, {answers[x]!r} and {y!r}; "
                                 "expected one answer per input (merge or drop one)")
        if len(unique) < len(pairs):
            # a repeated demonstration would also let a prompt show its query's own answer
            warnings.warn(f"WordPairs {self.name!r}: dropped {len(pairs) - len(unique)} repeated pair(s), e.g. "
                          f"{next(p for i, p in enumerate(pairs) if p in pairs[:i])}", stacklevel=3)
            if len(unique) < 2:
                raise ValueError(f"WordPairs {self.name!r}: expected at least 2 distinct pairs, got {len(unique)}")
        object.__setattr__(self, "pairs", tuple(unique))


def builtin_tasks() -> dict[str, WordPairs]:
    """The built-in word-pair tasks, by name."""
    out = {}
    for path in sorted(DATA_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[data["name"]] = WordPairs(data["name"], tuple(map(tuple, data["pairs"])), data.get("description", ""))
    return out


def word_pairs_from_csv(path: str | os.PathLike, name: str | None = None) -> WordPairs:
    """A task from a two-column CSV (``input,answer``; a header row named ``input,answer`` is skipped)."""
    # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark, which must not end up in the header
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r]
    except UnicodeDecodeError as error:
        raise ValueError(f"path={str(path)!r}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["input", "answer"]:
        rows = rows[1:]
    bad = [i for i, r in enumerate(rows) if len(r) != 2]
    if bad:
        raise ValueError(f"{str(path)!r}: rows {bad[:5]} do not have exactly two columns (input,answer)")
    return WordPairs(name or Path(path).stem, tuple((r[0].strip(), r[1].strip()) for r in rows))


@dataclass(frozen=True, eq=False)
class TextTasks(Task):
    """A family of word-pair tasks on one tokenizer (a single task with :meth:`single` or ``fixed``).

    Attributes:
        tasks: the word-pair tasks (names of built-in ones or :class:`WordPairs`).
        tokenizer: a Hugging Face tokenizer (the model's).
        template: ``"hendel"``, ``"todd"`` or a template string with ``{x}`` and ``{y}``.
        prepend_bos: start each prompt with the tokenizer's BOS token (if it has one).
        fixed: restrict the family to task ``fixed``.
    """

    kind: ClassVar[str] = "symbolic"
    name: ClassVar[str] = "text"
    default_n_shots: ClassVar[int] = 5

    tasks: tuple[Any, ...] = ("antonyms",)
    tokenizer: Any = field(default=None, repr=False)
    template: str = "hendel"
    prepend_bos: bool = True
    fixed: int | None = None

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            raise ValueError("tokenizer: text tasks need the model's tokenizer (e.g. model.tokenizer)")
        available = None
        resolved = []
        for task in (self.tasks,) if isinstance(self.tasks, (str, WordPairs)) else self.tasks:
            if isinstance(task, str):
                available = available or builtin_tasks()
                if task not in available:
                    raise ValueError(f"tasks: {task!r} is not a built-in task; expected one of {sorted(available)} "
                                     "or a WordPairs")
                task = available[task]
            if not isinstance(task, WordPairs):
                raise TypeError(f"tasks: expected names or WordPairs, got {type(task).__name__}")
            resolved.append(task)
        if not resolved:
            raise ValueError("tasks: expected at least one task")
        object.__setattr__(self, "tasks", tuple(resolved))
        template = TEMPLATES.get(self.template, self.template)
        if template.count("{x}") != 1 or template.count("{y}") != 1 or template.index("{x}") > template.index("{y}"):
            raise ValueError(f"template={self.template!r}: expected 'hendel', 'todd' or a string with one {{x}} "
                             "followed by one {y}")

    # -- template and tokenization ---------------------------------------------------
    @property
    def template_text(self) -> str:
        return TEMPLATES.get(self.template, self.template)

    @cached_property
    def _parts(self) -> tuple[str, str, str]:
        """(text before the answer with ``{x}``, the answer's own leading space, text after the answer)."""
        before, after = self.template_text.split("{y}")
        space = " " if before.endswith(" ") else ""
        return (before[:-1] if space else before), space, after

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def query_ids(self, x: str) -> list[int]:
        """Tokens of a demonstration up to its answer (also the query)."""
        return self._encode(self._parts[0].format(x=x))

    def answer_ids(self, y: str) -> list[int]:
        """Tokens of the answer with its leading space and the rest of the template's line."""
        _, space, after = self._parts
        return self._encode(space + y + after)

    def first_token(self, y: str) -> int:
        """The answer's target token: the first token of ``" y"`` (with the template's leading space)."""
        _, space, _ = self._parts
        ids = self._encode(space + y)
        if not ids:
            raise ValueError(f"answer {y!r} tokenizes to nothing")
        return ids[0]

    @cached_property
    def label_sets(self) -> list[Tensor]:
        return [torch.tensor(sorted({self.first_token(y) for _, y in t.pairs})) for t in self.tasks]

    @property
    def label_set(self) -> Tensor | None:
        """First tokens of every answer (of the fixed task, or of all tasks)."""
        if self.fixed is not None:
            return self.label_sets[self.fixed]
        return torch.unique(torch.cat(self.label_sets))

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def max_shots(self) -> int | None:
        return min(len(t.pairs) for t in self.tasks) - 1

    def prompt_length(self, n_shots: int) -> int:
        raise ValueError("text prompts have no fixed length (it depends on the words); see ICLBatch.inputs.shape")

    def decode(self, tokens: Tensor) -> str:
        return self.tokenizer.decode([int(t) for t in tokens])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": [t.name for t in self.tasks], "template": self.template,
                "prepend_bos": self.prepend_bos, "fixed": self.fixed}

    # -- sampling ------------------------------------------------------------------
    def _bos(self) -> list[int]:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        return [bos] if self.prepend_bos and bos is not None else []

    def _sample(self, n_prompts: int, n_shots: int, generator: torch.Generator, task_ids: Tensor | None) -> ICLBatch:
        ids = self._task_ids(n_prompts, generator, task_ids)
        sequences, answers, targets, zero = [], [], [], []
        for t in ids.tolist():
            pairs = self.tasks[t].pairs
            chosen = torch.randperm(len(pairs), generator=generator)[: n_shots + 1].tolist()
            tokens, positions, answer_targets = self._bos(), [], []
            for i in chosen[:-1]:
                x, y = pairs[i]
                tokens += self.query_ids(x)
                positions.append(len(tokens) - 1)
                answer_targets.append(self.first_token(y))
                tokens += self.answer_ids(y)
            xq, yq = pairs[chosen[-1]]
            tokens += self.query_ids(xq)
            positions.append(len(tokens) - 1)
            answer_targets.append(self.first_token(yq))
            sequences.append(tokens)
            answers.append(positions)
            targets.append(answer_targets)
            zero.append(self._bos() + self.query_ids(xq))
        zero_batch = self._batch(zero, [[len(z) - 1] for z in zero], [[a[-1]] for a in targets], ids, 0)
        return self._batch(sequences, answers, targets, ids, n_shots, zero_batch)

    def _batch(self, sequences: list[list[int]], positions: list[list[int]], targets: list[list[int]], ids: Tensor,
               n_shots: int, zero: ICLBatch | None = None) -> ICLBatch:
        """Left-pad ``sequences`` into one batch (positions shift by each row's padding)."""
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        inputs = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros(len(sequences), width, dtype=torch.long)
        answer_positions = torch.zeros(len(sequences), len(positions[0]), dtype=torch.long)
        for row, seq in enumerate(sequences):
            offset = width - len(seq)
            inputs[row, offset:] = torch.tensor(seq)
            mask[row, offset:] = 1
            answer_positions[row] = torch.tensor(positions[row]) + offset
        answer_targets = torch.tensor(targets)
        label_set = self.label_set
        return ICLBatch(inputs=inputs, targets=answer_targets[:, -1], answer_positions=answer_positions,
                        answer_targets=answer_targets, task_ids=ids, n_shots=n_shots, kind="symbolic",
                        label_set=label_set, zero_shot=zero,
                        attention_mask=None if bool(mask.all()) else mask)


__all__ = ["DATA_DIR", "TEMPLATES", "TextTasks", "WordPairs", "builtin_tasks", "word_pairs_from_csv"]
