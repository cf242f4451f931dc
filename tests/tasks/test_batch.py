"""``ICLBatch``'s two decisions every analysis reads through: the prompt view a vector is injected into
(``view``) and each row's value at its query (``at_query``)."""

from __future__ import annotations

import pytest
import torch

from tvlens.tasks import LinearRegression, PermutationMixture
from tvlens.tasks.base import check_base

TASK = PermutationMixture(n_symbols=12, n_perms=3, seed=1)


def test_at_query_reads_each_prompt_at_its_own_query():
    """Against a loop over prompts, for streams [batch, pos, d], copies stacked copy-major and attention
    patterns [batch, heads, query, key], with a different query position in every row (as left-padded text
    prompts have)."""
    import dataclasses

    batch = TASK.sample(5, 3, seed=0)
    positions = batch.answer_positions.clone()
    positions[:, -1] = torch.tensor([13, 2, 9, 5, 0])
    batch = dataclasses.replace(batch, answer_positions=positions)
    n, pos = len(batch), batch.n_positions
    x = torch.randn(n, pos, 7)
    expected = torch.stack([x[i, int(batch.query_positions[i])] for i in range(n)])
    torch.testing.assert_close(batch.at_query(x), expected, rtol=0, atol=0)
    tiled = torch.randn(3 * n, pos, 7)
    expected = torch.stack([tiled[i, int(batch.query_positions[i % n])] for i in range(3 * n)])
    torch.testing.assert_close(batch.at_query(tiled, copies=3), expected, rtol=0, atol=0)
    pattern = torch.randn(n, 4, pos, pos)
    expected = torch.stack([pattern[i, :, int(batch.query_positions[i])] for i in range(n)])
    torch.testing.assert_close(batch.at_query(pattern, dim=2), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=f"x has {n + 1} rows; expected {n} prompts × 1 copies"):
        batch.at_query(torch.zeros(n + 1, pos))
    with pytest.raises(ValueError, match="dim=0: expected a position axis"):
        batch.at_query(x, dim=0)


@pytest.mark.parametrize("task", [TASK, LinearRegression(d_input=3)], ids=lambda t: t.name)
def test_view_is_the_prompts_a_vector_is_injected_into(task):
    batch = task.sample(4, 3, seed=2)
    assert batch.view("icl") is batch and batch.view("zero_shot") is batch.zero_shot
    zero = batch.zero_shot
    assert zero.n_shots == 0 and zero.view("zero_shot") is zero  # a zero-shot batch is its own view
    with pytest.raises(ValueError, match="base='few_shot': expected 'zero_shot' or 'icl'"):
        batch.view("few_shot")


def test_a_batch_without_its_zero_shot_view_says_so():
    shuffled = TASK.sample(4, 3, seed=2).with_shuffled_labels(torch.Generator().manual_seed(0))
    assert shuffled.view("icl") is shuffled
    with pytest.raises(ValueError, match="base='zero_shot': this 3-shot batch has no zero-shot view"):
        shuffled.view("zero_shot")
    assert check_base("icl") == "icl"
    with pytest.raises(ValueError, match="base=None"):
        check_base(None)
