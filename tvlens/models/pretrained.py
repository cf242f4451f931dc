"""Pretrained language models (GPT-2, Pythia, Llama, Qwen …) through TransformerLens.

On TransformerLens 4.x a Hugging Face model is wrapped by ``TransformerBridge.boot_transformers``
(hub names and local directories; an already loaded ``transformers`` model via ``hf_model``); on
3.x by ``HookedTransformer.from_pretrained`` for TL's official names, and for local directories by
TL's own config and weight converters. These functions build the TransformerLens model;
:meth:`tvlens.models.HookedModel.from_pretrained` and :meth:`~tvlens.models.HookedModel.from_hf` wrap it,
and every tvlens method runs on the result unchanged.

Placement: ``device`` defaults to ``"cuda"`` when available. A model larger than one GPU is spread
by TransformerLens' own placement (``n_devices``) or ``transformers``' ``device_map`` (4.x), never by
tvlens. A hub name is downloaded by ``transformers`` only where the network allows it; with
``HF_HUB_OFFLINE=1`` (or no network) a model that is not on disk is one clear error that says how to
make it available offline.
"""

from __future__ import annotations

import contextlib
import copy as copying
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tvlens.models.tl_version import transformer_lens_line

_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check(dtype: torch.dtype) -> None:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype}: expected one of {list(_DTYPES)}")


def _missing(name: str, reason: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"model {name!r} is not available on this machine ({reason}). To use it offline: on a machine with "
        f"internet run `huggingface-cli download {name} --local-dir DIR` (or `save_pretrained(DIR)`), copy DIR here "
        "and pass its path — or point HF_HOME at a copied Hugging Face cache"
    )


def _looks_like_path(name: str) -> bool:
    """Whether ``name`` is meant as a local path rather than a hub id (``org/model``)."""
    path = Path(name).expanduser()
    if name.startswith((".", "~", os.sep)) or path.is_absolute() or "\\" in name or name.count("/") > 1:
        return True
    return "/" in name and path.parent.is_dir()  # "models/foo" where ./models exists


#: Files ``save_pretrained`` writes: the weights (one of) and the tokenizer (one of).
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


#: The sizes of a ``config.json`` that must be positive integers where present (GPT-2, GPT-NeoX, Llama, … names).
_SIZE_KEYS = ("n_layer", "n_embd", "n_head", "n_positions", "n_ctx", "n_inner", "vocab_size", "hidden_size",
              "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
              "max_position_embeddings", "head_dim")


def check_model_dir(name: str | os.PathLike, argument: str = "name_or_path") -> dict[str, Any]:
    """Check a local model directory before anything loads it, and return its ``config.json``.

    A directory written by ``model.save_pretrained(DIR)`` and ``tokenizer.save_pretrained(DIR)`` has a
    readable ``config.json`` naming its architecture, a weights file and tokenizer files. Each missing
    piece is a one-line error naming the directory and the piece (never a suggestion to download).

    Raises:
        FileNotFoundError: ``config.json``, the weights or the tokenizer files are missing.
        ValueError: ``config.json`` is not a JSON object naming ``model_type`` or ``architectures``.
    """
    directory = Path(name)
    shown = f"{argument}={str(name)!r}"
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{shown}: a directory without config.json; expected a directory written by "
                                "save_pretrained (model and tokenizer)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{shown}: config.json is not readable JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(config, dict) or not (config.get("model_type") or config.get("architectures")):
        raise ValueError(f"{shown}: config.json names no model_type or architectures; expected the config "
                         "save_pretrained writes")
    sizes = [(key, config[key]) for key in _SIZE_KEYS if config.get(key) is not None]
    bad = [(key, value) for key, value in sizes if isinstance(value, bool) or not isinstance(value, int) or value < 1]
    if bad:
        key, value = bad[0]
        raise ValueError(f"{shown}: config.json has {key}={value!r}; expected a positive integer (the config "
                         "save_pretrained writes)")
    if not any((directory / f).is_file() for f in _WEIGHT_FILES):
        raise FileNotFoundError(f"{shown}: no weights ({', '.join(_WEIGHT_FILES[::2])}); run "
                                "model.save_pretrained(DIR) there")
    if not any((directory / f).is_file() for f in _TOKENIZER_FILES):
        raise FileNotFoundError(f"{shown}: no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}, …); run "
                                "tokenizer.save_pretrained(DIR) there")
    return config


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _in_cache(name: str) -> bool:
    """Whether the hub model's config is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo id, or no huggingface_hub
        return False


def _tl3_local(path: str, hf_model: Any, tokenizer: Any, dtype: torch.dtype, device: str) -> Any:
    """A TL 3.x ``HookedTransformer`` from a local directory (TL's own converters, no processing)."""
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    config = loading.convert_hf_model_config(path)
    cfg = HookedTransformerConfig(**{**config, "device": device, "dtype": dtype})
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    state = loading.get_pretrained_state_dict(path, cfg, hf_model=hf_model, dtype=dtype)
    model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                      fold_value_biases=False)
    return model.to(device)


