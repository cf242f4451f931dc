"""TL 3.x and 4.x give the same numbers: the installed line against a 3.x HookedTransformer's reference.

``tests/data/crossline.safetensors`` was written by ``tests/data/make_crossline_fixture.py`` under
TransformerLens 3.9 (``HookedTransformer``). Here the same weights are loaded into the installed
line's model — a 4.x ``TransformerBridge`` in the main CI venv, a 3.x ``HookedTransformer`` in the
second — and logits, activations and injected logits must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.data.make_crossline_fixture import NAMES, interventions
from tvlens import inject
from tvlens.models import HookedModel, ModelConfig

pytestmark = pytest.mark.crossline
FIXTURE = Path(__file__).parents[1] / "data" / "crossline.safetensors"


@pytest.fixture(scope="module")
def reference():
    with safe_open(str(FIXTURE), framework="pt") as f:
        data = {k: f.get_tensor(k) for k in f.keys()}
        config = ModelConfig.from_dict(json.loads(f.metadata()["config"]))
    return config, data


@pytest.fixture(scope="module")
def model(reference):
    config, data = reference
    model = HookedModel.from_config(config)
    model.load_tl_state_dict({k.removeprefix("weights/"): v for k, v in data.items() if k.startswith("weights/")})
    return model


def test_logits_agree(model, reference):
    _, ref = reference
    torch.testing.assert_close(model(ref["tokens"]), ref["logits"], atol=1e-5, rtol=1e-5)


def test_left_padded_logits_agree(model, reference):
    _, ref = reference
    mask = ref["mask"].bool()
    got = model(ref["tokens"], attention_mask=ref["mask"])
    torch.testing.assert_close(got[mask], ref["padded_logits"][mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_activations_agree(model, reference, name):
    _, ref = reference
    _, cache = model.run_with_cache(ref["tokens"], [name])
    torch.testing.assert_close(cache[name], ref[f"cache/{name}"], atol=1e-5, rtol=1e-5)


def test_injected_logits_agree(model, reference):
    _, ref = reference
    mask = ref["mask"].bool()
    with inject(model, *interventions(ref["vectors"])):
        torch.testing.assert_close(model(ref["tokens"]), ref["injected"], atol=1e-5, rtol=1e-5)
        padded = model(ref["tokens"], attention_mask=ref["mask"])
    torch.testing.assert_close(padded[mask], ref["injected_padded"][mask], atol=1e-5, rtol=1e-5)
    assert model.attached_hooks() == 0


def test_weights_round_trip_exactly(model, reference):
    _, ref = reference
    state = model.tl_state_dict()
    for key, value in ref.items():
        if key.startswith("weights/"):
            assert torch.equal(state[key.removeprefix("weights/")], value), key
