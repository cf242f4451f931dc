"""``Splits``: held out means held out — the scored views of different splits share no query (symbolic families)
and no word pair (text tasks), streams of different seeds never coincide, and every split draws through one rule."""

from __future__ import annotations

import pytest
import torch

from tvlens import zoo
from tvlens.tasks import ContentBlock, LinearRegression, PermutationMixture, Splits, TextTasks
from tvlens.tasks.splits import BLOCKS

from ..hf_models import train_tokenizer


def _queries(batch) -> set[int]:
    return set(batch.zero_shot.inputs[:, 1].tolist())


def test_scored_views_of_the_splits_share_no_query():
    """perm-mix task 1, seed 0: the zero-shot views that are scored (and the ICL prompts' queries) of train, dev,
    test and validation are disjoint; test and shared score only, so they share their block."""
    task = zoo.task("perm-mix").single(1)
    splits = Splits(0)
    views = {name: splits.sample(task, name, 400, 16) for name in ("train", "dev", "test", "shared", "validation")}
    queries = {name: _queries(batch) for name, batch in views.items()}
    for a in ("train", "dev", "test", "validation"):
        for b in ("train", "dev", "test", "validation"):
            if a < b:
                assert not queries[a] & queries[b], (a, b)
    assert queries["test"] == queries["shared"]
    assert [len(queries[name]) for name in ("train", "dev", "test", "validation")] == [14, 7, 8, 3]
    for name, batch in views.items():  # the ICL prompt's query is the zero-shot view's, never a demonstration
        assert torch.equal(batch.inputs[:, -2], batch.zero_shot.inputs[:, 1])
        demos = batch.inputs[:, 1:-2:4]
        assert not (demos == batch.inputs[:, -2:-1]).any(), name


def test_each_seed_partitions_the_queries_its_own_way():
    """Seeds 0-5 on perm-mix task 1: each seed's test block is 8 query symbols, disjoint from its own train, dev
    and validation blocks; the blocks differ between seeds, and over the seeds nearly every symbol is scored."""
    task = zoo.task("perm-mix").single(1)
    tests = []
    for seed in range(6):
        splits = Splits(seed)
        blocks = {name: set(splits.block(name).items(task.n_symbols, salt=1).tolist())
                  for name in ("train", "dev", "test", "validation")}
        assert sorted(set().union(*blocks.values())) == list(range(task.n_symbols))
        assert sum(len(b) for b in blocks.values()) == task.n_symbols  # disjoint
        assert _queries(splits.sample(task, "test", 400, 16)) == blocks["test"] and len(blocks["test"]) == 8
        tests.append(frozenset(blocks["test"]))
    assert len(set(tests)) == len(tests)
    assert len(set().union(*tests)) >= 24
    # each task of a family has its own block: seed 0's test queries of perm-mix tasks 0-7
    per_task = [frozenset(_queries(Splits(0).sample(zoo.task("perm-mix").single(t), "test", 400, 4))) for t in range(8)]
    assert all(len(q) == 8 for q in per_task) and len(set(per_task)) == 8
    mixed = Splits(0).sample(zoo.task("perm-mix"), "test", 400, 4)  # a mixture: each prompt from its task's block
    assert all(int(q) in per_task[int(t)] for q, t in zip(mixed.zero_shot.inputs[:, 1], mixed.task_ids))


def test_a_vector_is_scored_only_with_the_seed_it_was_made_with():
    """evaluate refuses (one line, before any prompt is drawn) a vector made with seed 0 on seed 1's held-out
    prompts of a partitioned family, a composed vector keeps its parts' seeds, and regression (fresh functions) or a
    hand-made vector passes."""
    from tvlens import evaluate
    from tvlens.vectors import TaskVector

    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    made = TaskVector.single(torch.zeros(model.d_model), 1, hyperparameters={"seed": 0})
    assert made.seeds == {0} and (made + made * 2).seeds == {0}
    assert (made + TaskVector.single(torch.zeros(model.d_model), 1, hyperparameters={"seed": 3})).seeds == {0, 3}
    with pytest.raises(ValueError, match=r"^seed=1: the vector was made with seed 0, whose partition of the queries "
                                         r"differs .*; expected seed=0$"):
        evaluate(model, task, "injected", made, seed=1, progress=False)
    assert evaluate(model, task, "injected", made, seed=0, n_prompts=8, progress=False).mean >= 0
    hand_made = TaskVector.single(torch.zeros(model.d_model), 1)
    assert hand_made.seeds == frozenset()
    assert evaluate(model, task, "injected", hand_made, seed=1, n_prompts=8, progress=False).mean >= 0
    Splits(1).check_made_with(made, LinearRegression(d_input=3))  # no partition: the stream separates the splits


