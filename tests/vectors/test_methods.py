"""Vanilla TV, function vectors, learned TV, head-weighted LTV, compare: checked against independent computations."""

from __future__ import annotations

import pytest
import torch

from tvlens import Intervention, evaluate, inject
from tvlens.tasks import Splits
from tvlens.vectors import (
    LearnConfig,
    TaskVector,
    compare,
    function_vector,
    head_weighted_task_vector,
    learn_task_vector,
    vanilla_task_vector,
)
from tvlens.vectors.function import average_indirect_effect, mean_head_outputs


@pytest.mark.parametrize("mode", ["add", "replace"])
def test_vanilla_vector_is_mean_query_state(tiny_model, small_task, mode):
    task = small_task.single(1)
    tv, result = vanilla_task_vector(tiny_model, task, 2, mode=mode, n_prompts=20, n_shots=3, seed=4)
    batch = Splits(4).sample(task, "train", 20, 3)  # extraction: the train split (its query block)
    name = tiny_model.hook_name(2)
    icl = torch.stack([tiny_model.run_with_cache(batch.inputs[i : i + 1], [name])[1][name][0, -1] for i in range(20)])
    expected = icl.mean(0)
    if mode == "add":
        zero = tiny_model.run_with_cache(batch.zero_shot.inputs, [name])[1][name][:, -1]
        expected = expected - zero.mean(0)
    torch.testing.assert_close(tv.vector(), expected, atol=1e-5, rtol=1e-5)
    assert tv.mode == mode and tv.layers == [2] and result.sweep is None


def test_vanilla_sweep_picks_best_dev_layer_and_reports_test_separately(tiny_model, small_task):
    task = small_task.single(0)
    tv, result = vanilla_task_vector(tiny_model, task, n_prompts=20, n_shots=3, dev_prompts=30, test_prompts=40)
    sweep = result.sweep
    assert sweep.best_layer == int(sweep.dev_mean.argmax()) and tv.layers == [sweep.best_layer]
    assert sweep.test.values.numel() == 40
    manual = evaluate(tiny_model, task, "injected", tv, batch=Splits(0).sample(task, "test", 40, 3))
    assert torch.equal(manual.values, sweep.test.values)


def test_vanilla_fixed_position(tiny_model, small_task):
    tv, _ = vanilla_task_vector(tiny_model, small_task.single(0), 1, position=1, n_prompts=10, n_shots=2)
    assert tv.sites[0].positions == 1
    with pytest.raises(ValueError, match=r"position=5 is beyond the zero-shot prompt \(3 tokens\)"):
        vanilla_task_vector(tiny_model, small_task.single(0), 1, position=5, n_prompts=10, n_shots=2)


def test_batched_aie_equals_per_head_patching(tiny_model, small_task):
    """Heads-as-rows gives the same AIE as one patched forward per head (the TL patching loop)."""
    task = small_task.single(2)
    clean = task.sample(12, 4, seed=0)
    z_mean, head_means = mean_head_outputs(tiny_model, clean)
    corrupted = clean.select(slice(0, 6)).with_shuffled_labels(torch.Generator().manual_seed(0))
    batched = average_indirect_effect(tiny_model, corrupted, z_mean)
    rows = torch.arange(6)
    base = tiny_model(corrupted.inputs)[:, -1].softmax(-1)[rows, corrupted.targets]
    for layer in range(tiny_model.n_layers):
        for head in range(tiny_model.n_heads):
            def patch(z, hook, layer=layer, head=head):
                z = z.clone()
                z[:, -1, head] = z_mean[layer, head]
                return z

            logits = tiny_model(corrupted.inputs, hooks=[(tiny_model.hook_name(layer, "attn.hook_z"), patch)])
            effect = (logits[:, -1].softmax(-1)[rows, corrupted.targets] - base).mean()
            torch.testing.assert_close(batched[layer, head], effect, atol=1e-6, rtol=0)
    torch.testing.assert_close(head_means, torch.einsum("lhk,lhkd->lhd", z_mean, tiny_model.W_O))


