"""Symbolic task families: prompt layout, answers, zero-shot views, seeding, errors."""

from __future__ import annotations

import pytest
import torch

from tvlens.tasks import ModularAffine, PermutationMixture, TokenOffset, task_from_dict

FAMILIES = [PermutationMixture(n_symbols=12, n_perms=5, seed=1), TokenOffset(n_symbols=12, offsets=(1, 3, 5)),
            ModularAffine(n_symbols=13, n_maps=4, seed=2)]


def reference_answer(task, k: int, x: int) -> int:
    """The task's map written out independently for one symbol."""
    if isinstance(task, PermutationMixture):
        return int(task.permutations[k, x])
    if isinstance(task, TokenOffset):
        return (x + task.offsets[k]) % task.n_symbols
    a, b = (int(c) for c in task._coef[k])
    return (a * x + b) % task.n_symbols


@pytest.mark.parametrize("task", FAMILIES, ids=lambda t: t.name)
@pytest.mark.parametrize("n_shots", [0, 1, 5])
def test_prompt_layout_and_answers(task, n_shots):
    batch = task.sample(6, n_shots, seed=3)
    assert batch.inputs.shape == (6, 4 * n_shots + 3)
    for b in range(6):
        row, k = batch.inputs[b].tolist(), int(batch.task_ids[b])
        assert row[0] == task.bos and row[-1] == task.arrow
        xs = row[1::4]
        ys = row[3::4]
        assert all(t == task.arrow for t in row[2::4])
        assert all(t == task.sep for t in row[4::4])
        assert len(set(xs)) == len(xs), "inputs within a prompt are distinct"
        assert ys == [reference_answer(task, k, x) for x in xs[:-1]]
        assert int(batch.targets[b]) == reference_answer(task, k, xs[-1])
        # each answer position is the arrow after its x, and its target is the answer
        for pos, target in zip(batch.answer_positions[b].tolist(), batch.answer_targets[b].tolist()):
            assert row[pos] == task.arrow and target == reference_answer(task, k, row[pos - 1])
    zero = batch.zero_shot
    assert zero.inputs.shape == (6, 3) and zero.n_shots == 0
    assert torch.equal(zero.inputs[:, 1], batch.inputs[:, -2])
    assert torch.equal(zero.targets, batch.targets)
    assert torch.equal(zero.query_positions, torch.full((6,), 2))


def test_seeding_fixes_prompts_and_family():
    task = PermutationMixture(seed=4)
    assert torch.equal(task.sample(5, 3, seed=9).inputs, task.sample(5, 3, seed=9).inputs)
    assert not torch.equal(task.sample(5, 3, seed=9).inputs, task.sample(5, 3, seed=10).inputs)
    assert torch.equal(PermutationMixture(seed=4).permutations, task.permutations)
    assert not torch.equal(PermutationMixture(seed=5).permutations, task.permutations)
    gen = torch.Generator().manual_seed(9)
    assert torch.equal(task.sample(5, 3, generator=gen).inputs, task.sample(5, 3, seed=9).inputs)


def test_permutations_are_permutations():
    perms = PermutationMixture(n_symbols=20, n_perms=6).permutations
    assert torch.equal(perms.sort(-1).values, torch.arange(20).expand(6, 20))


def test_forced_task_ids():
    task = TokenOffset(n_symbols=10)
    batch = task.sample(3, 2, seed=0, task_ids=torch.tensor([0, 4, 7]))
    assert batch.task_ids.tolist() == [0, 4, 7]
    assert ((batch.targets - batch.inputs[:, -2]) % 10).tolist() == [1, 5, 8]


@pytest.mark.parametrize("task", FAMILIES, ids=lambda t: t.name)
def test_to_dict_round_trip(task):
    again = task_from_dict(task.to_dict())
    assert again == task
    assert torch.equal(again.sample(4, 2, seed=1).inputs, task.sample(4, 2, seed=1).inputs)


def test_decode():
    task = PermutationMixture(n_symbols=8)
    assert task.decode(torch.tensor([8, 3, 9, 5, 10, 1, 9])) == "<bos> 3 → 5 ; 1 →"


def test_errors():
    task = PermutationMixture(n_symbols=8)
    with pytest.raises(ValueError, match=r"n_shots=8 is too many .* expected n_shots <= 7"):
        task.sample(2, 8)
    with pytest.raises(ValueError, match=r"n_prompts=0: expected an int >= 1"):
        task.sample(0)
    with pytest.raises(ValueError, match=r"n_shots=-1: expected an int >= 0"):
        task.sample(2, -1)
    with pytest.raises(ValueError, match=r"task_ids must lie in \[0, 8\)"):
        task.sample(2, 1, task_ids=torch.tensor([0, 8]))
    with pytest.raises(ValueError, match=r"task_ids has shape \(3,\); expected \(2,\)"):
        task.sample(2, 1, task_ids=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"pass either seed or generator"):
        task.sample(2, 1, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"n_symbols=1: expected an int >= 2"):
        PermutationMixture(n_symbols=1)
    with pytest.raises(ValueError, match=r"family='nope'"):
        task_from_dict({"family": "nope"})


