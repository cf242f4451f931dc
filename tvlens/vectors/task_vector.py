"""``TaskVector``: one type for every way of getting a task vector, saved with safetensors.

A task vector is one or more tensors, each placed at a **(layer, hook point, positions)** site
of the residual stream, applied with one ``mode`` (``add`` or ``replace``) and ``scale``. Every
method of tvlens — Vanilla TV, function vector, learned TV, head-weighted learned TV — returns one,
so they inject, compare, compose and save the same way::

    tv = learn_task_vector(model, task, layer=2)
    with tv.inject(model):
        logits = model(zero_shot_tokens)
    (tv_a + tv_b).save("composed.safetensors")     # Yang et al. 2025a: learned vectors compose

A vector remembers the model it was made on as a **fingerprint** (architecture + SHA-256 of the
weights). Loading it for another model raises, unless ``strict=False`` (then it warns).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from tvlens._checks import check_int
from tvlens._io import atomic_write, first_line
from tvlens._version import __version__
from tvlens.interventions import Intervention, inject
from tvlens.models.hooked import BLOCK_HOOKS, HookedModel
from tvlens.models.weights import state_hash
from tvlens.positions import PositionSpec, check_position_spec


def _checksum(tensor: Tensor) -> str:
    """SHA-256 of one tensor's shape, dtype and raw bytes."""
    return state_hash({"": tensor})


def _position_key(positions: PositionSpec) -> Any:
    """A JSON-able, hashable form of a position spec (tensors of per-example positions are not storable)."""
    if isinstance(positions, Tensor):
        raise ValueError("a TaskVector site cannot hold per-example positions (a tensor); "
                         "use an int, a list, a slice, 'last' or 'all'")
    if isinstance(positions, slice):
        return {"slice": [positions.start, positions.stop, positions.step]}
    if isinstance(positions, tuple):
        return list(positions)
    return positions


def _position_from_key(key: Any) -> PositionSpec:
    if isinstance(key, dict):
        return slice(*key["slice"])
    if isinstance(key, list):
        return tuple(key)
    return key


#: (weights the vector was made on, weights it is used on) pairs already warned about in this process.
_WARNED_PAIRS: set[tuple[Any, Any]] = set()
#: The first tvlens version whose splits partition each task's content per seed (before it: one partition for every
#: seed), so a vector saved by an older version trained on queries this version may hold out.
PER_SEED_PARTITION = (0, 2)


@dataclass(frozen=True)
class Site:
    """Where a vector goes: block ``layer``, hook point ``hook``, token ``positions``."""

    layer: int
    hook: str = "resid_pre"
    positions: PositionSpec = "last"

    def __post_init__(self) -> None:
        check_int("Site.layer", self.layer, 0)
        if self.hook not in BLOCK_HOOKS:
            raise ValueError(f"Site.hook={self.hook!r}: expected one of {list(BLOCK_HOOKS)}")
        object.__setattr__(self, "positions", check_position_spec(self.positions))
        _position_key(self.positions)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "hook": self.hook, "positions": _position_key(self.positions)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Site:
        return cls(int(data["layer"]), data["hook"], _position_from_key(data["positions"]))

    def __hash__(self) -> int:
        return hash((self.layer, self.hook, json.dumps(_position_key(self.positions))))


