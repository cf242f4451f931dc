"""Meta-ICL training: losses checked independently, TVP-loss, determinism, resume, checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import tiny_config
from tvlens import Intervention, inject
from tvlens.models import HookedModel
from tvlens.training import TrainConfig, Trainer, answer_loss, train

from ..planted import Payload


def fresh(backend, **overrides):
    return HookedModel.from_config(tiny_config(**overrides), backend=backend)


def test_icl_loss_is_mean_cross_entropy_over_every_answer(tiny_model, small_task):
    batch = small_task.sample(6, 3, seed=0)
    logits = tiny_model(batch.inputs)
    manual = torch.stack([
        F.cross_entropy(logits[b, p][None], batch.answer_targets[b, j][None])
        for b in range(6) for j, p in enumerate(batch.answer_positions[b].tolist())
    ]).mean()
    torch.testing.assert_close(answer_loss(tiny_model, logits, batch), manual)


def test_regression_loss_is_mse_at_x_positions(regression_model, regression_task):
    batch = regression_task.sample(4, 3, seed=0)
    logits = regression_model(batch.inputs)
    manual = ((logits[:, 0::2, 0] - batch.answer_targets) ** 2).mean()
    torch.testing.assert_close(answer_loss(regression_model, logits, batch), manual)


def test_tvp_loss_equals_manual_replace_injection(backend, small_task):
    model = fresh(backend)
    trainer = Trainer(model, small_task, TrainConfig(steps=1, tvp_layer=1, tvp_weight=0.5))
    batch = small_task.sample(8, 3, seed=1)
    loss, parts = trainer.loss(batch)

    name = model.hook_name(1, "resid_pre")
    logits, cache = model.run_with_cache(batch.inputs, [name])
    icl = answer_loss(model, logits, batch)
    with inject(model, Intervention(cache[name][:, -1], layer=1, mode="replace")):
        zero_logits = model(batch.zero_shot.inputs)
    tvp = F.cross_entropy(zero_logits[:, -1], batch.targets)
    assert parts["tvp_loss"] == pytest.approx(tvp.item(), abs=1e-6)
    torch.testing.assert_close(loss, icl + 0.5 * tvp)
    assert model.attached_hooks() == 0


@pytest.mark.parametrize("detach", [False, True])
def test_tvp_gradient_reaches_the_icl_pass_unless_detached(backend, small_task, detach):
    """Block 0 only influences the TVP loss through the ICL pass's hidden state (the zero-shot pass is
    replaced at layer 1 at its last position, but earlier zero-shot positions still see block 0)."""
    model = fresh(backend)
    for p in model.trainable_parameters():
        p.requires_grad_(True)
    cfg = TrainConfig(steps=1, tvp_layer=1, tvp_weight=1.0, tvp_detach=detach)
    trainer = Trainer(model, small_task, cfg)
    batch = small_task.sample(8, 3, seed=1)
    name = model.hook_name(1, "resid_pre")
    _, cache = model.run_with_cache(batch.inputs, [name])
    vector = cache[name][:, -1]
    if detach:
        vector = vector.detach()
    with inject(model, Intervention(vector, layer=1, mode="replace")):
        tvp = F.cross_entropy(model(batch.zero_shot.inputs)[:, -1], batch.targets)
    grads = torch.autograd.grad(tvp, model.trainable_parameters(), allow_unused=True)
    _, parts = trainer.loss(batch)
    assert parts["tvp_loss"] == pytest.approx(tvp.item(), abs=1e-6)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_training_is_deterministic(backend, small_task):
    cfg = TrainConfig(steps=6, batch_size=8, n_shots=3, eval_every=0, eval_prompts=16, seed=3)
    a = train(fresh(backend), small_task, cfg, progress=False)
    b = train(fresh(backend), small_task, cfg, progress=False)
    assert a.losses == b.losses and len(a.losses) == 6
    assert a.history == b.history


def test_resume_continues_the_same_run(backend, small_task, tmp_path):
    cfg = TrainConfig(steps=6, batch_size=8, n_shots=3, eval_every=3, eval_prompts=16, seed=3, checkpoint_every=3,
                      tvp_layer=1, tvp_weight=0.3)
    straight = train(fresh(backend), small_task, cfg, progress=False, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step000003.pt", "step000006.pt"]
    resumed = train(fresh(backend, seed=99), small_task, cfg, progress=False, checkpoint_dir=tmp_path / "again",
                    resume_from=tmp_path / "step000003.pt")
    assert resumed.losses == straight.losses
    assert resumed.history == straight.history


def test_the_tvp_loss_switches_on_once_icl_reaches_its_threshold(backend, small_task, tmp_path):
    """``tvp_start_icl``: plain training up to the first evaluation whose ICL score reaches the threshold, the
    TVP-loss after it; a threshold never reached is plain training throughout; a resumed run keeps the switch."""
    base = dict(steps=6, batch_size=8, n_shots=3, eval_every=3, eval_prompts=16, seed=3, tvp_layer=1, tvp_weight=1.0)
    plain = train(fresh(backend), small_task, TrainConfig(**{**base, "tvp_weight": 0.0}), progress=False)
    at_once = train(fresh(backend), small_task, TrainConfig(**base), progress=False)
    switched = train(fresh(backend), small_task, TrainConfig(**base, tvp_start_icl=0.0, checkpoint_every=3),
                     progress=False, checkpoint_dir=tmp_path)  # accuracy >= 0: reached at the first evaluation
    never = train(fresh(backend), small_task, TrainConfig(**base, tvp_start_icl=1.01), progress=False)
    assert (plain.tvp_on_from, at_once.tvp_on_from, switched.tvp_on_from, never.tvp_on_from) == (None, 0, 3, None)
    assert switched.losses[:3] == plain.losses[:3] and switched.losses[3:] != plain.losses[3:]
    assert switched.losses[3] > plain.losses[3]  # the ICL loss plus the TVP loss
    assert never.losses == plain.losses
    resumed = train(fresh(backend, seed=99), small_task, TrainConfig(**base, tvp_start_icl=0.0, checkpoint_every=3),
                    progress=False, checkpoint_dir=tmp_path / "again", resume_from=tmp_path / "step000003.pt")
    assert resumed.losses == switched.losses and resumed.tvp_on_from == 3
    with pytest.raises(ValueError, match=r"^TrainConfig.tvp_start_icl=0.9 needs eval_every > 0"):
        TrainConfig(tvp_layer=1, tvp_weight=1.0, tvp_start_icl=0.9, eval_every=0)
    with pytest.raises(ValueError, match=r"^TrainConfig.tvp_start_icl=nan: expected a finite ICL score or None"):
        TrainConfig(tvp_start_icl=float("nan"))


def test_history_records_icl_zero_shot_and_tvp_per_layer(trained_perm_model):
    model, _, result = trained_perm_model
    assert [h["step"] for h in result.history][:2] == [250, 500]
    last = result.final
    assert len(last["tvp"]) == model.n_layers
    assert last["icl"] >= 0.85 and last["metric"] == "accuracy"
    assert result.losses[-1] < result.losses[0]
    assert not any(p.requires_grad for p in model.parameters()), "training leaves the model frozen"


def test_checkpoint_for_another_config_is_refused(backend, small_task, tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4, n_shots=2, eval_every=0, eval_prompts=8, checkpoint_every=2)
    train(fresh(backend), small_task, cfg, progress=False, checkpoint_dir=tmp_path)
    other = Trainer(fresh(backend), small_task, TrainConfig(steps=2, batch_size=4, n_shots=2, lr=0.5))
    with pytest.raises(ValueError, match="was made with another TrainConfig"):
        other.load_checkpoint(tmp_path / "step000002.pt")


def test_train_config_round_trip_and_errors():
    cfg = TrainConfig(steps=10, tvp_layer=2, tvp_weight=0.5)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"tvp_weight > 0 needs tvp_layer"):
        TrainConfig(tvp_weight=1.0)
    with pytest.raises(ValueError, match=r"TrainConfig.steps=0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match=r"unknown keys \['epochs'\]"):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match=r"checkpoint_every > 0 needs a checkpoint_dir"):
        Trainer(HookedModel.from_config(tiny_config()), None, TrainConfig(checkpoint_every=5))


def test_tvp_loss_uses_the_zero_shot_padding_mask(backend):
    """Regular-language zero-shot views are left-padded: the TVP loss must equal the unpadded single prompts'."""
    from tvlens.tasks import RegularLanguages

    task = RegularLanguages(n_symbols=6, n_processes=3, seed=1)
    model = HookedModel.from_config(tiny_config(d_vocab=task.d_vocab), backend=backend, dtype=torch.float64)
    trainer = Trainer(model, task, TrainConfig(steps=1, tvp_layer=1, tvp_weight=1.0))
    batch = task.sample(6, 12, seed=3)
    assert batch.zero_shot.attention_mask is not None and not bool(batch.zero_shot.attention_mask.all())
    _, parts = trainer.loss(batch)
    name = model.hook_name(1, "resid_pre")
    _, cache = model.run_with_cache(batch.inputs, [name])
    losses = []
    for b in range(6):
        mask = batch.zero_shot.attention_mask[b].bool()
        single = batch.zero_shot.inputs[b][mask][None]
        with inject(model, Intervention(cache[name][b, -1], layer=1, mode="replace")):
            logits = model(single)[:, -1]
        losses.append(F.cross_entropy(logits, batch.targets[b : b + 1]))
    assert parts["tvp_loss"] == pytest.approx(torch.stack(losses).mean().item(), abs=1e-8)


