"""The metric of each task kind, checked against direct computations; the named splits' rule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tvlens.tasks import (
    Accuracy,
    LinearRegression,
    PermutationMixture,
    SquaredError,
    metric_for,
    metric_named,
)


def test_accuracy_scores_objective_loss_and_direction():
    metric = Accuracy()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=gen)
    targets = torch.tensor([0, 3, 3, 9, 1, 2])
    scores = metric.scores(logits, targets, None, label_set=torch.tensor([0, 1, 2, 3]))
    assert torch.equal(scores["accuracy"], (logits.argmax(-1) == targets).float())
    torch.testing.assert_close(scores["nll"], F.cross_entropy(logits, targets, reduction="none"))
    restricted = torch.tensor([0, 1, 2, 3])[logits[:, :4].argmax(-1)]
    assert torch.equal(scores["label_accuracy"], (restricted == targets).float())
    torch.testing.assert_close(metric.objective(logits, targets), -F.cross_entropy(logits.double(), targets,
                                                                                    reduction="none"))
    torch.testing.assert_close(metric.answer_score(logits, targets), logits.softmax(-1)[torch.arange(6), targets])
    torch.testing.assert_close(metric.training_loss(logits, targets), F.cross_entropy(logits, targets))
    assert metric.better(0.9, 0.8) and not metric.better(0.8, 0.9) and metric.best([0.2, 0.7, 0.7]) == 1


def test_squared_error_scores_objective_loss_and_direction():
    metric = SquaredError()
    prediction = torch.tensor([[1.0], [-2.0], [0.5]])
    targets = torch.tensor([0.0, -1.0, 0.5])
    assert torch.equal(metric.scores(prediction, targets, 4)["mse_per_dim"], torch.tensor([0.25, 0.25, 0.0]))
    assert torch.equal(metric.objective(prediction, targets), -torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    assert metric.training_loss(prediction, targets) == pytest.approx(2 / 3)
    assert metric.training_loss(prediction, targets, "huber") == pytest.approx(F.huber_loss(prediction[:, 0], targets))
    assert metric.better(0.1, 0.2) and metric.best([0.3, 0.1, 0.2]) == 1 and metric.sign == -1
    with pytest.raises(ValueError, match="d_input is needed"):
        metric.scores(prediction, targets, None)
    with pytest.raises(ValueError, match=r"loss='l1': expected 'auto', 'ce', 'mse' or 'huber'"):
        metric.training_loss(prediction, targets, "l1")


def test_a_task_and_its_batches_carry_their_metric():
    assert PermutationMixture(n_symbols=8, n_perms=2).metric is metric_for("symbolic")
    task = LinearRegression(d_input=3)
    batch = task.sample(4, 2, seed=0)
    assert task.metric is batch.metric is metric_named("mse_per_dim") and batch.d_input == 3
    with pytest.raises(ValueError, match=r"metric='error': expected one of \['accuracy', 'mse_per_dim'\]"):
        metric_named("error")


def test_register_task_refuses_a_taken_name():
    from tvlens.tasks import register_task

    with pytest.raises(ValueError, match=r"register_task: the name 'perm-mix' is taken by tvlens.tasks.symbolic"):
        @register_task
        class Impostor(PermutationMixture):
            name = "perm-mix"
    assert register_task(PermutationMixture) is PermutationMixture  # re-registering the same class is harmless
