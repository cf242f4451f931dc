"""Text ICL tasks for real language models: word pairs shown through a prompt template.

A word-pair task maps an input word to an answer (``hot → cold``). A prompt shows ``n_shots``
pairs through a **template** and ends with the query's input. Built-in templates:

=========  ==========================  =====================================================
name       one demonstration           source
=========  ==========================  =====================================================
hendel     ``example:{x}->{y}\\n``      Hendel et al. 2023's code: ``example:{input}->{output}``
                                       joined by ``\\n``; the query is ``example:{input}->``
todd       ``Q: {x}\\nA: {y}\\n\\n``     Todd et al. 2024's code: prefixes ``Q:``/``A:``,
                                       separators ``\\n``/``\\n\\n``, a space before input and output
arrow      ``{x} -> {y}\\n``            tvlens' neutral format (the default)
qa         ``Q: {x}\\nA: {y}\\n\\n``     the same as ``todd``, under a neutral name
=========  ==========================  =====================================================

or any template string with ``{x}`` followed by ``{y}``. A space right before ``{y}`` belongs to
the answer (``" cold"``, the leading-space convention of GPT-2 and Llama tokenizers), so a prompt
ends at ``A:`` / ``->`` and its target is the first token of the answer.

**A prompt is the tokenization of its whole text** — exactly what the model sees when the string
is given to its tokenizer, as in the papers' code (tokenizing piece by piece would give other
tokens, e.g. ``"\\n\\n"`` as one token or two). Answer positions and targets come from the
tokenizer's offsets: a demonstration's answer position is the token just before the first token
that overlaps its answer's text, and the target is that token. This needs a *fast* tokenizer.

Prompts of one batch have different lengths: they are **left-padded** (the query is the last
column, as the last-position methods expect) with an attention mask. The label set of a task is
the first tokens of all its answers (for label-constrained accuracy). Each batch remembers its
word pairs, so corrupted prompts (:meth:`TextTasks.with_shuffled_labels`, Todd et al.'s
shuffled labels) permute **whole answers** and are tokenized again.

Nine built-in tasks ship as small JSON files in ``tvlens/data/word_pairs`` (CC0, written for
tvlens): :func:`builtin_tasks`. Add your own from a list of pairs (:class:`WordPairs`) or a CSV
(:func:`word_pairs_from_csv`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import string
import threading
import warnings
import weakref
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from jaxtyping import Int
from torch import Tensor

from tvlens.tasks.base import ContentBlock, ICLBatch, Task
from tvlens.tasks.splits import BLOCK_FRACTIONS

DATA_DIR = Path(__file__).parents[1] / "data" / "word_pairs"
#: How many texts' tokenizations :class:`TokenMemo` keeps per tokenizer (about 1 KB each).
TOKEN_MEMO_TEXTS = 50_000
#: Built-in templates: the papers' exact formats under their names, tvlens' own under neutral names.
TEMPLATES = {
    "hendel": "example:{x}->{y}\n",
    "todd": "Q: {x}\nA: {y}\n\n",
    "arrow": "{x} -> {y}\n",
    "qa": "Q: {x}\nA: {y}\n\n",
}


def check_template(template: str, argument: str = "template") -> str:
    """``template`` as its text: a name of :data:`TEMPLATES` or a string with one ``{x}`` followed by one ``{y}``.

    Raises:
        ValueError: one line naming ``argument``, the value and what was expected.
    """
    if not isinstance(template, str):
        raise TypeError(f"{argument}: expected a template name or string, got {type(template).__name__}")
    text = TEMPLATES.get(template, template)
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as error:  # an unmatched brace
        raise ValueError(f"{argument}={template!r}: {error}; expected one {{x}} followed by one {{y}}") from None
    if sorted(fields) != ["x", "y"]:
        raise ValueError(f"{argument}={template!r}: has the fields {fields}; expected one of {sorted(TEMPLATES)} or "
                         "exactly one {x} followed by one {y} (write a literal brace as {{ or }})")
    if text.count("{x}") != 1 or text.count("{y}") != 1 or text.index("{x}") > text.index("{y}"):
        raise ValueError(f"{argument}={template!r}: expected one of {sorted(TEMPLATES)} or a string with one "
                         "{x} followed by one {y}")
    return text


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


def word_pair_tasks(tasks: Any, argument: str = "tasks") -> tuple[WordPairs, ...]:
    """Word-pair tasks from built-in names, ``.csv`` paths (:func:`word_pairs_from_csv`) and :class:`WordPairs`,
    one of them or a sequence; each task once. The one place a task name is resolved (``TextTasks``, the
    claims ledger's subjects, the CLI).

    Raises:
        ValueError / FileNotFoundError / TypeError: a one-line error naming ``argument`` and the item.
    """
    items = [tasks] if isinstance(tasks, (str, os.PathLike, WordPairs)) else list(tasks)
    if not items:
        raise ValueError(f"{argument}=[]: expected word-pair tasks (built-in names, CSV files or WordPairs)")
    available: dict[str, WordPairs] | None = None
    out: list[WordPairs] = []
    for item in items:
        if isinstance(item, WordPairs):
            out.append(item)
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"{argument}: expected names, CSV paths or WordPairs, got {type(item).__name__}")
        available = available if available is not None else builtin_tasks()
        if str(item) in available:
            out.append(available[str(item)])
        elif str(item).lower().endswith(".csv"):
            if not Path(item).is_file():
                raise FileNotFoundError(f"{argument}: {str(item)!r}: no such CSV file (two columns: input,answer)")
            out.append(word_pairs_from_csv(item))
        else:
            raise ValueError(f"{argument}: {str(item)!r} is not a built-in word-pair task nor a .csv file; expected "
                             f"one of {sorted(available)} or a path to input,answer pairs")
    names = [w.name for w in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{argument}: {repeated} named twice; expected each task once")
    return tuple(out)


def pairs_needed(n_shots: int) -> int:
    """The fewest word pairs a task needs so that every held-out split (:data:`~tvlens.tasks.splits.BLOCKS`: its
    block of the pairs, :data:`~tvlens.tasks.splits.BLOCK_FRACTIONS`) holds a prompt of ``n_shots``
    demonstrations and a query, all distinct."""
    blocks = [ContentBlock(i, BLOCK_FRACTIONS, seed=0) for i in range(len(BLOCK_FRACTIONS))]  # sizes: any seed's
    # a block holds at most its share of the pairs and one more (rounding): no smaller n can do
    n = max(len(blocks), int(n_shots / min(BLOCK_FRACTIONS)) - 1)
    while min(block.size(n) for block in blocks) < n_shots + 1:
        n += 1
    return n


def check_enough_pairs(words: tuple[WordPairs, ...], n_shots: int, argument: str = "tasks") -> None:
    """Refuse (one line, before any model loads) a word-pair task too small for ``n_shots``-shot prompts in every
    held-out split (:func:`pairs_needed`), naming the task and the pairs it needs."""
    needed = pairs_needed(n_shots)
    small = [w for w in words if len(w.pairs) < needed]
    if small:
        shares = ", ".join(f"{f:.0%}" for f in BLOCK_FRACTIONS)
        raise ValueError(f"{argument}: {', '.join(f'{w.name!r} has {len(w.pairs)} distinct pairs' for w in small)}; "
                         f"{n_shots}-shot prompts drawn from each held-out split of the pairs ({shares}) need at least "
                         f"{needed} (add pairs, or lower the shots)")


def left_pad(sequences: list[list[int]], tokenizer: Any
             ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Token sequences as one left-padded batch and its mask (1 = real token): each row ends in the last column.
    The pad id is the tokenizer's pad token, else its end-of-sequence token, else 0 (never attended to)."""
    width = max(len(seq) for seq in sequences)
    pad = tokenizer.pad_token_id
    pad = pad if pad is not None else (tokenizer.eos_token_id or 0)
    inputs = torch.tensor([[pad] * (width - len(seq)) + list(seq) for seq in sequences], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(seq)) + [1] * len(seq) for seq in sequences], dtype=torch.long)
    return inputs, mask


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
        template: a name of :data:`TEMPLATES` (``"arrow"``, ``"hendel"``, ``"todd"``, ``"qa"``) or a template
            string with ``{x}`` and ``{y}``.
        prepend_bos: start each prompt with the tokenizer's BOS token (if it has one).
        fixed: restrict the family to task ``fixed``.
    """

    kind: ClassVar[str] = "symbolic"
    name: ClassVar[str] = "text"
    default_n_shots: ClassVar[int] = 5
    held_out_content: ClassVar[str | None] = "word pairs"

    tasks: tuple[Any, ...] = ("antonyms",)
    tokenizer: Any = field(default=None, repr=False)
    template: str = "arrow"
    prepend_bos: bool = True
    fixed: int | None = None

    def __post_init__(self) -> None:
        if self.tokenizer is None:
            raise ValueError("tokenizer: text tasks need the model's tokenizer (e.g. model.tokenizer)")
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError(f"tokenizer: expected a fast Hugging Face tokenizer (its offsets place the answers); "
                             f"got {type(self.tokenizer).__name__} — load it with AutoTokenizer.from_pretrained(..., "
                             "use_fast=True)")
        object.__setattr__(self, "tasks", word_pair_tasks(self.tasks))
        check_template(self.template)

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

    def _tokenize(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Token ids of each whole text and each token's character span (one batched tokenizer call for
        the texts this tokenizer has not tokenized yet: :class:`TokenMemo`)."""
        return TokenMemo.of(self.tokenizer).tokenize(texts)

    @staticmethod
    def _first_overlapping(spans: list[tuple[int, int]], start: int) -> int:
        """Index of the first token whose text reaches past character ``start`` (the answer's first token)."""
        for i, (_, end) in enumerate(spans):
            if end > start:
                return i
        raise ValueError(f"no token covers character {start}")

    def _text(self, pairs: list[tuple[str, str]]) -> tuple[str, list[int], str]:
        """The prompt text of demonstrations ``pairs[:-1]`` and query ``pairs[-1]``; the character where
        each answer begins, its leading space included (the query's in ``full``); and ``full``, the
        prompt followed by the query's answer."""
        before, space, after = self._parts
        text, starts = "", []
        for x, y in pairs[:-1]:
            text += before.format(x=x)
            starts.append(len(text))
            text += space + y + after
        text += before.format(x=pairs[-1][0])
        starts.append(len(text))
        return text, starts, text + space + pairs[-1][1]

    def encode_prompt(self, pairs: list[tuple[str, str]]) -> tuple[list[int], list[int], list[int]]:
        """Tokens of one prompt (its whole text, BOS first if asked), its answer positions and targets.

        An answer's target is the first token of the whole text that overlaps the answer (with its
        leading space): what the model reads — and must produce — next. For the query that is the
        token following the prompt when the prompt and its answer are tokenized together. Where a
        tokenizer merges the prompt's last characters with the answer's first (e.g. ``->c``), the
        query's target is the first token of the answer tokenized on its own.

        Args:
            pairs: the demonstrations' ``(x, y)`` and, last, the query's.

        Returns:
            ``(tokens, positions, targets)``: ``tokens[positions[i]]`` is the token right before
            answer ``i``, whose first token is ``targets[i]``; the last entry is the query's.
        """
        return self.encode_prompts([pairs])[0]

    def encode_prompts(self, prompts: list[list[tuple[str, str]]]) -> list[tuple[list[int], list[int], list[int]]]:
        """:meth:`encode_prompt` of every prompt, the texts tokenized in two batched calls."""
        texts = [self._text(list(pairs)) for pairs in prompts]
        prompt_tokens = self._tokenize([text for text, _, _ in texts])
        full_tokens = self._tokenize([full for _, _, full in texts])
        bos = self._bos()
        out = []
        for pairs, (_, starts, _), (ids, spans), (full_ids, full_spans) in zip(prompts, texts, prompt_tokens,
                                                                               full_tokens):
            positions, targets = [], []
            for start in starts[:-1]:
                k = self._first_overlapping(spans, start)
                if k == 0:
                    raise ValueError(f"template={self.template!r}: an answer starts the prompt; expected text before "
                                     "it")
                positions.append(len(bos) + k - 1)
                targets.append(ids[k])
            k = self._first_overlapping(full_spans, starts[-1])
            if full_spans[k][0] < starts[-1]:  # the token straddles the prompt's end: the answer's own first token
                _, space, _ = self._parts
                full_ids, k = self._tokenize([space + pairs[-1][1]])[0][0], 0
            positions.append(len(bos) + len(ids) - 1)
            targets.append(full_ids[k])
            out.append((bos + ids, positions, targets))
        return out

    def first_token(self, y: str, x: str = "") -> int:
        """The target token of answer ``y``: its first token as tokenized after the template's text."""
        return self.encode_prompt([(x, y)])[2][-1]

    @cached_property
    def label_sets(self) -> list[Tensor]:
        return [torch.tensor(sorted({targets[-1] for _, _, targets in self.encode_prompts([[p] for p in t.pairs])}))
                for t in self.tasks]

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

    def _sample(self, n_prompts: int, n_shots: int, generator: torch.Generator, task_ids: Tensor | None,
                block: ContentBlock | None = None) -> ICLBatch:
        ids = self._task_ids(n_prompts, generator, task_ids)
        examples = []
        for t in ids.tolist():
            pairs = self.tasks[t].pairs
            if block is not None:  # demonstrations and query from this block's word pairs only
                kept = block.items(len(pairs), salt=t).tolist()
                if len(kept) < n_shots + 1:
                    raise ValueError(f"n_shots={n_shots}: the held-out block {block.index} of {self.tasks[t].name!r} "
                                     f"has {len(kept)} word pairs; expected at least {n_shots + 1}")
                pairs = [pairs[i] for i in kept]
            chosen = torch.randperm(len(pairs), generator=generator)[: n_shots + 1].tolist()
            examples.append(tuple(pairs[i] for i in chosen))
        return self.build(examples, ids, n_shots)

    def build(self, examples: list[tuple[tuple[str, str], ...]], ids: Tensor, n_shots: int) -> ICLBatch:
        """The batch (and its zero-shot view) of the prompts made of ``examples``.

        Args:
            examples: per prompt, its demonstrations' ``(x, y)`` pairs followed by the query's.
            ids: ``[batch]`` the task of each prompt.
            n_shots: demonstrations per prompt (``len(examples[i]) - 1``).
        """
        if any(len(pairs) != n_shots + 1 for pairs in examples):
            raise ValueError(f"examples: expected {n_shots} demonstrations and a query per prompt")
        encoded = self.encode_prompts([list(pairs) for pairs in examples])
        zero = self.encode_prompts([[pairs[-1]] for pairs in examples])
        zero_batch = self._batch([z[0] for z in zero], [z[1] for z in zero], [z[2] for z in zero], ids, 0,
                                 examples=tuple(pairs[-1:] for pairs in examples))
        return self._batch([e[0] for e in encoded], [e[1] for e in encoded], [e[2] for e in encoded], ids, n_shots,
                           zero_batch, examples=tuple(examples))

    def with_shuffled_labels(self, batch: ICLBatch, generator: torch.Generator) -> ICLBatch:
        """Todd et al.'s corrupted prompts: each prompt's demonstration **answers** (whole strings) permuted
        among themselves, the prompt tokenized again; inputs, query and its target unchanged."""
        if batch.examples is None:
            raise ValueError("batch: expected a batch sampled from this TextTasks (it remembers its word pairs)")
        if batch.n_shots < 2:
            raise ValueError(f"shuffling labels needs at least 2 demonstrations; the batch has n_shots={batch.n_shots}")
        shuffled = []
        for pairs in batch.examples:
            demos = pairs[:-1]
            order = torch.rand(len(demos), generator=generator).argsort().tolist()
            shuffled.append(tuple((x, demos[j][1]) for (x, _), j in zip(demos, order)) + (pairs[-1],))
        corrupted = self.build(shuffled, batch.task_ids, batch.n_shots)
        return dataclasses.replace(corrupted, zero_shot=None)

    def _batch(self, sequences: list[list[int]], positions: list[list[int]], targets: list[list[int]], ids: Tensor,
               n_shots: int, zero: ICLBatch | None = None, examples: tuple | None = None) -> ICLBatch:
        """Left-pad ``sequences`` into one batch (positions shift by each row's padding)."""
        inputs, mask = left_pad(sequences, self.tokenizer)
        offsets = inputs.shape[1] - mask.sum(1)  # [batch] each row's left padding
        answer_positions = torch.tensor(positions, dtype=torch.long) + offsets[:, None]
        answer_targets = torch.tensor(targets)
        label_set = self.label_set
        return ICLBatch(inputs=inputs, targets=answer_targets[:, -1], answer_positions=answer_positions,
                        answer_targets=answer_targets, task_ids=ids, n_shots=n_shots, kind="symbolic",
                        label_set=label_set, zero_shot=zero,
                        attention_mask=None if bool(mask.all()) else mask, examples=examples)