def test_a_planted_checkpoint_runs_nothing(backend, small_task, tmp_path):
    """A checkpoint with a payload where the history should be: refused by the trainer and by the formation
    study alike, and the payload never runs."""
    from tvlens.studies.formation import formation_from_checkpoints

    cfg = TrainConfig(steps=2, batch_size=4, n_shots=2, eval_every=0, eval_prompts=8, checkpoint_every=2)
    train(fresh(backend), small_task, cfg, progress=False, checkpoint_dir=tmp_path)
    good = tmp_path / "step000002.pt"
    state = torch.load(good, weights_only=True)
    marker = tmp_path / "ran"
    planted = tmp_path / "planted.pt"
    torch.save({**state, "history": Payload(marker)}, planted)
    with pytest.raises(ValueError, match=r"checkpoint '.*planted\.pt': not a readable Trainer checkpoint"):
        Trainer(fresh(backend), small_task, cfg, checkpoint_dir=tmp_path / "again").load_checkpoint(planted)
    model = fresh(backend)
    with pytest.raises(ValueError, match="not a readable Trainer checkpoint"):
        formation_from_checkpoints(model, small_task, [good, planted], n_prompts=8)
    assert not marker.exists()


@pytest.mark.parametrize("lr", [float("inf"), float("nan"), 0.0, -1.0, True])
def test_a_learning_rate_that_is_not_finite_and_positive_is_refused(lr):
    from tvlens.vectors import LearnConfig

    with pytest.raises(ValueError, match=r"TrainConfig.lr=.*: expected a finite positive number"):
        TrainConfig(lr=lr)
    with pytest.raises(ValueError, match=r"LearnConfig.lr=.*: expected a finite positive number"):
        LearnConfig(lr=lr)


