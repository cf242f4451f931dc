"""Head ablation, saliency and key heads: checked against independent computations on tiny models."""

from __future__ import annotations

import pytest
import torch

from tvlens import TaskVector, inject
from tvlens.analysis import (
    ablate_heads,
    ablation_scan,
    head_saliency,
    key_head_analysis,
    mean_head_activations,
    top_heads,
)
from tvlens.analysis.heads import ablated_scores, spearman
from tvlens.tasks import Splits


@pytest.fixture
def setup(tiny_model64, small_task):
    task = small_task.single(0)
    prompts = task.sample(8, 4, seed=1)
    theta = torch.randn(32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return tiny_model64, task, prompts, theta


def test_zero_ablation_removes_exactly_that_heads_output(setup):
    """attn_out at the query = Σ of the other heads' z W_O + b_O; elsewhere and in other heads z is untouched."""
    model, _, prompts, _ = setup
    inputs = prompts.inputs
    names = [model.hook_name(1, "attn.hook_z"), model.hook_name(1, "attn_out")]
    _, clean = model.run_with_cache(inputs, names)
    with ablate_heads(model, [(1, 2)]):
        _, ablated = model.run_with_cache(inputs, names)
    z, z0 = ablated[names[0]], clean[names[0]]
    assert (z[:, -1, 2] == 0).all()
    torch.testing.assert_close(z[:, :-1], z0[:, :-1])
    torch.testing.assert_close(z[:, -1, [0, 1, 3]], z0[:, -1, [0, 1, 3]])
    others = model.head_outputs(z0, 1)[:, -1, [0, 1, 3]].sum(1) + model.b_O[1]
    torch.testing.assert_close(ablated[names[1]][:, -1], others)
    assert model.attached_hooks() == 0


def test_mean_ablation_uses_the_given_means_and_composes_with_inject(setup):
    model, _, prompts, theta = setup
    tv = TaskVector.single(theta, 1)
    means = mean_head_activations(model, prompts.inputs, vector=tv)
    name = model.hook_name(2, "attn.hook_z")
    with inject(model, tv), ablate_heads(model, [(2, 0), (2, 3)], "mean", means=means):
        _, cache = model.run_with_cache(prompts.inputs, [name])
    torch.testing.assert_close(cache[name][:, -1, 0], means[2, 0].expand(8, -1))
    torch.testing.assert_close(cache[name][:, -1, 3], means[2, 3].expand(8, -1))
    with inject(model, tv):
        _, intact = model.run_with_cache(prompts.inputs, [name])
    torch.testing.assert_close(means[2], intact[name][:, -1].mean(0))
    assert model.attached_hooks() == 0


def test_hooks_are_removed_after_an_exception(setup):
    model = setup[0]
    with pytest.raises(RuntimeError, match="boom"), ablate_heads(model, [(0, 0)]):
        assert model.attached_hooks() == 1
        raise RuntimeError("boom")
    assert model.attached_hooks() == 0


@pytest.mark.parametrize("position", ["last", 1])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_batched_scan_equals_the_per_head_loop(setup, position, mode):
    """Heads as rows (cached path for the last position, full forwards for position 1) = one forward per head."""
    model, _, prompts, theta = setup
    tv = TaskVector.single(theta, 1, positions=position)
    means = mean_head_activations(model, prompts.inputs, vector=tv)
    batched = ablation_scan(model, prompts, tv, mode=mode, means=means, max_rows=20)  # several chunks
    loop = ablation_scan(model, prompts, tv, mode=mode, means=means, method="loop")
    torch.testing.assert_close(batched.delta, loop.delta, atol=1e-10, rtol=0, equal_nan=True)
    torch.testing.assert_close(batched.metric, loop.metric, equal_nan=True)
    assert batched.base_objective == pytest.approx(loop.base_objective, abs=1e-10)
    assert torch.isnan(batched.delta[0]).all() and not torch.isnan(batched.delta[1:]).any()


@pytest.mark.parametrize("vector_layer", [1, 2])
def test_ablated_scores_of_arbitrary_masks_equal_one_forward_each(setup, vector_layer):
    """Copies ablating several heads, first ablated at different layers (before, at or after the
    vector's layer) or nowhere, each resumed from the intact run: equal to a forward per mask."""
    model, _, prompts, theta = setup
    tv = TaskVector.single(theta, vector_layer)
    masks = torch.rand(7, model.n_layers, model.n_heads, generator=torch.Generator().manual_seed(3)) < 0.3
    masks[:, 0] = False
    masks[0] = False  # the intact model
    masks[1, 1:] = False
    masks[1, -1, -1] = True  # only a head of the last layer
    objective, metric = ablated_scores(model, prompts, tv, masks, max_rows=20)
    for c, mask in enumerate(masks):
        heads = [(int(layer), int(h)) for layer, h in mask.nonzero()]
        with torch.no_grad(), inject(model, tv), ablate_heads(model, heads):
            logits = model(prompts.inputs)[:, -1]
        logp = logits.double().log_softmax(-1)[torch.arange(len(prompts)), prompts.targets]
        torch.testing.assert_close(objective[c], logp, atol=1e-10, rtol=0)
        torch.testing.assert_close(metric[c], (logits.argmax(-1) == prompts.targets).double())


def test_saliency_is_the_first_order_term(setup):
    """|z · ∂J/∂z| at the query equals a central finite difference of J in the head's scale."""
    model, _, prompts, theta = setup
    tv = TaskVector.single(theta, 1)
    saliency = head_saliency(model, prompts, tv, batch_size=3)  # several chunks
    rows = torch.arange(len(prompts))
    eps = 1e-5

    def objective(layer, head, factor):
        def scale(z, hook):
            z = z.clone()
            z[:, -1, head] *= factor
            return z

        with torch.no_grad(), inject(model, tv):
            logits = model(prompts.inputs, hooks=[(model.hook_name(layer, "attn.hook_z"), scale)])[:, -1]
        return logits.log_softmax(-1)[rows, prompts.targets]

    for layer, head in [(1, 0), (2, 3)]:
        derivative = (objective(layer, head, 1 + eps) - objective(layer, head, 1 - eps)) / (2 * eps)
        assert saliency[layer, head].item() == pytest.approx(derivative.abs().mean().item(), rel=1e-6)
    assert torch.isnan(saliency[0]).all()


def test_top_heads_and_spearman():
    scores = torch.tensor([[float("nan")] * 4, [0.1, 0.9, 0.3, 0.2], [0.5, 0.0, 0.8, 0.4]])
    assert top_heads(scores, 0.1) == [(1, 1)]  # ceil(0.8) = 1 of the 8 scored heads
    assert top_heads(scores, 0.25) == [(1, 1), (2, 2)]
    assert spearman(scores, scores * 2 + 1) == pytest.approx(1.0)
    assert spearman(scores, -scores) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="fraction=0"):
        top_heads(scores, 0)