def test_shorter_keeps_the_first_demonstrations_and_the_query():
    task = PermutationMixture(n_symbols=12, n_perms=3)
    batch = task.sample(4, 5, seed=2)
    short = task.shorter(batch, 2)
    assert torch.equal(short.inputs, torch.cat([batch.inputs[:, : 1 + 4 * 2], batch.inputs[:, -2:]], 1))
    assert short.n_shots == 2 and short.answer_positions[0].tolist() == [2, 6, 10]
    rows = torch.arange(4)[:, None]
    assert torch.all(short.inputs[rows, short.answer_positions] == task.arrow)
    assert torch.equal(short.answer_targets[:, -1], batch.targets)
    with pytest.raises(ValueError, match=r"n_shots=6: expected 1 <= n_shots <= 5"):
        task.shorter(batch, 6)


def test_shuffled_labels_permute_the_demonstration_answers_only():
    task = PermutationMixture(n_symbols=16, n_perms=2)
    batch = task.sample(8, 6, seed=4)
    corrupted = batch.with_shuffled_labels(torch.Generator().manual_seed(0))
    label_pos = batch.answer_positions[:, :-1] + 1
    rows = torch.arange(8)[:, None]
    # same multiset of labels, same inputs elsewhere, same query and target
    assert torch.equal(corrupted.inputs[rows, label_pos].sort(-1).values, batch.inputs[rows, label_pos].sort(-1).values)
    other = torch.ones_like(batch.inputs, dtype=torch.bool)
    other[rows, label_pos] = False
    assert torch.equal(corrupted.inputs[other], batch.inputs[other])
    assert torch.equal(corrupted.targets, batch.targets)
    assert not torch.equal(corrupted.inputs, batch.inputs)
    assert torch.equal(corrupted.answer_targets[:, :-1], corrupted.inputs[rows, label_pos])
    with pytest.raises(ValueError, match=r"at least 2 demonstrations"):
        task.sample(2, 1).with_shuffled_labels(torch.Generator())


def test_dummy_queries_are_neither_demonstrated_nor_the_query_and_demonstrations_end_at_the_last_separator():
    task = PermutationMixture(n_symbols=32, n_perms=4, seed=0)
    batch = task.sample(64, 16, seed=2)
    dummies = task.with_dummy_queries(batch, 2, seed=9)
    demonstrated = batch.inputs[:, 1 : 4 * 16 + 1 : 4]
    for d in dummies:
        assert torch.equal(d.inputs[:, :-2], batch.inputs[:, :-2]) and torch.equal(d.inputs[:, -1], batch.inputs[:, -1])
        assert not bool((d.inputs[:, -2:-1] == demonstrated).any()) and not bool((d.inputs[:, -2] == batch.inputs[:, -2]).any())
        assert torch.equal(d.targets, task.apply(batch.task_ids, d.inputs[:, -2:-1])[:, 0])
    assert not bool((dummies[0].inputs[:, -2] == dummies[1].inputs[:, -2]).any()), "distinct dummies per prompt"
    demos = task.demonstrations_only(batch)
    assert torch.equal(demos.inputs, batch.inputs[:, :-2]) and bool((demos.inputs[:, -1] == task.sep).all())
    assert bool((demos.query_positions == demos.inputs.shape[1] - 1).all())
    assert torch.equal(demos.targets, batch.inputs[:, 4 * 16 - 1])  # y_16, the last demonstrated answer
    with pytest.raises(ValueError, match=r"^k=16: a prompt has only 15 symbols that are neither demonstrated nor its "
                                         r"query; expected at least k"):
        task.with_dummy_queries(batch, 16)


def test_noisy_demonstrations_change_only_the_chosen_answers():
    task = TokenOffset(n_symbols=32, offsets=(1, 2, 3))
    batch = task.sample(40, 16, seed=1)
    noisy = task.with_noisy_demonstrations(batch, 0.25, seed=4)
    changed = noisy.inputs != batch.inputs
    assert bool((changed.sum(1) == 4).all())  # round(0.25 · 16) demonstrations per prompt
    answer_columns = torch.zeros_like(changed)
    answer_columns[:, 3 : 4 * 16 : 4] = True
    assert not bool((changed & ~answer_columns).any()), "only demonstrated answers change"
    assert torch.equal(noisy.targets, batch.targets) and torch.equal(noisy.inputs[:, -2:], batch.inputs[:, -2:])
    assert torch.equal(noisy.answer_targets[:, :16], noisy.inputs[:, 3 : 4 * 16 : 4])
    assert torch.equal(task.with_noisy_demonstrations(batch, 0.0).inputs, batch.inputs)
    with pytest.raises(ValueError, match=r"^share=1.5: expected the share of demonstrations to corrupt, in \[0, 1\]$"):
        task.with_noisy_demonstrations(batch, 1.5)