def test_a_non_finite_loss_stops_training_naming_the_step(backend, small_task):
    """Infinite weights (a damaged model file or checkpoint) give a NaN loss at the first step: the message names
    the step and the weights, not the learning rate (the run may have no --lr)."""
    model = fresh(backend)
    with torch.no_grad():
        model.model.embed.W_E.fill_(float("inf"))  # every loss is NaN from the first step
    with pytest.raises(ValueError, match=r"^training: the loss is nan at step 1 because the model's weights are not "
                                         r"finite \(NaN or inf"):
        train(model, small_task, TrainConfig(steps=3, batch_size=4, n_shots=2, eval_every=0), progress=False)


def _tvp_reference(model, batch, source):
    """TVP mode and ICL the plain way: one hooked forward records the source's query states, and each layer's
    replacement is a forward of the zero-shot prompts with a ``tvlens.inject`` hook; a source with its own query is
    also scored against that query's answer (``source_answer``: the zero-shot prompts given the source's targets)."""
    import dataclasses

    from tvlens.scoring import score_batch

    names = [model.hook_name(layer, "resid_pre") for layer in range(model.n_layers)]
    _, cache = model.run_with_cache(source.inputs, names, attention_mask=source.attention_mask)
    own_answer = source is not batch and not torch.equal(source.targets, batch.targets)
    tvp = []
    for layer, name in enumerate(names):
        edit = [Intervention(source.at_query(cache[name]), layer=layer, mode="replace")]
        scores = score_batch(model, batch.zero_shot, edit)
        if own_answer:
            answers = dataclasses.replace(batch.zero_shot, targets=source.targets)
            scores["source_answer"] = score_batch(model, answers, edit)[batch.metric.name]
        tvp.append(scores)
    return tvp, score_batch(model, batch)


