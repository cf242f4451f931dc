"""The cached last-position path equals the full forward: loss and gradient of the vector (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tvlens import Intervention, inject
from tvlens.vectors.fast import SuffixRunner, supports_fast_path


def full_loss(model, inputs, mask, vectors, mode, targets):
    ivs = [Intervention(v, layer=layer, mode=mode) for layer, v in vectors.items() if layer < model.n_layers]
    if model.n_layers in vectors:
        ivs.append(Intervention(vectors[model.n_layers], layer=model.n_layers - 1, hook="resid_post", mode=mode))
    with inject(model, *ivs):
        logits = model(inputs, attention_mask=mask)[:, -1]
    return F.cross_entropy(logits, targets)


@pytest.mark.parametrize(
    ("mode", "layers"),
    # layer 3 = n_layers is the final stream (resid_post of the last block), which only takes "add"
    [("add", [1]), ("add", [0, 2]), ("add", [2, 3]), ("replace", [1]), ("replace", [0, 2])],
)
@pytest.mark.parametrize("base", ["zero_shot", "icl"])
def test_loss_and_gradient_match_full_forward(tiny_model64, small_task, mode, layers, base):
    model = tiny_model64
    batch = small_task.sample(5, 3, seed=0)
    prompts = batch.zero_shot if base == "zero_shot" else batch
    gen = torch.Generator().manual_seed(1)
    vectors = {layer: torch.randn(model.d_model, generator=gen, dtype=torch.float64).requires_grad_(True)
               for layer in layers}
    runner = SuffixRunner(model, prompts.inputs, min(layers))
    fast = F.cross_entropy(runner.logits(vectors, mode=mode), prompts.targets)
    # (with replace, a vector replaced again at a later layer gets no gradient on either path)
    fast_grads = torch.autograd.grad(fast, list(vectors.values()), allow_unused=True, materialize_grads=True)
    full = full_loss(model, prompts.inputs, None, vectors, mode, prompts.targets)
    full_grads = torch.autograd.grad(full, list(vectors.values()), allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)
    for a, b in zip(fast_grads, full_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_left_padded_prompts_and_row_subsets(tiny_model64):
    model = tiny_model64
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(model.d_vocab, (4, 8), generator=gen)
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0
    mask[3, :5] = 0
    v = torch.randn(model.d_model, generator=gen, dtype=torch.float64)
    runner = SuffixRunner(model, tokens, 1, attention_mask=mask)
    with inject(model, Intervention(v, layer=1)):
        full = model(tokens, attention_mask=mask)[:, -1]
    torch.testing.assert_close(runner.logits({1: v}), full, atol=1e-10, rtol=0)
    rows = torch.tensor([3, 1])
    torch.testing.assert_close(runner.logits({1: v}, rows=rows), full[rows], atol=1e-10, rtol=0)


def test_final_stream_key_is_resid_post_of_last_block(tiny_model64, small_task):
    model = tiny_model64
    prompts = small_task.sample(4, 2, seed=2).zero_shot
    v = torch.randn(model.d_model, dtype=torch.float64)
    runner = SuffixRunner(model, prompts.inputs, 2)
    with inject(model, Intervention(v, layer=model.n_layers - 1, hook="resid_post")):
        full = model(prompts.inputs)[:, -1]
    torch.testing.assert_close(runner.logits({model.n_layers: v}), full, atol=1e-10, rtol=0)


def test_regression_model(backend, regression_task):
    from tests.conftest import tiny_config
    from tvlens.models import HookedModel

    model = HookedModel.from_config(tiny_config(d_vocab=1, d_input=5), backend=backend, dtype=torch.float64)
    prompts = regression_task.sample(4, 3, seed=0)
    v = torch.randn(model.d_model, dtype=torch.float64)
    runner = SuffixRunner(model, prompts.inputs.double(), 1)
    with inject(model, Intervention(v, layer=1)):
        full = model(prompts.inputs.double())[:, -1]
    torch.testing.assert_close(runner.logits({1: v}), full, atol=1e-8, rtol=0)


def test_supported_and_errors(tiny_model):
    assert supports_fast_path(tiny_model)
    runner = SuffixRunner(tiny_model, torch.zeros(2, 5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"layers \[1\] are outside this runner's range \[2, 3\]"):
        runner.logits({1: torch.zeros(32)})