def test_key_head_analysis_end_to_end(trained_perm_model):
    model, family, _ = trained_perm_model
    task = family.single(0)
    tv = TaskVector.single(torch.randn(model.d_model) * 0.5, 0)
    result = key_head_analysis(model, task, tv, n_prompts=24, n_random=20, fraction=0.25)
    assert len(result.key_heads) == 2 and result.layer_histogram.sum() == 2
    assert all(len(draw) == 2 for draw in result.random_heads) and result.random.shape == (20,)
    assert set(result.scans) == {"zero", "mean"}
    # the key-head ablation is an exact rerun: equal to ablating those heads by hand
    scoring = Splits(0).sample(task, "shared", 24).zero_shot  # the shared split of seed 0: where heads are scored
    with inject(model, tv), ablate_heads(model, result.key_heads):
        logits = model(scoring.inputs)[:, -1]
    expected = (logits.argmax(-1) == scoring.targets).double()
    torch.testing.assert_close(result.key_ablated, expected)
    # the attention sink: each head's weight from the query to the first token, recomputed from the patterns
    names = [model.hook_name(layer, "attn.hook_pattern") for layer in range(model.n_layers)]
    with inject(model, tv):
        _, cache = model.run_with_cache(scoring.inputs, names)
    for layer, name in enumerate(names):
        expected_sink = cache[name][:, :, -1, 0].double().mean(0)
        torch.testing.assert_close(result.first_token_attention[layer], expected_sink, atol=1e-6, rtol=0)
    # a random draw's score is an exact rerun too
    with inject(model, tv), ablate_heads(model, result.random_heads[0]):
        logits = model(scoring.inputs)[:, -1]
    assert result.random[0].item() == pytest.approx((logits.argmax(-1) == scoring.targets).double().mean().item())