def _assert_same_scores(got, want):
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("other", [False, True])
def test_tvp_and_icl_on_the_query_engine_equal_hooked_forwards(tiny_model64, small_task, other):
    from tvlens.training.train import tvp_and_icl

    batch = small_task.sample(24, 5, seed=3)
    source = small_task.with_other_query(batch, 11) if other else None
    tvp, icl = tvp_and_icl(tiny_model64, batch, source)
    want_tvp, want_icl = _tvp_reference(tiny_model64, batch, batch if source is None else source)
    _assert_same_scores(icl, want_icl)
    for got, want in zip(tvp, want_tvp, strict=True):
        _assert_same_scores(got, want)


def test_tvp_and_icl_on_left_padded_text_prompts_of_a_hf_model(tokenizer):
    from tests.hf_models import hf_model
    from tvlens.tasks.text import TextTasks
    from tvlens.training.train import tvp_and_icl

    model = HookedModel.from_hf(hf_model("llama_gqa", tokenizer, n_layers=3), tokenizer, dtype=torch.float64)
    batch = TextTasks(("country_capital", "antonyms"), tokenizer=tokenizer).sample(12, 4, seed=0)
    assert not bool(batch.attention_mask.bool().all()), "the prompts are left-padded"
    tvp, icl = tvp_and_icl(model, batch)
    want_tvp, want_icl = _tvp_reference(model, batch, batch)
    _assert_same_scores(icl, want_icl)
    for got, want in zip(tvp, want_tvp, strict=True):
        _assert_same_scores(got, want)


def test_an_other_query_source_runs_on_the_prompts_engine(tiny_model64, small_task, monkeypatch):
    """A source that differs from the prompts only in their last columns (the dummy query) is not run again from
    its demonstrations: two engines (the prompts', the zero-shot prompts'), and the scores of the hooked forwards."""
    import importlib

    from tvlens.training.train import _trailing_difference, tvp_and_icl_many

    train_module = importlib.import_module("tvlens.training.train")  # the module (the package exports train())

    batch = small_task.sample(24, 5, seed=3)
    other = small_task.with_other_query(batch, 11)
    assert _trailing_difference(batch, other) == 2  # the query symbol and its arrow
    built = []

    class Counting(train_module.QueryEngine):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("positions", ("last",)))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(train_module, "QueryEngine", Counting)
    another = small_task.with_other_query(batch, 12)
    (tvp, own, tvp_another), icl = tvp_and_icl_many(tiny_model64, batch, [other, None, another])
    assert built == [("last", -2), ("last",)]
    want_tvp, want_icl = _tvp_reference(tiny_model64, batch, other)
    _assert_same_scores(icl, want_icl)
    for got, want in zip(tvp, want_tvp, strict=True):
        _assert_same_scores(got, want)
    for got, want in zip(tvp_another, _tvp_reference(tiny_model64, batch, another)[0], strict=True):
        _assert_same_scores(got, want)
    for got, want in zip(own, _tvp_reference(tiny_model64, batch, batch)[0], strict=True):
        _assert_same_scores(got, want)


def test_trailing_difference_counts_the_columns_a_source_changes(small_task):
    import dataclasses

    from tvlens.training.train import _trailing_difference

    batch = small_task.sample(8, 4, seed=0)
    assert _trailing_difference(batch, batch) == 1  # identical: the last column is replaced by itself
    early = batch.inputs.clone()
    early[:, 1] = (early[:, 1] + 1) % small_task.n_symbols
    assert _trailing_difference(batch, dataclasses.replace(batch, inputs=early)) == batch.inputs.shape[1] - 1
    assert _trailing_difference(batch, small_task.sample(8, 3, seed=0)) is None  # another width
    mask = torch.ones(batch.inputs.shape[:2], dtype=torch.long)
    assert _trailing_difference(batch, dataclasses.replace(batch, attention_mask=mask)) is None  # other padding
    late = batch.inputs.clone()
    late[:, -3] = (late[:, -3] + 1) % small_task.n_symbols
    short = mask.clone()
    short[0, :-2] = 0  # prompt 0 has two real tokens: the three last columns are not all real
    padded = dataclasses.replace(batch, attention_mask=short)
    assert _trailing_difference(padded, dataclasses.replace(padded, inputs=late)) is None
    assert _trailing_difference(dataclasses.replace(batch, attention_mask=mask),
                                dataclasses.replace(batch, inputs=late, attention_mask=mask)) == 3