def test_function_vector_sums_top_heads(tiny_model, small_task):
    tv, result = function_vector(tiny_model, small_task.single(0), 1, top_k=3, n_prompts=16, n_corrupted=8, n_shots=3)
    order = result.aie.flatten().argsort(descending=True)[:3]
    assert result.top_heads == [(int(i) // 4, int(i) % 4) for i in order]
    torch.testing.assert_close(tv.vector(), sum(result.head_means[lh] for lh in result.top_heads))
    assert result.aie.shape == (3, 4)
    with pytest.raises(ValueError, match=r"top_k=13: expected 1 <= top_k <= 12"):
        function_vector(tiny_model, small_task.single(0), 1, top_k=13)


@pytest.mark.parametrize("position", ["last", 1])
def test_learned_cached_and_full_paths_train_identically(tiny_model64, small_task, position):
    task = small_task.single(0)
    cfg = LearnConfig(epochs=3, n_train=48, n_val=32, batch_size=16, lr=0.05)
    tv_fast, fast = learn_task_vector(tiny_model64, task, 1, position, n_shots=3, config=cfg, path="cached",
                                      progress=False)
    tv_full, full = learn_task_vector(tiny_model64, task, 1, position, n_shots=3, config=cfg, path="full",
                                      progress=False)
    assert (fast.path, full.path) == ("cached", "full")
    for a, b in zip(fast.history, full.history):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-8)
    torch.testing.assert_close(tv_fast.vector(), tv_full.vector(), atol=1e-8, rtol=0)
    # (held-out dev queries need not improve on an untrained model; the training loss must)
    assert fast.history[-1]["train_loss"] < fast.history[1]["train_loss"], "training lowers the training loss"


def test_learned_several_positions_and_layers(tiny_model, small_task):
    task = small_task.single(0)
    cfg = LearnConfig(epochs=1, n_train=16, n_val=8, batch_size=8)
    tv, result = learn_task_vector(tiny_model, task, [0, 2], positions=[0, -1], base="icl", n_shots=2, config=cfg,
                                   progress=False)
    assert len(tv.sites) == 4 and result.path == "cached"  # the columns before position 0: none, yet cached
    assert {(s.layer, s.positions) for s in tv.sites} == {(0, 0), (0, -1), (2, 0), (2, -1)}
    with pytest.raises(ValueError, match=r"path='fastest': expected 'auto', 'cached' or 'full'"):
        learn_task_vector(tiny_model, task, 0, positions=0, config=cfg, path="fastest", progress=False)
    with pytest.raises(ValueError, match=r"positions='all'"):
        learn_task_vector(tiny_model, task, 0, positions="all", config=cfg, progress=False)


def test_learned_regression(regression_model, regression_task):
    cfg = LearnConfig(epochs=2, n_train=32, n_val=16, batch_size=16, loss="huber")
    task = regression_task.single(3)
    tv, result = learn_task_vector(regression_model, task, 1, n_shots=3, config=cfg, progress=False)
    assert result.val.metric == "mse_per_dim" and result.path == "cached"
    # the reported dev score is the kept vector's, injected into the dev split's zero-shot queries
    dev = Splits(0).sample(task, "dev", 16, 3)
    manual = evaluate(regression_model, task, "injected", tv, batch=dev, progress=False)
    assert result.val.mean == pytest.approx(manual.mean, rel=1e-5)
    assert result.history[-1]["train_loss"] < result.history[1]["train_loss"], "the Huber loss trains the vector"


def test_head_weighted_vector_is_weighted_head_sum(tiny_model, small_task):
    task = small_task.single(0)
    tv, result = head_weighted_task_vector(tiny_model, task, n_shots=3, n_head_prompts=16, progress=False,
                                           epochs=2, n_train=32, n_val=16, batch_size=16, align_weight=0.5)
    expected = torch.einsum("lh,lhd->ld", result.weights, result.head_means)
    for site, vector in tv.vectors.items():
        assert site.hook == "resid_post" and site.positions == "last"
        torch.testing.assert_close(vector, expected[site.layer])
    assert len(tv.sites) == tiny_model.n_layers
    # injected, layer 0's output stream at the query moves by exactly its vector (nothing before it changed)
    prompts = task.sample(4, 3, seed=1).zero_shot
    name = tiny_model.hook_name(0, "resid_post")
    clean = tiny_model.run_with_cache(prompts.inputs, [name])[1][name]
    with inject(tiny_model, tv):
        moved = tiny_model.run_with_cache(prompts.inputs, [name])[1][name]
    torch.testing.assert_close(prompts.at_query(moved - clean), expected[0].expand(4, -1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close((moved - clean)[:, 0], torch.zeros_like(moved[:, 0]), atol=1e-6, rtol=0)
    assert result.history[0]["epoch"] == 0
    # the held-out score: the validation split, which trained nothing, chose nothing and made no head mean
    held_out = Splits(0).sample(task, "validation", 16, 3)
    assert Splits(0).validation not in (Splits(0).train, Splits(0).dev, Splits(0).test)
    manual = evaluate(tiny_model, task, "injected", result.interventions_for(tiny_model, held_out), batch=held_out,
                      progress=False)
    assert result.test.mean == manual.mean and result.test.values.numel() == 16


def test_compare_rows_share_the_test_prompts(tiny_model, small_task):
    c = compare(tiny_model, small_task, methods=["vanilla", "function"], layers=[1, 2], n_test=30, n_shots=3,
                progress=False)
    methods = [(r["method"], r["layer"]) for r in c.records]
    assert methods == [("zero_shot", None), ("icl", None), ("vanilla", 1), ("vanilla", 2), ("function", 1),
                       ("function", 2)]
    test = Splits(0).sample(small_task.single(0), "shared", 30, 3)
    manual = evaluate(tiny_model, small_task.single(0), "injected", c.vectors[("vanilla", 2)], batch=test)
    assert c.records[3]["accuracy"] == pytest.approx(manual.mean)
    assert all(r["n"] == 30 for r in c.records)
    with pytest.raises(ValueError, match=r"unknown \['magic'\]"):
        compare(tiny_model, small_task, methods=["magic"])


def test_intervention_list_is_accepted_where_vectors_are(tiny_model, small_task):
    iv = Intervention(torch.zeros(tiny_model.d_model), layer=0)
    a = evaluate(tiny_model, small_task, "injected", [iv], n_prompts=10)
    b = evaluate(tiny_model, small_task, "zero_shot", n_prompts=10)
    assert torch.equal(a.values, b.values)


def test_todd_procedure_averages_the_correct_validation_prompts_with_the_output_bias(tiny_model, small_task):
    from tvlens import zoo

    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    tv, result = function_vector(model, task, 1, procedure="todd", n_prompts=40, n_corrupted=8, n_shots=2, seed=3)
    validation = Splits(3).sample(task, "validation", 40, 2)  # Todd's validation prompts: a block of their own
    correct = evaluate(model, task, "icl", batch=validation, progress=False).values.bool()
    assert 0 < int(correct.sum()) < 40 and tv.hyperparameters["n_mean_prompts"] == int(correct.sum())
    _, means = mean_head_outputs(model, validation.select(correct.nonzero().flatten()))
    torch.testing.assert_close(result.head_means, means + model.b_O[:, None, :], atol=1e-6, rtol=0)
    assert tv.hyperparameters["procedure"] == "todd" and tv.hyperparameters["output_bias"] is True
    # an untrained model answers too few validation prompts (seed 0 + 3) to corrupt n_corrupted of them
    right = int(evaluate(tiny_model, small_task.single(0), "icl", batch=Splits(0).sample(small_task.single(0),
                         "validation", 10, 2), progress=False).values.sum())
    with pytest.raises(ValueError, match=f"answers {right} of 10 validation prompts correctly; expected at least "
                                         f"n_corrupted={right + 1}"):
        function_vector(tiny_model, small_task.single(0), 1, procedure="todd", n_prompts=10, n_corrupted=right + 1,
                        n_shots=2)
    with pytest.raises(ValueError, match="procedure='reference'"):
        function_vector(tiny_model, small_task.single(0), 1, procedure="reference")


def test_hendel_procedure_refuses_what_it_cannot_do(tiny_model, small_task):
    with pytest.raises(ValueError, match="procedure='hendel' needs text tasks"):
        vanilla_task_vector(tiny_model, small_task.single(0), 1, procedure="hendel", n_prompts=4, n_shots=2)
    with pytest.raises(ValueError, match="mode='add': procedure='hendel' replaces"):
        vanilla_task_vector(tiny_model, small_task.single(0), 1, procedure="hendel", mode="add")
    with pytest.raises(ValueError, match="procedure='multi'"):
        vanilla_task_vector(tiny_model, small_task.single(0), 1, procedure="multi")


def test_function_vector_checks_its_layer_before_the_head_effects(tiny_model, small_task, monkeypatch):
    import tvlens.vectors.function as fv

    def expensive(*args, **kwargs):
        raise AssertionError("the head effects ran before the layer was checked")

    monkeypatch.setattr(fv, "average_indirect_effect", expensive)
    monkeypatch.setattr(fv, "mean_head_outputs", expensive)
    with pytest.raises(ValueError, match="layer=7 is out of range"):
        function_vector(tiny_model, small_task.single(0), 7)


def test_compare_honours_its_seed_for_the_learned_row(tiny_model64, small_task):
    """compare(seed=a) and compare(seed=b) learn on different prompts (the learned rows differ); equal seeds
    give equal rows — the seed reaches every method through one Splits rule."""
    cfg = LearnConfig(epochs=2, n_train=32, n_val=16, batch_size=16, lr=0.05)

    def learned_row(seed):
        c = compare(tiny_model64, small_task, methods=["learned"], layers=[1], n_test=24, n_shots=3,
                    learn_config=cfg, seed=seed, progress=False)
        return c.records[-1], c.vectors[("learned", 1)].vector()

    (a, va), (a2, va2), (_, vb) = learned_row(0), learned_row(0), learned_row(5)
    assert a == a2 and torch.equal(va, va2)
    assert not torch.allclose(va, vb), "a different seed trains on different prompts"
    # and they behave differently on the same held-out prompts (the answer's log-likelihood)
    test = Splits(0).sample(small_task, "shared", 24, 3)
    nll = [evaluate(tiny_model64, small_task, "injected", TaskVector.single(v, 1), batch=test, progress=False).nll
           for v in (va, vb)]
    assert nll[0] != pytest.approx(nll[1])


def test_compare_takes_one_method_name_as_a_string(tiny_model, small_task):
    one = compare(tiny_model, small_task, methods="vanilla", layers=[1], n_test=8, n_shots=3, seed=0)
    listed = compare(tiny_model, small_task, methods=["vanilla"], layers=[1], n_test=8, n_shots=3, seed=0)
    assert {r["method"] for r in one.records} == {"vanilla", "icl", "zero_shot"}  # the method and its baselines
    assert one.records == listed.records


def test_converged_means_patience_epochs_passed_after_the_kept_one(tiny_model, small_task):
    """A run converged when its dev loss did not improve for `patience` epochs after the kept epoch — stopped
    early, or the budget ended right then; a run whose best epoch is its last ran out of budget."""
    from tvlens.vectors.learned import converged

    cfg = LearnConfig(patience=2)
    history = [{"epoch": e} for e in range(6)]  # epochs 0 … 5 ran
    assert converged(history, 3, cfg) and not converged(history, 4, cfg) and not converged(history, 5, cfg)
    budget = LearnConfig(epochs=1, n_train=16, n_val=8, batch_size=8, patience=3)
    _, learned = learn_task_vector(tiny_model, small_task.single(0), 1, n_shots=2, config=budget, progress=False)
    _, weighted = head_weighted_task_vector(tiny_model, small_task.single(0), n_shots=2, config=budget, progress=False)
    assert learned.converged is False and weighted.converged is False  # one epoch cannot show a stop


def test_learn_task_vectors_equal_separate_runs(tiny_model64, small_task):
    """Vectors of several layers trained side by side (one prefix, one batched forward per step, each with its
    own early stopping) equal the lone runs, and their dev/test scores are the lone runs' evaluate() scores."""
    from tvlens.vectors import learn_task_vectors

    task = small_task.single(0)
    cfg = LearnConfig(epochs=4, n_train=48, n_val=32, batch_size=16, lr=0.05, patience=1)
    together = learn_task_vectors(tiny_model64, task, [0, 2, 1], n_shots=3, config=cfg, progress=False)
    assert list(together) == [0, 2, 1]
    stops = set()
    for layer, (tv, result) in together.items():
        alone_tv, alone = learn_task_vector(tiny_model64, task, layer, n_shots=3, config=cfg, progress=False)
        torch.testing.assert_close(tv.vector(), alone_tv.vector(), atol=1e-6, rtol=1e-5)
        assert result.best_epoch == alone.best_epoch and len(result.history) == len(alone.history)
        for a, b in zip(result.history, alone.history):
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5, abs=1e-7)
        assert result.converged == alone.converged and tv.sites == alone_tv.sites
        # the scores the engines gave are evaluate()'s on the dev and test splits
        dev, test = Splits(0).sample(task, "dev", 32, 3), Splits(0).sample(task, "test", 32, 3)
        for got, batch in ((result.val, dev), (result.test, test)):
            expected = evaluate(tiny_model64, task, "injected", tv, batch=batch, progress=False)
            torch.testing.assert_close(got.values, expected.values)
            torch.testing.assert_close(got.nll_values, expected.nll_values, atol=1e-4, rtol=1e-4)
        stops.add(len(result.history))
    assert len(stops) > 1, "the copies stopped at different epochs (each copy leaves the batch on its own)"
    with pytest.raises(ValueError, match=r"layers=\[1, 1\]: expected distinct layers"):
        learn_task_vectors(tiny_model64, task, [1, 1], config=cfg, progress=False)


def test_learn_task_vectors_many_equal_one_call_per_task_and_seed(tiny_model64, small_task):
    """Several (task, seed) jobs trained side by side (their prompts in one engine, all minibatches in one forward per
    step) give each job what learn_task_vectors gives it alone: its prompts, minibatch order and early stopping —
    a job with its own layers (a ledger unit at its own chosen layer) included."""
    from tvlens.vectors import learn_task_vectors, learn_task_vectors_many

    cfg = LearnConfig(epochs=4, n_train=48, n_val=32, batch_size=16, lr=0.05, patience=1)
    jobs = [(small_task.single(0), 0), (small_task.single(2), 0), (small_task.single(0), 5),
            (small_task.single(1), 3, [1])]
    together = learn_task_vectors_many(tiny_model64, jobs, [0, 2], n_shots=3, config=cfg, progress=False)
    stops = set()
    for job, got in zip(jobs, together):
        task, seed, layers = job if len(job) == 3 else (*job, [0, 2])
        assert list(got) == layers
        alone = learn_task_vectors(tiny_model64, task, layers, n_shots=3, config=cfg, seed=seed, progress=False)
        for layer in layers:
            (tv, result), (alone_tv, alone_result) = got[layer], alone[layer]
            torch.testing.assert_close(tv.vector(), alone_tv.vector(), atol=1e-6, rtol=1e-5)
            assert result.best_epoch == alone_result.best_epoch and len(result.history) == len(alone_result.history)
            torch.testing.assert_close(result.test.values, alone_result.test.values)
            assert tv.task == task.to_dict() and tv.hyperparameters["seed"] == seed
            assert tv.sites[0].layer == layer
            stops.add(len(result.history))
    assert len(stops) > 1, "the jobs' vectors stopped at different epochs"
    with pytest.raises(ValueError, match=r"jobs\[1\] layers=\[2, 2\]: expected distinct layers"):
        learn_task_vectors_many(tiny_model64, [jobs[0], (small_task.single(0), 1, [2, 2])], config=cfg,
                                progress=False)
    with pytest.raises(TypeError, match=r"jobs\[0\]=.*a \(task, seed\) pair or a \(task, seed, layers\) triple"):
        learn_task_vectors_many(tiny_model64, [small_task.single(0)], [0], config=cfg, progress=False)
    with pytest.raises(ValueError, match=r"jobs=\[\]: expected \(task, seed\) pairs"):
        learn_task_vectors_many(tiny_model64, [], [0], config=cfg, progress=False)


def test_fit_early_stopping_many_needs_one_optimizer_over_every_group():
    from tvlens.vectors.learned import LearnConfig, fit_early_stopping_many

    a, b = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"optimizer: holds 1 of the groups' 2 parameters; expected every group's parameters"):
        fit_early_stopping_many([[a], [b]], torch.optim.AdamW([a]), lambda rows, active: [], lambda active: [],
                                4, LearnConfig(), torch.Generator(), progress=False)
    with pytest.raises(ValueError, match=r"groups=\[\]"):
        fit_early_stopping_many([], torch.optim.AdamW([a]), lambda rows, active: [], lambda active: [], 4,
                                LearnConfig(), torch.Generator(), progress=False)


def test_a_model_with_non_finite_outputs_is_named_not_the_learning_rate():
    """NaN weights (or float16 on a CPU) give a non-finite loss before any step: the message says so, instead of
    telling a command without --lr to lower the learning rate."""
    from tvlens import zoo
    from tvlens.vectors import learn_task_vector

    model = zoo.load("perm-mix")
    with torch.no_grad():
        next(iter(model.parameters())).fill_(float("nan"))
    with pytest.raises(ValueError, match=r"the validation loss is nan before any learning step; the model's own "
                                         r"outputs are not finite"):
        learn_task_vector(model, zoo.task("perm-mix").single(0), layer=1, epochs=1, progress=False)


def test_every_method_records_the_seed_its_vector_is_scored_with(tiny_model, small_task):
    """Each method's vector records the user seed whose splits made it (TaskVector.seeds), so evaluate scores it
    only on that seed's held-out queries and refuses another seed's (whose partition may hold its training queries)."""
    task = small_task.single(0)
    made = {
        "vanilla": vanilla_task_vector(tiny_model, task, 1, n_prompts=8, n_shots=3, seed=3)[0],
        "function": function_vector(tiny_model, task, 1, top_k=2, n_prompts=8, n_corrupted=4, n_shots=3, seed=3)[0],
        "learned": learn_task_vector(tiny_model, task, 1, n_shots=3, epochs=1, n_train=16, n_val=8, batch_size=8,
                                     seed=3, progress=False)[0],
        "head_weighted": head_weighted_task_vector(tiny_model, task, n_shots=3, n_head_prompts=8, epochs=1, n_train=16,
                                                   n_val=8, batch_size=8, seed=3, progress=False)[0],
    }
    for method, tv in made.items():
        assert tv.seeds == {3}, method
        assert evaluate(tiny_model, task, "injected", tv, n_prompts=4, n_shots=3, seed=3, progress=False).mean >= 0
        with pytest.raises(ValueError, match=r"^seed=4: the vector was made with seed 3"):
            evaluate(tiny_model, task, "injected", tv, n_prompts=4, n_shots=3, seed=4, progress=False)
