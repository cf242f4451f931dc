"""Shared fixtures: tiny models on the installed TransformerLens line (and on every backend it offers)."""

from __future__ import annotations

import pytest
import torch

from tvlens.models import HookedModel, ModelConfig, transformer_lens_line
from tvlens.tasks import LinearRegression, PermutationMixture

torch.set_num_threads(2)


def available_backends() -> list[str]:
    """The installed line's own model: the 4.x ``TransformerBridge`` or the 3.x ``HookedTransformer``.

    (3.9 also ships an early bridge, but without ``start_at_layer`` or ``W_pos``: tvlens supports
    the bridge of the 4.x line.)
    """
    return ["bridge"] if transformer_lens_line() >= 4 else ["hooked_transformer"]


BACKENDS = available_backends()


@pytest.fixture(autouse=True)
def _seeded_global_rng():
    """Every test starts from the same global RNG state, so ``torch.randn`` in a test does not depend
    on which tests ran before it (or on how many random numbers they drew)."""
    torch.manual_seed(0)


def tiny_config(**overrides) -> ModelConfig:
    fields = dict(n_layers=3, d_model=32, n_heads=4, d_vocab=PermutationMixture(n_symbols=16).d_vocab, n_ctx=64, seed=0)
    fields.update(overrides)
    return ModelConfig(**fields)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def tiny_model(backend) -> HookedModel:
    """A 3-layer random token model (d_model 32) on each available backend."""
    return HookedModel.from_config(tiny_config(), backend=backend)


@pytest.fixture
def tiny_model64(backend) -> HookedModel:
    """The same model in float64, for exact comparisons."""
    return HookedModel.from_config(tiny_config(), backend=backend, dtype=torch.float64)


@pytest.fixture
def small_task() -> PermutationMixture:
    return PermutationMixture(n_symbols=16, n_perms=4, seed=0)


@pytest.fixture
def regression_model(backend) -> HookedModel:
    return HookedModel.from_config(tiny_config(d_vocab=1, d_input=5), backend=backend)


@pytest.fixture
def regression_task() -> LinearRegression:
    return LinearRegression(d_input=5)


@pytest.fixture(scope="session")
def trained_perm_model():
    """A 2-layer model meta-ICL-trained for ~10 s on 4 permutations of 16 symbols (4-shot prompts)."""
    from tvlens.training import TrainConfig, train

    task = PermutationMixture(n_symbols=16, n_perms=4, seed=0)
    backend = BACKENDS[0]
    model = HookedModel.from_config(ModelConfig(n_layers=2, d_model=32, n_heads=4, d_vocab=task.d_vocab, n_ctx=32),
                                    backend=backend)
    result = train(model, task, TrainConfig(steps=1000, batch_size=64, n_shots=4, lr=3e-3, eval_every=250),
                   progress=False, target=0.97)
    return model, task, result


@pytest.fixture(scope="session")
def tokenizer():
    """A byte-level BPE tokenizer trained on the built-in word pairs (tests/hf_models.py), shared by every test
    of the Hugging Face path (none changes it)."""
    from tests.hf_models import train_tokenizer

    return train_tokenizer()
