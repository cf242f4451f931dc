"""Write tests/data/crossline.safetensors with TransformerLens 3.x (run it in a 3.x venv).

The file holds a tiny model's weights (TL layout), prompts, and what a 3.x ``HookedTransformer``
computes on them: logits, activations at canonical hook points, and logits with vectors
injected. ``tests/models/test_crossline.py`` checks that the installed line (a 4.x
``TransformerBridge`` in the main CI venv) computes the same numbers.

    .venv3/bin/python tests/data/make_crossline_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from tvlens import Intervention, inject
from tvlens.models import HookedModel, ModelConfig, transformer_lens_line

CONFIG = ModelConfig(n_layers=3, d_model=32, n_heads=4, d_vocab=19, n_ctx=32, seed=3)
NAMES = [
    "blocks.0.hook_resid_pre", "blocks.1.hook_resid_mid", "blocks.2.hook_resid_post",
    "blocks.1.attn.hook_z", "blocks.1.attn.hook_pattern", "blocks.2.hook_attn_out", "blocks.0.hook_mlp_out",
]


def interventions(v: torch.Tensor) -> list[Intervention]:
    return [Intervention(v[0], layer=1, positions="last"), Intervention(v[1], layer=2, positions=[0, 3], mode="replace")]


def main() -> None:
    if transformer_lens_line() != 3:
        raise SystemExit("run this with TransformerLens 3.x installed (the reference line)")
    model = HookedModel.from_config(CONFIG, backend="hooked_transformer")
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(CONFIG.d_vocab, (4, 12), generator=gen)
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0
    mask[2, :5] = 0
    vectors = torch.randn(2, CONFIG.d_model, generator=gen)
    logits, cache = model.run_with_cache(tokens, NAMES)
    padded_logits = model(tokens, attention_mask=mask)
    with inject(model, *interventions(vectors)):
        injected = model(tokens)
        injected_padded = model(tokens, attention_mask=mask)
    out = {f"weights/{k}": v for k, v in model.tl_state_dict().items()}
    out.update({"tokens": tokens, "mask": mask, "vectors": vectors, "logits": logits, "padded_logits": padded_logits,
                "injected": injected, "injected_padded": injected_padded})
    out.update({f"cache/{k}": v for k, v in cache.items()})
    out = {k: v.detach().contiguous() for k, v in out.items()}
    path = Path(__file__).with_name("crossline.safetensors")
    save_file(out, str(path), metadata={"config": json.dumps(CONFIG.to_dict())})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