class TokenMemo:
    """The tokenizations one tokenizer has made of whole texts, kept so a text is tokenized once.

    Every method that scores a split draws the same prompts again (the same seed gives the same
    texts), and a zero-shot view repeats its few query words across a batch; tokenizing is most of
    what drawing text prompts costs. The memo holds each text's ids and character spans compactly
    (machine-int arrays, about 1 KB a text), forgets the least recently used beyond
    :data:`TOKEN_MEMO_TEXTS`, and starts afresh when the tokenizer's vocabulary size changes (tokens
    added). It lives as long as its tokenizer (a weak reference; a tokenizer that cannot be weakly
    referenced or hashed gets a memo for one call), is safe to share between threads, and returns new
    lists each time: what the caller gets equals ``tokenizer(texts, add_special_tokens=False,
    return_offsets_mapping=True)``.
    """

    _memos: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()
    _memos_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, tokenizer: Any) -> None:
        try:
            self.tokenizer = weakref.proxy(tokenizer)
        except TypeError:
            self.tokenizer = tokenizer
        self.vocabulary = len(tokenizer)
        self.texts: OrderedDict[str, tuple[array, array]] = OrderedDict()
        self.lock = threading.Lock()

    @classmethod
    def of(cls, tokenizer: Any) -> TokenMemo:
        """The memo of ``tokenizer`` (a new one when it has none, or when its vocabulary has grown)."""
        with cls._memos_lock:
            try:
                memo = cls._memos.get(tokenizer)
            except TypeError:  # not hashable or not weakly referable: nothing to keep it under
                return cls(tokenizer)
            if memo is None or memo.vocabulary != len(tokenizer):
                memo = cls._memos[tokenizer] = cls(tokenizer)
            return memo

    def tokenize(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Each text's token ids and each token's ``(start, end)`` characters, without special tokens."""
        with self.lock:
            missing = [text for text in dict.fromkeys(texts) if text not in self.texts]
            if missing:
                encoded = self.tokenizer(missing, add_special_tokens=False, return_offsets_mapping=True)
                for text, ids, spans in zip(missing, encoded["input_ids"], encoded["offset_mapping"]):
                    self.texts[text] = (array("l", ids), array("l", [c for span in spans for c in span]))
            out = []
            for text in texts:
                ids, flat = self.texts[text]
                self.texts.move_to_end(text)
                ends = iter(flat)
                out.append((ids.tolist(), list(zip(ends, ends))))
            while len(self.texts) > TOKEN_MEMO_TEXTS:
                self.texts.popitem(last=False)
            return out


__all__ = ["DATA_DIR", "TEMPLATES", "TOKEN_MEMO_TEXTS", "TextTasks", "TokenMemo", "check_template", "WordPairs",
           "builtin_tasks", "check_enough_pairs", "left_pad", "pairs_needed", "word_pair_tasks", "word_pairs_from_csv"]