def boot_pretrained(
    name_or_path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | None = None,
    n_devices: int | None = None,
    device_map: str | dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """A Hugging Face causal LM (hub name already in the local cache, or a local directory) as a
    TransformerLens model, and its tokenizer.

    Args:
        name_or_path: e.g. ``"gpt2"``, ``"EleutherAI/pythia-160m"`` or a directory written by
            ``save_pretrained`` (model and tokenizer).
        dtype: ``float32``, ``bfloat16``, ``float16`` (or ``float64``).
        device: default ``"cuda"`` when available, else ``"cpu"``.
        n_devices: spread the layers over this many GPUs (TransformerLens' placement).
        device_map: ``transformers``' ``device_map`` (TL 4.x only), e.g. ``"auto"``.
        **kwargs: passed to ``TransformerBridge.boot_transformers`` / ``HookedTransformer.from_pretrained``.

    Raises:
        FileNotFoundError: the model is neither a local directory nor in the local Hugging Face
            cache (the message says how to make it available offline).
    """
    _check(dtype)
    name = str(name_or_path)
    device = device or default_device()
    local = Path(name).is_dir()
    if not local and _looks_like_path(name):
        # a path that is not there: say so, instead of trying (and failing on) the Hugging Face Hub
        raise FileNotFoundError(f"name_or_path={name!r}: no such directory; expected a directory written by "
                                "save_pretrained (model and tokenizer) or a Hugging Face model name")
    if local:
        check_model_dir(name)
    if not local and _offline() and not _in_cache(name):
        # without this check transformers retries the network for a long while before failing
        raise _missing(name, "not a local directory, not in the Hugging Face cache, and HF_HUB_OFFLINE is set")
    try:
        if transformer_lens_line() >= 4:
            from transformer_lens.model_bridge import TransformerBridge

            placement = {k: v for k, v in (("n_devices", n_devices), ("device_map", device_map)) if v is not None}
            model = TransformerBridge.boot_transformers(name, device=None if device_map else device, dtype=dtype,
                                                        **placement, **kwargs)
        else:
            if device_map is not None:
                raise ValueError("device_map needs TransformerLens 4.x; on 3.x use n_devices")
            if local:
                from transformer_lens import HookedTransformer  # noqa: F401  (TL before transformers: import order)
                from transformers import AutoModelForCausalLM, AutoTokenizer

                hf_model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype)
                model = _tl3_local(name, hf_model, AutoTokenizer.from_pretrained(name), dtype, device)
            else:
                from transformer_lens import HookedTransformer

                model = HookedTransformer.from_pretrained_no_processing(name, device=device, dtype=dtype,
                                                                        n_devices=n_devices or 1, **kwargs)
    except OSError as error:
        if local:  # the directory was checked: a read error there, not a missing download
            raise OSError(f"name_or_path={name!r}: cannot load it ({str(error).splitlines()[0][:160]})") from None
        raise _missing(name, f"{type(error).__name__}: {str(error).splitlines()[0][:160]}") from error
    except (ValueError, KeyError, NotImplementedError) as error:  # e.g. an architecture nobody converts
        text = str(error.args[0] if isinstance(error, KeyError) and error.args else error).strip()
        raise ValueError(f"name_or_path={name!r}: TransformerLens cannot load it "
                         f"({' '.join(text.split())[:200] or type(error).__name__})") from None
    except RuntimeError as error:
        if not local:
            raise
        text = " ".join(str(error).split())[:200] or type(error).__name__
        if "ignore_mismatched_sizes" in text or "size mismatch" in text:  # transformers' report is in its log
            raise ValueError(f"name_or_path={name!r}: its weights do not fit its config.json (tensor shapes differ "
                             "from the sizes config.json names); expected the config.json save_pretrained wrote "
                             "beside these weights") from None
        raise ValueError(f"name_or_path={name!r}: cannot load it ({text})") from None
    return model, getattr(model, "tokenizer", None)