def test_key_heads_are_chosen_on_other_prompts_than_they_are_scored_on(trained_perm_model, monkeypatch):
    """Selection (saliency, scans, means) sees only the selection prompts; every ablation score only the scoring
    prompts; the two sets share no prompt. With protocol='same' they are one set."""
    import tvlens.analysis.heads as heads

    model, family, _ = trained_perm_model
    task = family.single(0)
    tv = TaskVector.single(torch.randn(model.d_model) * 0.5, 0)
    seen: dict[str, list] = {"select": [], "score": []}
    saliency, scores = heads.head_saliency, heads.ablated_scores

    def spy_saliency(model, prompts, *args, **kwargs):
        seen["select"].append(prompts.inputs)
        return saliency(model, prompts, *args, **kwargs)

    def spy_scores(model, prompts, vector, masks, *args, **kwargs):
        # the scans (one mask per head plus the intact copy) select; the key/random copies score
        seen["score" if masks.shape[0] in (22, 1) else "select"].append(prompts.inputs)
        return scores(model, prompts, vector, masks, *args, **kwargs)

    monkeypatch.setattr(heads, "head_saliency", spy_saliency)
    monkeypatch.setattr(heads, "ablated_scores", spy_scores)
    result = key_head_analysis(model, task, tv, n_prompts=24, n_random=20, fraction=0.25, seed=3)
    splits = Splits(3)
    assert (result.selection, result.scoring) == (f"dev split (seed {splits.dev})",
                                                  f"shared split (seed {splits.shared})")
    dev, test = splits.sample(task, "dev", 24), splits.sample(task, "shared", 24)
    assert all(torch.equal(inputs, dev.zero_shot.inputs) for inputs in seen["select"]) and seen["select"]
    assert all(torch.equal(inputs, test.zero_shot.inputs) for inputs in seen["score"]) and seen["score"]
    # the views that are scored share no query: the heads are scored on queries they were never chosen on
    assert not set(dev.zero_shot.inputs[:, 1].tolist()) & set(test.zero_shot.inputs[:, 1].tolist())
    for key in seen:
        seen[key].clear()
    same = key_head_analysis(model, task, tv, n_prompts=24, n_random=20, fraction=0.25, seed=3, protocol="same")
    assert same.selection == same.scoring == f"shared split (seed {splits.shared})"
    assert all(torch.equal(inputs, test.zero_shot.inputs) for inputs in seen["select"] + seen["score"])


def test_errors(setup):
    model, task, prompts, theta = setup
    tv = TaskVector.single(theta, 1)
    with pytest.raises(ValueError, match="head 4 of layer 1 is out of range"), ablate_heads(model, [(1, 4)]):
        pass
    with pytest.raises(ValueError, match="layer=5 is out of range|heads layer=5"), ablate_heads(model, [(5, 0)]):
        pass
    with pytest.raises(TypeError, match="pairs of ints"), ablate_heads(model, [(1, 0.5)]):
        pass
    with pytest.raises(ValueError, match="mode='mean' needs means"), ablate_heads(model, [(1, 0)], "mean"):
        pass
    with pytest.raises(ValueError, match="means has shape"), ablate_heads(model, [(1, 0)], "mean",
                                                                          means=torch.zeros(3, 4)):
        pass
    with pytest.raises(ValueError, match="mode='half'"), ablate_heads(model, [(1, 0)], "half"):
        pass
    with pytest.raises(ValueError, match="n_random=5"):
        key_head_analysis(model, task, tv, n_random=5)
    with pytest.raises(ValueError, match="method='fast'"):
        ablation_scan(model, prompts, tv, method="fast")
    assert model.attached_hooks() == 0


def test_the_random_control_never_draws_a_key_head(trained_perm_model):
    model, family, _ = trained_perm_model
    task = family.single(0)
    tv = TaskVector.single(torch.randn(model.d_model) * 0.5, 0)
    result = key_head_analysis(model, task, tv, n_prompts=16, n_random=20, fraction=0.25)
    assert result.random_heads and not {h for draw in result.random_heads for h in draw} & set(result.key_heads)
    with pytest.raises(ValueError, match="fraction=1.0: .* key heads leave 0 other heads"):
        key_head_analysis(model, task, tv, n_prompts=16, n_random=20, fraction=1.0)
