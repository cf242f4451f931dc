"""The zoo's catalogue: the names, recipes, files and loaders of the shipped models (re-exported by
:mod:`tvlens.zoo`)."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path
from typing import Any

from tvlens._io import atomic_write_text
from tvlens._version import __version__
from tvlens.models.hooked import HookedModel
from tvlens.models.io import load_model, save_model_or_keep
from tvlens.tasks import Task
from tvlens.training import TrainResult, train
from tvlens.zoo.specs import SPECS, ZooSpec

WEIGHTS_DIR = Path(__file__).parent / "weights"


def list() -> builtins.list[str]:  # noqa: A001 - the zoo's public verb: tvlens.zoo.list()
    """Names of the zoo models, the default model (``perm-mix``) first."""
    return builtins.list(SPECS)


def spec(name: str) -> ZooSpec:
    """The recipe of a zoo model."""
    if name not in SPECS:
        raise KeyError(f"name={name!r} is not a zoo model; expected one of {builtins.list(SPECS)}")
    return SPECS[name]


def user_dir() -> Path:
    """Where :func:`train_model` writes by default: ``$TVLENS_ZOO_DIR``, else ``$XDG_CACHE_HOME/tvlens/zoo``,
    else ``~/.cache/tvlens/zoo`` (never the installed package)."""
    if os.environ.get("TVLENS_ZOO_DIR"):
        return Path(os.environ["TVLENS_ZOO_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "tvlens" / "zoo"


def weights_path(name: str, directory: str | os.PathLike | None = None) -> Path:
    """The weights file of zoo model ``name`` in ``directory`` (default: the shipped weights in the package)."""
    spec(name)
    return Path(directory or WEIGHTS_DIR) / f"{name}.safetensors"


def info(name: str, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The shipped JSON card of a model: architecture, task, training config, final metrics, history, version."""
    path = weights_path(name, directory).with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(
            f"zoo model {name!r} has no weights at {str(path.parent)!r}; create them with `tvlens zoo train {name}`"
        )
    return json.loads(path.read_text())


def load(name: str = "perm-mix", backend: str = "auto", directory: str | os.PathLike | None = None) -> HookedModel:
    """Load a zoo model on the installed TransformerLens line (4.x bridge or 3.x HookedTransformer)."""
    path = weights_path(name, directory)
    if not path.is_file():
        raise FileNotFoundError(
            f"zoo model {name!r} has no weights at {str(path)!r}; create them with `tvlens zoo train {name}`"
        )
    return load_model(path, backend=backend)


def task(name: str = "perm-mix") -> Task:
    """The task family a zoo model was trained on. Sample prompts with any seed; training drew from the
    ``training`` split of :class:`~tvlens.tasks.Splits` (``train.seed + 7919``), so the usual evaluation
    seeds give prompts the model was not trained on."""
    return spec(name).task


def train_model(
    name: str,
    directory: str | os.PathLike | None = None,
    *,
    steps: int | None = None,
    progress: bool = True,
    backend: str = "auto",
) -> tuple[HookedModel, TrainResult]:
    """Re-create a zoo model from its recipe and write ``NAME.safetensors`` + ``NAME.json`` atomically.

    Args:
        name: zoo model name.
        directory: where to write (default :func:`user_dir`; pass :data:`WEIGHTS_DIR` to replace the
            shipped weights).
        steps: override the number of steps (a short run for tests; the card records it).
        progress: tqdm bar.
        backend: TransformerLens backend to train on.
    """
    recipe = spec(name)
    directory = user_dir() if directory is None else Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory={str(directory)!r}: is a file, expected a directory to write the model into")
    config = recipe.train
    if steps is not None:
        config = type(config).from_dict({**config.to_dict(), "steps": steps})
    model = HookedModel.from_config(recipe.model, backend=backend)
    result = train(model, recipe.task, config, progress=progress, target=recipe.target)
    card = {
        "name": name,
        "description": recipe.description,
        "config": recipe.model.to_dict(),
        "task": recipe.task.to_dict(),
        "train": config.to_dict(),
        "target": recipe.target,
        "steps_done": result.steps_done,
        "train_seconds": round(result.seconds, 1),
        "tvp_on_from": result.tvp_on_from,
        "final_metrics": result.final,
        "history": result.history,
        "tvlens_version": __version__,
        "transformer_lens_line": model.line,
    }
    path = weights_path(name, directory)
    save_model_or_keep(model, path, {k: v for k, v in card.items() if k != "config"})  # kept if path fails
    atomic_write_text(path.with_suffix(".json"), json.dumps(card, indent=1, sort_keys=False) + "\n")
    return model, result


__all__ = ["WEIGHTS_DIR", "info", "list", "load", "spec", "task", "train_model", "user_dir",
           "weights_path"]
