"""One way to name a model: a **subject** is a model and the task family it is measured on.

Every entry point that takes a model — each CLI command's ``--model``, the report's ``--models``, the claims
ledger's ``models`` — resolves it here, so each accepts the same four kinds of source and gives the same
errors:

* a zoo name: the zoo model on its own task family;
* a Hugging Face causal LM directory (``save_pretrained``) on word-pair tasks;
* a tvlens model file (``tvlens demo --out``) on the family it was trained on (its metadata);
* a loaded :class:`~tvlens.models.HookedModel`, with word-pair tasks or a task family.

    >>> from tvlens.subjects import subject
    >>> subject("perm-mix")                                         # a zoo model: its own family
    >>> subject("models/gpt2", tasks=("antonyms", "country_capital"), template="todd")
    >>> subject(my_hooked_model, tasks=("antonyms", "pairs.csv"), name="my-gpt2")

**One rule for the shots.** A subject's prompts have :meth:`Subject.n_shots` demonstrations: the number
asked for, else the shots a zoo model was trained on, else the family's default (word-pair tasks: 5).

**What it offers.** ``labels`` (a symbolic or word-pair family: accuracy over discrete answers) or
``regression`` (real-valued inputs and targets): the claims ledger measures each claim on the subjects that
offer what it needs.

**Across processes.** A subject made from a zoo name or a path is a small picklable record: an
executor's worker is sent one model's units, loads the model once and runs them all. A subject wrapping an
already loaded model is used in the process that holds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tvlens import zoo
from tvlens.models import HookedModel
from tvlens.tasks.base import Task
from tvlens.tasks.splits import Splits
from tvlens.tasks.text import TextTasks, WordPairs, builtin_tasks, check_template, word_pair_tasks

#: The kinds of task family a subject can offer, in words.
OFFERS: dict[str, str] = {"labels": "tasks with discrete answers", "regression": "regression tasks"}


@dataclass(frozen=True)
class Subject:
    """One model the ledger measures and the task family it is measured on.

    Attributes:
        name: its label (the zoo name, the path as given, or the name passed).
        kind: what the source is, decided once by :func:`subject`: ``"zoo"``, ``"pretrained"`` (a Hugging Face
            directory), ``"file"`` (a tvlens ``.safetensors`` model) or ``"loaded"`` (``model``).
        source: a zoo name, a Hugging Face model directory or a tvlens ``.safetensors`` file; ``None`` when
            ``model`` is given.
        words: the word-pair tasks of a text model (resolved to :class:`WordPairs`); ``None`` otherwise.
        template: the prompt template of the word-pair tasks (:data:`~tvlens.tasks.text.TEMPLATES` or a string).
        task_family: the task family of a token or regression model that is not from the zoo.
        offers: ``"labels"`` or ``"regression"``.
        model: an already loaded model (used in this process only; not sent to executor workers).
        dtype: the dtype a Hugging Face directory is loaded in (``"float32"``, ``"bfloat16"``, ``"float16"``,
            ``"float64"``): a worker loads its own copy in it.
    """

    name: str
    kind: str
    source: str | None
    offers: str
    words: tuple[WordPairs, ...] | None = None
    template: str = "arrow"
    task_family: Task | None = field(default=None, repr=False)
    model: HookedModel | None = field(default=None, repr=False, compare=False)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Subject.kind={self.kind!r}: expected one of {list(KINDS)}")

    @property
    def zoo_name(self) -> str | None:
        """The zoo name, for a zoo model."""
        return self.source if self.kind == "zoo" else None

    @property
    def key(self) -> Any:
        """What identifies the loaded model within one process (a loaded model: the object itself)."""
        return ("object", id(self.model)) if self.model is not None else ("source", self.source, self.dtype)

    @property
    def picklable(self) -> bool:
        """Whether an executor's worker can load it by itself (made from a name or a path)."""
        return self.model is None

    def load(self) -> HookedModel:
        """The model (loaded from its source, or the one given)."""
        if self.kind == "loaded":
            assert self.model is not None
            return self.model
        assert self.source is not None
        if self.kind == "zoo":
            return zoo.load(self.source)
        if self.kind == "pretrained":
            return HookedModel.from_pretrained(self.source, dtype=getattr(torch, self.dtype))
        from tvlens.models.io import load_model

        return load_model(self.source)

    def reads(self) -> list[Path]:
        """The files and directories loading it reads (a run's outputs must not be among them): a zoo model's
        weights and card (shipped, or the user's copy), the directory, or the file."""
        if self.kind == "zoo":
            return [path for directory in (None, zoo.WEIGHTS_DIR)
                    for path in (zoo.weights_path(self.source, directory),
                                 zoo.weights_path(self.source, directory).with_suffix(".json"))]
        return [] if self.source is None else [Path(self.source)]

    def task(self, family: Task, task_id: int, argument: str = "task_id") -> Task:
        """Task ``task_id`` of ``family`` (a regression family: the function drawn from seed ``task_id``), checked
        against the tasks the family has (one line naming ``argument`` otherwise)."""
        n_tasks = family.n_tasks
        if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 0 or (
                n_tasks is not None and task_id >= n_tasks):
            expected = f"0 … {n_tasks - 1} ({self.name} has {n_tasks} tasks)" if n_tasks else "an int >= 0"
            raise ValueError(f"{argument}={task_id!r}: expected {expected}")
        return family.single(task_id)

    def family(self, model: HookedModel) -> Task:
        """The task family it is measured on (word-pair tasks on ``model``'s tokenizer)."""
        if self.kind == "zoo":
            return zoo.task(self.source)
        if self.words is not None:
            return TextTasks(self.words, tokenizer=model.tokenizer, template=self.template)
        assert self.task_family is not None
        return self.task_family

    def task_ids(self, requested: int, seed: int) -> tuple[int, ...]:
        """The tasks (units per seed) it is measured on: a text model's word-pair tasks; a discrete family's
        tasks, all of them if it has at most ``requested``, else ``requested`` drawn by ``seed``
        (:meth:`Splits.tasks <tvlens.tasks.Splits.tasks>`); regression: ``requested`` groups of test prompts."""
        if self.words is not None:
            return tuple(range(len(self.words)))
        family = zoo.task(self.source) if self.kind == "zoo" else self.task_family
        return Splits(seed).tasks(family.n_tasks, requested) if family.n_tasks else tuple(range(requested))

    def n_shots(self, family: Task, requested: int | None) -> int:
        """The demonstrations of its prompts: ``requested``, else the shots a zoo model was trained on, else
        the family's default (word-pair tasks: 5, Hendel et al.'s setting)."""
        if requested is not None:
            return requested
        if self.kind == "zoo":
            return zoo.spec(self.source).train.n_shots
        return family.default_n_shots


