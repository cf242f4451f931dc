"""Task vectors for the tools models are served and steered with: llama.cpp / repeng control vectors (GGUF),
steering-vectors' layer dict, and a plain ``transformers`` forward hook.

Each tool adds a vector to the **output of a decoder block** (the hidden states a Hugging Face decoder layer
returns), numbered from 0 like ``model.model.layers``. A tvlens site names the stream *entering* block ``l``
(``resid_pre``) or *leaving* it (``resid_post``), so::

    tvlens Site(layer=l, hook="resid_pre")   →  output of block l − 1     (l = 0, the embedding, has no block)
    tvlens Site(layer=l, hook="resid_post")  →  output of block l

The exported tensor is the site's vector times the task vector's ``scale`` (float32); several sites on one
block are summed (adding commutes). Only ``mode="add"`` on the residual stream can be exported: the tools add.

**GGUF** (:func:`export_gguf`): llama.cpp's control-vector file, which ``llama-cli --control-vector`` and
repeng's ``ControlVector.import_gguf`` read: ``general.architecture = "controlvector"``,
``controlvector.model_hint``, ``controlvector.layer_count`` and one float32 tensor ``direction.{k}`` per block
``k``. llama.cpp adds ``direction.k`` to block ``k``'s output **at every token**, from ``k = 1`` (``direction.0``
is refused by its loader), so a vector at one position (``"last"``) or at block 0's output cannot be exported
to it.

**steering-vectors** (:func:`export_steering_vectors`): a safetensors file of ``{"k": tensor}`` (block ``k``'s
output, steering-vectors' ``layer_type="decoder_block"``) whose header holds ``token_indices`` — ``null`` for
every token, ``[-1]`` for the last (a left-padded batch keeps each prompt's last token in the last column).
``docs/export.md`` shows how steering-vectors applies it, and the plain forward hook that applies it with
nothing but ``transformers`` (the hook the tests apply, matching tvlens' own injected logits to 1e-5).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file
from torch import Tensor

from tvlens._io import atomic_write

if TYPE_CHECKING:
    from tvlens.vectors.task_vector import TaskVector

FORMATS = ("gguf", "steering-vectors")


def block_outputs(tv: TaskVector, format: str) -> tuple[dict[int, Tensor], Any]:
    """The vectors added to each block's output ``{k: [d_model] float32}`` (scale applied, one block's sites
    summed) and the one position spec of the sites; a site the format cannot express is a one-line error."""
    if tv.mode != "add":
        raise ValueError(f"mode={tv.mode!r}: {format} adds a vector to a block's output; expected mode='add'")
    blocks: dict[int, Tensor] = {}
    positions = {json.dumps(site.to_dict()["positions"]) for site in tv.vectors}
    if len(positions) > 1:
        raise ValueError(f"positions: the sites are at {sorted(positions)}; {format} applies a file at one set of "
                         "positions, expected one for every site")
    for site, vector in tv.vectors.items():
        if site.hook not in ("resid_pre", "resid_post"):
            raise ValueError(f"hook={site.hook!r}: {format} adds to a block's output; expected a residual-stream site "
                             "('resid_pre' or 'resid_post')")
        k = site.layer - 1 if site.hook == "resid_pre" else site.layer
        if k < 0:
            raise ValueError(f"layer=0, hook='resid_pre': the stream entering block 0 is the embedding, not a block's "
                             f"output; {format} cannot add there (expected layer >= 1)")
        value = vector.detach().to("cpu", torch.float32) * float(tv.scale)
        blocks[k] = blocks[k] + value if k in blocks else value
    return dict(sorted(blocks.items())), next(iter(tv.vectors)).positions


def export_gguf(tv: TaskVector, path: str | os.PathLike, model_hint: str = "", argument: str = "path") -> Path:
    """Write ``tv`` as llama.cpp's control-vector GGUF (read by ``--control-vector`` and repeng), atomically."""
    import numpy as np

    blocks, positions = block_outputs(tv, "GGUF")
    if positions != "all":
        raise ValueError(f"positions={positions!r}: llama.cpp applies a control vector to every token; expected a "
                         "vector at positions='all' (make or learn it there)")
    if 0 in blocks:
        raise ValueError("a vector at block 0's output (layer=0, hook='resid_post' or layer=1, hook='resid_pre'): "
                         "llama.cpp steers blocks from 1; expected a later layer")

    try:
        import gguf
    except ImportError as error:
        raise ImportError("format='gguf' needs the gguf package: pip install 'tvlens[export]'") from error

    def write(tmp: Path) -> None:
        writer = gguf.GGUFWriter(str(tmp), "controlvector")
        writer.add_string("controlvector.model_hint", model_hint)
        writer.add_uint32("controlvector.layer_count", len(blocks))
        for k, vector in blocks.items():
            writer.add_tensor(f"direction.{k}", vector.numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return atomic_write(path, write, argument)


def export_steering_vectors(tv: TaskVector, path: str | os.PathLike, argument: str = "path") -> Path:
    """Write ``tv`` as steering-vectors' layer dict (block ``k``'s output → tensor) in a safetensors file whose
    header holds the ``token_indices`` to apply it at, atomically."""
    blocks, positions = block_outputs(tv, "steering-vectors")
    if positions == "all":
        token_indices = None
    elif positions == "last":
        token_indices = [-1]
    elif isinstance(positions, int) and positions < 0:
        token_indices = [positions]
    else:
        raise ValueError(f"positions={positions!r}: a layer dict is applied at the same columns of every prompt; "
                         "expected 'all', 'last' or a negative int (counted from the end, the same in a left-padded "
                         "batch)")
    tensors = {str(k): v.contiguous() for k, v in blocks.items()}
    header = {"format": "steering-vectors", "layer_type": "decoder_block", "token_indices": json.dumps(token_indices)}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header), argument)


__all__ = ["FORMATS", "block_outputs", "export_gguf", "export_steering_vectors"]