def boot_hf(model: Any, tokenizer: Any, *, dtype: torch.dtype | None = None, copy: bool = True) -> Any:
    """An already loaded ``transformers`` causal LM as a TransformerLens model (tvlens keeps ``tokenizer``).

    TransformerLens 4.x wraps the model it is given in place: its blocks become TransformerLens
    modules and its parameters are frozen, after which ``save_pretrained`` fails. So by default
    tvlens wraps a **copy** and the caller's model stays as it was. (TransformerLens 3.x copies
    the weights into its own ``HookedTransformer`` and never changes the model.)

    Args:
        model: a ``transformers`` causal LM.
        tokenizer: its tokenizer; one built in memory (never saved) works too.
        dtype: compute dtype (default: the model's).
        copy: ``True`` (default) wraps a deep copy (twice the weights in memory while both live);
            ``False`` wraps ``model`` itself, which on 4.x is then **changed in place** (TransformerLens
            blocks, frozen parameters, no ``save_pretrained``) — for models too large to hold twice.
    """
    if not hasattr(model, "config") or not hasattr(model, "forward"):
        raise TypeError(f"model: expected a transformers PreTrainedModel, got {type(model).__name__}")
    if not isinstance(copy, bool):
        raise TypeError(f"copy={copy!r}: expected True (wrap a copy) or False (change the model in place)")
    dtype = dtype or next(model.parameters()).dtype
    _check(dtype)
    device = str(next(model.parameters()).device)
    name = getattr(model.config, "name_or_path", "") or model.config.model_type
    if copy:
        model = copying.deepcopy(model)
    if next(model.parameters()).dtype != dtype:
        # TransformerLens 4.x wraps a given model in its own dtype, whatever dtype it is asked for
        model = model.to(dtype)
    if transformer_lens_line() >= 4:
        from transformer_lens.model_bridge import TransformerBridge

        with _loadable(tokenizer) as boot_tokenizer:
            return TransformerBridge.boot_transformers(name, hf_model=model, tokenizer=boot_tokenizer, device=device,
                                                       dtype=dtype)
    if Path(name).is_dir():
        with _loadable(tokenizer) as boot_tokenizer:
            return _tl3_local(name, model, boot_tokenizer, dtype, device)
    if not getattr(model.config, "name_or_path", ""):
        # built in memory: TL 3.x's converters read a config directory, so give them one
        with tempfile.TemporaryDirectory(prefix="tvlens-config-") as directory:
            config = copying.deepcopy(model.config)
            config.architectures = config.architectures or [type(model).__name__]  # set only by save_pretrained
            if getattr(config, "n_positions", None) and getattr(config, "n_ctx", None) is None:
                config.n_ctx = config.n_positions  # TL 3.x's GPT-2 converter still reads this old field
            config.save_pretrained(directory)
            with _loadable(tokenizer) as boot_tokenizer:
                return _tl3_local(directory, model, boot_tokenizer, dtype, device)
    from transformer_lens import HookedTransformer

    with _loadable(tokenizer) as boot_tokenizer:
        return HookedTransformer.from_pretrained_no_processing(name, hf_model=model, tokenizer=boot_tokenizer,
                                                               device=device, dtype=dtype)


@contextlib.contextmanager
def _loadable(tokenizer: Any) -> Iterator[Any]:
    """``tokenizer``, or — when it was built in memory and has no ``name_or_path`` — the same tokenizer
    saved to a temporary directory and loaded back from there. TransformerLens re-loads a
    tokenizer by that name (to add a BOS token); tvlens itself keeps using the caller's tokenizer."""
    if tokenizer is None or "name_or_path" in (getattr(tokenizer, "init_kwargs", None) or {}):
        yield tokenizer
        return
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="tvlens-tokenizer-") as directory:
        tokenizer.save_pretrained(directory)
        yield AutoTokenizer.from_pretrained(directory)


__all__ = ["boot_hf", "boot_pretrained", "check_model_dir", "default_device"]
