"""Save and load tvlens models: safetensors weights in TransformerLens layout, JSON metadata in the header.

A saved model is one ``.safetensors`` file. Its tensors are the weights in TransformerLens
layout (:meth:`HookedModel.tl_state_dict`); its header metadata holds ``"tvlens"`` — a JSON
object with the :class:`ModelConfig` under ``"config"`` plus whatever the caller adds (task,
training config, metrics, tvlens version). The file loads on either TransformerLens line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

from tvlens._io import atomic_write, first_line
from tvlens._version import __version__
from tvlens.models.config import ModelConfig
from tvlens.models.hooked import HookedModel


def save_model(model: HookedModel, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
               argument: str = "path") -> Path:
    """Write ``model`` to ``path`` atomically.

    Args:
        model: a model built from a :class:`ModelConfig` (``model.config`` is stored).
        path: destination ``.safetensors`` file.
        metadata: extra JSON-serialisable facts stored beside the config.
    """
    if model.config is None:
        raise ValueError("save_model: the model has no tvlens ModelConfig (it was not built by tvlens)")
    meta = {"config": model.config.to_dict(), "tvlens_version": __version__, **(metadata or {})}
    header = {"tvlens": json.dumps(meta, sort_keys=True)}
    state = model.tl_state_dict()
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=header), argument)


def save_model_or_keep(model: HookedModel, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                       argument: str = "path") -> Path:
    """:func:`save_model`, and if ``path`` cannot be written (a full disk, a vanished directory), keep the
    model anyway: it is written to ``tvlens-<stem>-<pid>.safetensors`` in the working directory or, failing
    that, the temporary directory, and an ``OSError`` says why ``path`` failed and where the model is.

    Raises:
        OSError: one line naming ``path``, the cause, and the file that holds the model (or that no
            fallback could be written either).
    """
    try:
        return save_model(model, path, metadata, argument)
    except OSError as error:
        cause = first_line(error, 300)
    name = f"tvlens-{Path(path).stem}-{os.getpid()}.safetensors"
    for directory in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            kept = save_model(model, directory / name, metadata)
        except (OSError, ValueError):
            continue
        raise OSError(f"{cause}; the trained model is kept at {str(kept)!r}")
    raise OSError(f"{cause}; the trained model could not be written anywhere (nor to the working or temporary "
                  "directory)")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a saved model, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        if "tvlens" not in header:
            raise ValueError("no 'tvlens' metadata")
        return json.loads(header["tvlens"])
    except Exception as error:  # SafetensorError, truncated or foreign files: one message naming the file
        raise ValueError(f"path={str(path)!r}: not a valid tvlens model file: {first_line(error)}") from None


def load_model(path: str | os.PathLike, backend: str = "auto") -> HookedModel:
    """Load a model written by :func:`save_model` on the installed TransformerLens line.

    Args:
        path: the ``.safetensors`` file.
        backend: ``"auto"``, ``"bridge"`` (4.x) or ``"hooked_transformer"`` (3.x).
    """
    meta = read_metadata(path)
    if not isinstance(meta, dict) or "config" not in meta:
        raise ValueError(f"path={str(path)!r}: not a valid tvlens model file: its metadata lacks 'config'")
    model = HookedModel.from_config(ModelConfig.from_dict(meta["config"]), backend=backend)
    state = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key)
        model.load_tl_state_dict(state)
    except Exception as error:
        raise ValueError(f"path={str(path)!r}: not a valid tvlens model file: {first_line(error)}") from None
    return model