def test_text_splits_share_no_word_pair():
    task = TextTasks(("antonyms",), tokenizer=train_tokenizer()).single(0)
    splits = Splits(0)
    pairs = {name: {pair for prompt in splits.sample(task, name, 60, 3).examples for pair in prompt}
             for name in ("train", "dev", "test", "validation")}
    for a in pairs:
        for b in pairs:
            if a < b:
                assert not pairs[a] & pairs[b], (a, b)
    everything = set(task.tasks[0].pairs)
    assert all(p <= everything for p in pairs.values())


def test_split_streams_are_distinct_over_seeds_and_names():
    seeds = {(s, name): Splits(s).of(name) for s in range(100) for name in Splits.names}
    assert len(set(seeds.values())) == len(seeds)
    assert Splits(0).test != Splits(2).train and Splits(1).dev != Splits(0).test  # the old seed + offset collisions
    assert Splits(3).training == 3 + 7919  # the zoo's training stream is unchanged (its recipes reproduce)


def test_a_split_draws_through_one_rule():
    task = PermutationMixture(n_symbols=8, n_perms=2)
    splits = Splits(5)
    assert torch.equal(splits.sample(task, "dev", 3, 2).inputs,
                       task.sample(3, 2, seed=splits.dev, block=splits.block("dev")).inputs)
    assert splits.block("aside") is None and splits.block("training") is None
    assert set(BLOCKS) == set(Splits.names)
    regression = LinearRegression(d_input=3)  # fresh functions: the stream alone separates the splits
    assert torch.equal(splits.sample(regression, "test", 4, 2).inputs, regression.sample(4, 2, seed=splits.test).inputs)
    with pytest.raises(ValueError, match=r"split='val': expected one of \['train', 'dev'"):
        splits.of("val")
    with pytest.raises(TypeError, match=r"seed='1': expected an int"):
        Splits("1")


def test_content_blocks_partition_the_items():
    blocks = [ContentBlock(i, (0.5, 0.2, 0.2, 0.1), seed=3).items(32) for i in range(4)]
    assert sorted(torch.cat(blocks).tolist()) == list(range(32)) and [len(b) for b in blocks] == [16, 6, 7, 3]
    assert [len(ContentBlock(i, (0.5, 0.2, 0.2, 0.1), seed=3).items(4)) for i in range(4)] == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="3 items cannot be split into 4 disjoint blocks"):
        ContentBlock(0, (0.5, 0.2, 0.2, 0.1), seed=3).items(3)
    with pytest.raises(ValueError, match="fractions="):
        ContentBlock(0, (0.5, 0.6), seed=0)


def test_a_large_family_is_measured_on_a_sample_drawn_by_the_seed():
    """Splits.tasks: every task of a family that fits, else a sorted sample without replacement that moves with the
    seed; the ledger's subjects read their tasks through it (perm-mix-32: 8 of 32; perm-mix: all 8; regression:
    groups 0..n-1)."""
    from tvlens.subjects import subject

    assert Splits(0).tasks(8, 8) == tuple(range(8)) and Splits(5).tasks(2, 8) == (0, 1)
    samples = {Splits(seed).tasks(32, 8) for seed in range(5)}
    assert len(samples) == 5
    for sample in samples:
        assert len(set(sample)) == 8 and list(sample) == sorted(sample) and all(0 <= t < 32 for t in sample)
    assert samples != {tuple(range(8))}
    assert subject("perm-mix-32").task_ids(8, 3) == Splits(3).tasks(32, 8)
    assert subject("perm-mix").task_ids(8, 3) == tuple(range(8))
    assert subject("linear-regression").task_ids(8, 3) == tuple(range(8))
    with pytest.raises(ValueError, match=r"n=0"):
        Splits(0).tasks(32, 0)
