"""What ``tvlens report`` runs: the models (zoo names or Hugging Face directories) and its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tvlens import zoo
from tvlens._checks import check_int
from tvlens._config import Config
from tvlens._parallel import default_workers

#: The word-pair tasks a Hugging Face model is reported on (task 0 is the one vectors are made for).
HF_TASKS = ("antonyms", "country_capital", "english_french", "present_past")


def is_hf_dir(name: str) -> bool:
    """Whether ``name`` is a Hugging Face model directory (``save_pretrained``) rather than a zoo name."""
    return (Path(name) / "config.json").is_file()


DEFAULT_MODELS = ("perm-mix", "token-offset", "linear-regression-long")


@dataclass
class ReportConfig(Config):
    """What ``tvlens report`` runs.

    Attributes:
        models: zoo model names (token and regression models), or directories of Hugging Face causal
            LMs (``save_pretrained``), reported on :data:`HF_TASKS` word-pair tasks.
        quick: fewer prompts and copies (for tests and previews).
        seed: seed of every stage's prompts.
        cache_dir: where stage results are cached (``None``: no cache).
        studies: also run the claims ledger (first) and the cross-model studies (TVP-loss, depth vs complexity,
            the Yang et al. 2025a table).
        workers: processes the zoo's claims ledger runs its models on (``None``: one per core, at most 4, and in
            this process for a ``quick`` preview, which would wait longer for the processes to start than for its
            ledger; ``1``: in this process). The table is the same either way.
    """

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    quick: bool = False
    seed: int = 0
    cache_dir: str | None = None
    studies: bool = True
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None:
            check_int("workers", self.workers, 1)
        for name in self.models:  # an unknown name or a directory that is not a model: one line, before any work
            if not is_hf_dir(name) and name not in zoo.SPECS:
                where = (f"{name!r} is a directory without config.json" if Path(name).is_dir()
                         else f"{name!r} is neither a zoo model ({', '.join(zoo.list())})")
                raise ValueError(f"models: {where}, nor a Hugging Face model directory (save_pretrained, with "
                                 "config.json); expected zoo names or model directories")

    @property
    def n_prompts(self) -> int:
        return 64 if self.quick else 200

    @property
    def ledger_workers(self) -> int:
        """The processes the zoo's ledger runs on (:attr:`workers` resolved)."""
        if self.workers is not None:
            return self.workers
        return 1 if self.quick else default_workers()


__all__ = ["DEFAULT_MODELS", "HF_TASKS", "ReportConfig", "is_hf_dir"]