@pytest.mark.parametrize("damage", ["optimizer", "generator", "history", "task", "step"])
def test_a_bad_checkpoint_changes_nothing(backend, small_task, tmp_path, damage):
    """Every entry is checked, and the parts are loaded all or none: a checkpoint whose optimiser or generator state
    cannot be taken, whose history is not a list, that has no task, or whose step is negative is one line naming
    the file, and the model's weights and the trainer's state are exactly as before."""
    cfg = TrainConfig(steps=2, batch_size=4, n_shots=2, eval_every=0, eval_prompts=8, checkpoint_every=2)
    train(fresh(backend), small_task, cfg, progress=False, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / "step000002.pt", weights_only=True)
    if damage == "optimizer":
        state["optimizer"]["param_groups"] = []
        expected = r"cannot be loaded into this trainer \(.*\); nothing was changed"
    elif damage == "generator":
        state["generator"] = torch.zeros(3, dtype=torch.uint8)
        expected = r"cannot be loaded into this trainer \(.*\); nothing was changed"
    elif damage == "history":
        state["history"] = "nope"
        expected = r"its 'history' is str; expected a list"
    elif damage == "task":
        del state["task"]
        expected = r"its 'task' is missing; expected a dict"
    else:
        state["step"] = -5
        expected = r"step=-5; expected an int >= 0"
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    model = fresh(backend, seed=7)
    trainer = Trainer(model, small_task, cfg, checkpoint_dir=tmp_path / "resumed")
    weights = {k: v.clone() for k, v in model.tl_state_dict().items()}
    optimizer, generator = repr(trainer.optimizer.state_dict()), trainer.generator.get_state().clone()
    with pytest.raises(ValueError, match=rf"^checkpoint '.*bad\.pt'.*{expected}"):
        trainer.load_checkpoint(bad)
    after = model.tl_state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())
    assert repr(trainer.optimizer.state_dict()) == optimizer and torch.equal(trainer.generator.get_state(), generator)
    assert trainer.step == 0 and trainer.history == []


def test_dummy_query_and_end_of_demonstration_sources_equal_hooked_forwards(tiny_model64, small_task):
    """A tuple of sources is the mean of their query states (Hendel et al.'s averaged dummy queries), scored against
    each one's answer and averaged; the end of the demonstrations is read at its last position (the ``;``)."""
    from tvlens.scoring import score_batch
    from tvlens.training.train import tvp_and_icl_many

    model, batch = tiny_model64, small_task.sample(24, 5, seed=3)
    dummies = small_task.with_dummy_queries(batch, 2, seed=5)
    demos = small_task.demonstrations_only(batch)
    (tvp_dummy, tvp_demos), icl = tvp_and_icl_many(model, batch, [dummies, demos])
    names = [model.hook_name(layer, "resid_pre") for layer in range(model.n_layers)]
    caches = [model.run_with_cache(d.inputs, names)[1] for d in dummies]
    for layer, name in enumerate(names):
        mean = torch.stack([cache[name][:, -1] for cache in caches]).mean(0)
        edit = [Intervention(mean, layer=layer, mode="replace")]
        want = score_batch(model, batch.zero_shot, edit)
        want["source_answer"] = torch.stack([score_batch(model, dataclasses.replace(batch.zero_shot, targets=d.targets),
                                                         edit)["accuracy"] for d in dummies]).mean(0)
        _assert_same_scores(tvp_dummy[layer], want)
    for got, want in zip(tvp_demos, _tvp_reference(model, batch, demos)[0], strict=True):
        _assert_same_scores(got, want)
    _assert_same_scores(icl, score_batch(model, batch))
    with pytest.raises(ValueError, match=r"^sources\[0\] is an empty tuple; expected one or more batches$"):
        tvp_and_icl_many(model, batch, [()])
