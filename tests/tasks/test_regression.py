"""Regression task families: layout, functions checked independently, distribution shifts."""

from __future__ import annotations

import pytest
import torch

from tvlens.tasks import (
    DecisionTreeRegression,
    LinearRegression,
    ReLUNetRegression,
    SinusoidRegression,
    SparseLinearRegression,
    task_from_dict,
)

FAMILIES = [LinearRegression(d_input=4), SparseLinearRegression(d_input=6, sparsity=2), SinusoidRegression(d_input=4),
            ReLUNetRegression(d_input=3, hidden=7), DecisionTreeRegression(d_input=5, depth=3)]


@pytest.mark.parametrize("task", FAMILIES, ids=lambda t: t.name)
def test_layout(task):
    batch = task.sample(5, 4, seed=0)
    d = task.d_input
    assert batch.inputs.shape == (5, 9, d)
    # y tokens are [y, 0, ..., 0] and carry the answers of the preceding x
    assert torch.all(batch.inputs[:, 1::2, 1:] == 0)
    assert torch.equal(batch.inputs[:, 1::2, 0], batch.answer_targets[:, :-1])
    assert batch.answer_positions[0].tolist() == [0, 2, 4, 6, 8]
    assert torch.equal(batch.zero_shot.inputs[:, 0], batch.inputs[:, -1])
    assert torch.equal(batch.zero_shot.targets, batch.targets)
    assert batch.label_set is None and batch.kind == "regression"
    assert task_from_dict(task.to_dict()) == task


def test_linear_answers_are_a_linear_function_of_inputs():
    """With n_shots >= D the demonstrations determine w: solving them predicts the query exactly."""
    batch = LinearRegression(d_input=4).sample(8, 6, seed=1)
    x = batch.inputs[:, 0::2]  # [b, 7, d]
    y = batch.answer_targets
    w = torch.linalg.lstsq(x[:, :-1], y[:, :-1, None]).solution[..., 0]
    torch.testing.assert_close(torch.einsum("bd,bd->b", x[:, -1], w), batch.targets, atol=1e-4, rtol=1e-4)


def test_sparse_linear_uses_few_coordinates():
    task = SparseLinearRegression(d_input=6, sparsity=2)
    params = task.draw_functions(50, torch.Generator().manual_seed(0))
    assert torch.all((params["w"] != 0).sum(-1) == 2)


def test_decision_tree_matches_a_recursive_walk():
    task = DecisionTreeRegression(d_input=4, depth=3)
    params = task.draw_functions(3, torch.Generator().manual_seed(2))
    x = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(3))
    got = task.apply(params, x)
    for b in range(3):
        for m in range(6):
            node = 0
            for _ in range(3):
                node = 2 * node + (2 if x[b, m, params["coords"][b, node]] > 0 else 1)
            assert got[b, m] == params["leaves"][b, node - 7]


def test_orthogonal_query_is_orthogonal_to_demonstrations():
    batch = LinearRegression(d_input=8, orthogonal_query=True).sample(6, 5, seed=0)
    x = batch.inputs[:, 0::2]
    dots = torch.einsum("bkd,bd->bk", x[:, :-1], x[:, -1])
    assert dots.abs().max() < 1e-4
    with pytest.raises(ValueError, match=r"expected n_shots <= 7"):
        LinearRegression(d_input=8, orthogonal_query=True).sample(2, 8)


def test_noise_only_on_demonstrations():
    clean = LinearRegression(d_input=4).sample(64, 6, seed=5)
    noisy = LinearRegression(d_input=4, noise_std=0.5).sample(64, 6, seed=5)
    x = noisy.inputs[:, 0::2]
    assert torch.equal(noisy.inputs[:, 0::2], clean.inputs[:, 0::2])
    assert torch.equal(noisy.targets, clean.targets)
    residual = noisy.answer_targets[:, :-1] - clean.answer_targets[:, :-1]
    assert 0.4 < residual.std() < 0.6
    assert x.shape[1] == 7


def test_skewed_inputs_have_decaying_variance():
    x = LinearRegression(d_input=6, x_distribution="skewed").sample(4000, 0, seed=0).inputs[:, 0]
    var = x.var(0)
    assert var[0] > 3 * var[-1]
    assert abs(var.sum().item() - 6) < 0.5


def test_errors():
    with pytest.raises(ValueError, match=r"x_distribution='uniform'"):
        LinearRegression(x_distribution="uniform")
    with pytest.raises(ValueError, match=r"sparsity=9: expected 1 <= sparsity <= d_input=4"):
        SparseLinearRegression(d_input=4, sparsity=9)
    with pytest.raises(ValueError, match=r"task_ids given but LinearRegression is a continuous family"):
        LinearRegression().sample(2, task_ids=torch.tensor([0, 1]))