#: The kinds of source a subject can have (:attr:`Subject.kind`).
KINDS = ("zoo", "pretrained", "file", "loaded")
#: The dtypes a Hugging Face directory can be loaded in.
DTYPES = ("float32", "bfloat16", "float16", "float64")


def subject(model: Any, tasks: Any = None, *, template: str = "arrow", name: str | None = None,
            dtype: str = "float32", argument: str = "models", tasks_argument: str = "tasks") -> Subject:
    """The :class:`Subject` of ``model`` (checked before anything loads).

    Args:
        model: a zoo name, a Hugging Face model directory (``save_pretrained``), a tvlens ``.safetensors`` model
            file, or a loaded :class:`HookedModel`.
        tasks: what a non-zoo model is measured on: word-pair tasks (built-in names, ``.csv`` paths,
            :class:`WordPairs`) for a text model, or a task family (:class:`Task`) for a token or regression
            model. A zoo model has its own family (``tasks`` must be ``None``); a tvlens model file its
            trained one (its metadata) unless ``tasks`` is given.
        template: the word-pair prompt template (``"arrow"``, ``"hendel"``, ``"todd"``, ``"qa"`` or a string).
        name: the row label (default: the zoo name or the path as given).
        dtype: what a Hugging Face directory is loaded in (:data:`DTYPES`; e.g. ``"bfloat16"`` for a 7B model on
            one GPU). Zoo models and tvlens files load as they were saved.
        argument, tasks_argument: the arguments named in errors (``model``'s and ``tasks``').

    Raises:
        ValueError, FileNotFoundError, TypeError: one line naming ``argument`` and the value.
    """
    check_template(template)
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected one of {list(DTYPES)}")
    family = tasks if isinstance(tasks, Task) else None
    if isinstance(model, HookedModel):
        label = name or "model"
        if family is not None:
            return Subject(label, "loaded", None, _offers(family), task_family=family, model=model)
        if tasks is None:
            raise ValueError(f"{tasks_argument}: a loaded model needs tasks (word-pair task names for a language "
                             "model, or a Task family)")
        if getattr(model, "tokenizer", None) is None:
            raise ValueError(f"{argument}: word-pair tasks need a model with a tokenizer (a Hugging Face model); this "
                             f"model has none: pass its Task family as {tasks_argument}")
        return Subject(label, "loaded", None, "labels", words=word_pair_tasks(tasks, tasks_argument),
                       template=template, model=model)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"{argument}: expected zoo names, model directories, .safetensors files or HookedModels; got "
                        f"{type(model).__name__}")
    source = str(model)
    label = name or source
    if source in zoo.SPECS:
        if tasks is not None:
            raise ValueError(f"{tasks_argument}={_shown(tasks)}: zoo model {source!r} has its own task family "
                             f"({type(zoo.task(source)).__name__}); leave {tasks_argument} out for zoo models")
        return Subject(label, "zoo", source, _offers(zoo.task(source)))
    path = Path(source).expanduser()
    if path.is_dir():
        from tvlens.models.pretrained import check_model_dir

        check_model_dir(path, argument)
        if family is not None:
            raise ValueError(f"{tasks_argument}: a Hugging Face model ({source!r}) is measured on word-pair tasks; "
                             "expected task names, CSV files or WordPairs, not a Task family")
        if tasks is None:
            raise ValueError(f"{tasks_argument}: a Hugging Face model ({source!r}) needs word-pair tasks, e.g. "
                             f"antonyms,country_capital (built-in: {sorted(builtin_tasks())})")
        return Subject(label, "pretrained", str(path), "labels", words=word_pair_tasks(tasks, tasks_argument),
                       template=template, dtype=dtype)
    if path.is_file() and path.suffix == ".safetensors":
        from tvlens.models.io import read_metadata
        from tvlens.tasks.base import task_from_dict

        if family is None:
            if tasks is not None:
                raise ValueError(f"{tasks_argument}={_shown(tasks)}: a tvlens model file is measured on a Task "
                                 "family; word-pair tasks need a Hugging Face model")
            meta = read_metadata(path)
            if "task" not in meta:
                raise ValueError(f"{argument}: {source!r} does not record the task it was trained on; pass its Task "
                                 f"family as {tasks_argument}")
            family = task_from_dict(meta["task"])
        return Subject(label, "file", str(path), _offers(family), task_family=family)
    raise FileNotFoundError(f"{argument}: {source!r} is not a zoo model ({', '.join(zoo.list())}), a model directory "
                            "(with config.json) nor a tvlens .safetensors file")


def _offers(family: Task) -> str:
    return "regression" if family.kind == "regression" else "labels"


def _shown(tasks: Any) -> str:
    return repr(tasks if isinstance(tasks, (str, Task)) else [str(t) if not isinstance(t, WordPairs) else t.name
                                                             for t in tasks])


__all__ = ["DTYPES", "KINDS", "OFFERS", "Subject", "subject"]