@dataclass(frozen=True, eq=False)
class TaskVector:
    """Tensors at residual-stream sites, how to apply them, and where they came from.

    Attributes:
        vectors: ``{Site: tensor [d_model]}``.
        mode: ``"add"`` or ``"replace"``.
        scale: multiplies every tensor when injected.
        method: ``"vanilla"``, ``"function"``, ``"learned"``, ``"head_weighted"``, ``"composed"`` …
        task: the task description (``Task.to_dict()``) or ``None``.
        fingerprint: :meth:`HookedModel.fingerprint` of the model it was made on.
        hyperparameters: the settings of the method.
        history: training/selection history (lists of dicts).
    """

    vectors: dict[Site, Float[Tensor, " d_model"]]
    mode: str = "add"
    scale: float = 1.0
    method: str = "custom"
    task: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.vectors:
            raise ValueError("TaskVector.vectors is empty: expected at least one {Site: tensor} entry")
        widths = {v.shape for v in self.vectors.values()}
        if len(widths) != 1 or len(next(iter(widths))) != 1:
            raise ValueError(f"TaskVector.vectors must all be [d_model] tensors of one width; got shapes {widths}")
        if self.mode not in ("add", "replace"):
            raise ValueError(f"mode={self.mode!r}: expected 'add' or 'replace'")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale):
            raise ValueError(f"scale={self.scale!r}: expected a finite number")
        for site, v in self.vectors.items():
            if v.device.type == "meta":
                continue
            if not bool(torch.isfinite(v.detach()).all()):
                raise ValueError(f"the vector at {site} contains NaN or inf values; expected finite values")
            if not bool(torch.isfinite(v.detach() * self.scale).all()):
                raise ValueError(f"scale={self.scale!r} overflows {v.dtype} for the vector at {site} "
                                 f"(max |v| = {v.detach().abs().max().item():.3g}); expected a smaller scale")

    # -- convenience -----------------------------------------------------------------
    @classmethod
    def single(cls, vector: Tensor, layer: int, positions: PositionSpec = "last", hook: str = "resid_pre",
               **kwargs: Any) -> TaskVector:
        """A task vector with one tensor at one site."""
        return cls({Site(layer, hook, positions): vector}, **kwargs)

    @property
    def sites(self) -> list[Site]:
        return list(self.vectors)

    @property
    def layers(self) -> list[int]:
        return sorted({s.layer for s in self.vectors})

    @property
    def d_model(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    @property
    def seeds(self) -> frozenset[int]:
        """The user seeds whose splits made this vector (its prompts, choices and training draws); empty for a
        vector that records none (hand-made). A composed vector holds its parts' seeds. Held-out prompts for it
        must come from the same seed (:meth:`~tvlens.tasks.Splits.check_made_with`): each seed partitions a
        family's content its own way."""
        h = self.hyperparameters
        found = list(h.get("seeds", ())) + ([h["seed"]] if h.get("seed") is not None else [])
        return frozenset(int(s) for s in found)

    def vector(self, layer: int | None = None) -> Tensor:
        """The tensor of the only site (or the only site at ``layer``)."""
        sites = [s for s in self.vectors if layer is None or s.layer == layer]
        if len(sites) != 1:
            raise ValueError(f"vector(layer={layer}): {len(sites)} sites match; pick one from {self.sites}")
        return self.vectors[sites[0]]

    def interventions(self) -> list[Intervention]:
        """The :class:`~tvlens.Intervention` objects that put this vector into a model."""
        return [Intervention(v, layer=s.layer, positions=s.positions, hook=s.hook, mode=self.mode, scale=self.scale)
                for s, v in self.vectors.items()]

    def inject(self, model: HookedModel) -> AbstractContextManager[HookedModel]:
        """Context manager: the model with this vector injected (see :func:`tvlens.inject`)."""
        return inject(model, self)

    def to(self, *args: Any, **kwargs: Any) -> TaskVector:
        return replace(self, vectors={s: v.to(*args, **kwargs) for s, v in self.vectors.items()})

    def detach(self) -> TaskVector:
        return replace(self, vectors={s: v.detach().clone() for s, v in self.vectors.items()})

    def __iter__(self) -> Iterator[Intervention]:
        return iter(self.interventions())

    # -- algebra (Yang et al. 2025a: learned vectors compose) -------------------------------------------
    def _combine(self, other: TaskVector, sign: float) -> TaskVector:
        if not isinstance(other, TaskVector):
            return NotImplemented
        if self.mode != other.mode:
            raise ValueError(f"cannot combine a {self.mode!r} vector with a {other.mode!r} vector")
        if self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint:
            raise ValueError("cannot combine task vectors made on different models (fingerprints differ)")
        if self.d_model != other.d_model:
            raise ValueError(f"cannot combine task vectors of different widths: d_model {self.d_model} and "
                             f"{other.d_model}")
        out = {s: v * self.scale for s, v in self.vectors.items()}
        for s, v in other.vectors.items():
            out[s] = out.get(s, torch.zeros_like(v)) + sign * other.scale * v
        return TaskVector(out, mode=self.mode, scale=1.0, method="composed", task=None,
                          fingerprint=self.fingerprint or other.fingerprint,
                          hyperparameters={"parts": [self.method, other.method], "sign": sign,
                                           "seeds": sorted(self.seeds | other.seeds)})

    def __add__(self, other: TaskVector) -> TaskVector:
        return self._combine(other, 1.0)

    def __sub__(self, other: TaskVector) -> TaskVector:
        return self._combine(other, -1.0)

    def __mul__(self, factor: float) -> TaskVector:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        return replace(self, scale=self.scale * float(factor))

    __rmul__ = __mul__

    def __neg__(self) -> TaskVector:
        return self * -1.0

    # -- persistence ------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "sites": [s.to_dict() for s in self.vectors],
            "mode": self.mode,
            "scale": self.scale,
            "method": self.method,
            "task": self.task,
            "fingerprint": self.fingerprint,
            "hyperparameters": self.hyperparameters,
            "history": self.history,
            "tvlens_version": __version__,
        }

    def save(self, path: str | os.PathLike, argument: str = "path") -> Path:
        """Write the tensors (safetensors) with the metadata as JSON in the header, atomically.

        The header also holds a SHA-256 of each tensor's bytes, so :meth:`load` notices a file whose
        numbers were damaged after it was written.
        """
        tensors = {f"site_{i}": v.detach().to("cpu").contiguous() for i, v in enumerate(self.vectors.values())}
        meta = {**self.metadata(), "checksums": {k: _checksum(t) for k, t in tensors.items()}}
        header = {"tvlens_task_vector": json.dumps(meta, default=str)}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header), argument)

    def export(self, path: str | os.PathLike, format: str, *, model_hint: str = "", argument: str = "path") -> Path:
        """Write the vector for another tool, atomically (:mod:`tvlens.vectors.export`): ``format="gguf"``
        (llama.cpp's ``--control-vector`` and repeng's ``ControlVector.import_gguf``; ``model_hint``: its
        ``controlvector.model_hint``, e.g. ``"llama"``) or ``"steering-vectors"`` (a layer dict, also applied by a
        plain ``transformers`` forward hook). Each tool adds to a decoder block's output: ``resid_pre`` of layer
        ``l`` is block ``l − 1``'s output, ``resid_post`` of ``l`` block ``l``'s."""
        from tvlens.vectors.export import FORMATS, export_gguf, export_steering_vectors

        if format not in FORMATS:
            raise ValueError(f"format={format!r}: expected one of {FORMATS}")
        if format == "gguf":
            return export_gguf(self, path, model_hint, argument)
        return export_steering_vectors(self, path, argument)

    @classmethod
    def load(cls, path: str | os.PathLike, model: HookedModel | None = None, strict: bool = True) -> TaskVector:
        """Read a vector written by :meth:`save`.

        Args:
            path: the ``.safetensors`` file.
            model: if given, the vector is checked against this model's fingerprint and moved to
                its device and dtype.
            strict: a fingerprint mismatch raises (``True``) or warns (``False``).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path={str(path)!r}: no such task-vector file")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                if "tvlens_task_vector" not in header:
                    raise ValueError("no tvlens metadata in its header")
                meta = json.loads(header["tvlens_task_vector"])
                tensors = {f"site_{i}": f.get_tensor(f"site_{i}") for i in range(len(meta["sites"]))}
            for name, expected in (meta.get("checksums") or {}).items():
                if name not in tensors or _checksum(tensors[name]) != expected:
                    raise ValueError(f"the numbers of {name} do not match the checksum written with them; "
                                     "the file was damaged after it was saved")
            tv = cls(
                {Site.from_dict(s): tensors[f"site_{i}"] for i, s in enumerate(meta["sites"])},
                mode=meta["mode"], scale=meta["scale"], method=meta["method"], task=meta.get("task"),
                fingerprint=meta.get("fingerprint"), hyperparameters=meta.get("hyperparameters") or {},
                history=meta.get("history") or [],
            )
        except KeyError as error:
            raise ValueError(f"path={str(path)!r}: not a valid tvlens task-vector file (its metadata lacks "
                             f"{error.args[0]!r})") from None
        except Exception as error:  # SafetensorError, JSON errors, bad shapes: one message naming the file
            raise ValueError(f"path={str(path)!r}: not a valid tvlens task-vector file: {first_line(error)}") from None
        made_by = tuple(int(x) for x in str(meta.get("tvlens_version", "0")).split(".")[:2] if x.isdigit())
        if tv.seeds and made_by < PER_SEED_PARTITION:
            warnings.warn(f"path={str(path)!r}: made by tvlens {meta.get('tvlens_version')}, whose splits held out one "
                          "partition of the content for every seed; this version partitions it per seed, so held-out "
                          "scores of this vector may include queries it was trained on (re-make it to score it)",
                          stacklevel=2)
        if model is not None:
            tv.check_model(model, strict=strict)
            tv = tv.to(device=model.device, dtype=model.dtype)
            for intervention in tv.interventions():
                intervention.validate_for(model)
        return tv

    def check_model(self, model: HookedModel, strict: bool = True) -> None:
        """Raise (or warn, ``strict=False``) if this vector was made on another model."""
        if self.fingerprint is None:
            return
        theirs = model.fingerprint()
        if theirs != self.fingerprint:
            differ = sorted(k for k in set(theirs) | set(self.fingerprint) if theirs.get(k) != self.fingerprint.get(k))
            message = (f"this task vector was made on another model: fingerprints differ in {differ} "
                       f"(vector: {[self.fingerprint.get(k) for k in differ]}, "
                       f"model: {[theirs.get(k) for k in differ]})")
            if strict:
                raise ValueError(f"{message}; to use it anyway pass strict=False (command line: --allow-other-model)")
            pair = (self.fingerprint.get("weights_sha256"), theirs["weights_sha256"])
            if pair not in _WARNED_PAIRS:  # once per (made-on, used-on) pair of models, not on every call
                _WARNED_PAIRS.add(pair)
                warnings.warn(f"{message}; using it anyway", stacklevel=3)

    def __repr__(self) -> str:
        sites = ", ".join(f"L{s.layer}/{s.hook}@{s.positions}" for s in self.vectors)
        return f"TaskVector(method={self.method!r}, mode={self.mode!r}, scale={self.scale}, sites=[{sites}])"
