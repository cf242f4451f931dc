"""OV-circuit decomposition: exact on attention-only models with frozen attention and norms; the
per-head θ-terms match the real model's head outputs; θ_OV matches the weights."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tvlens import TaskVector
from tvlens.analysis import frozen_decomposition, ov_decomposition, theta_ov
from tvlens.models import HookedModel

from ..conftest import BACKENDS, tiny_config


def frozen_run_change(model, inputs, theta, layer, position):
    """The final-stream change θ causes in the real model with every pattern and ln1 scale frozen
    at the clean run's values (hooks that overwrite them), at the last position."""
    names = [model.hook_name(k, "attn.hook_pattern") for k in range(model.n_layers)]
    names += [model.hook_name(k, "ln1.hook_scale") for k in range(model.n_layers)]
    _, clean = model.run_with_cache(inputs, names)
    freeze = [(n, (lambda act, hook, n=n: clean[n])) for n in names]

    def add(act, hook):
        act = act.clone()
        act[:, position] += theta
        return act

    with torch.no_grad():
        _, base = model.final_residual(inputs, hooks=freeze)
        _, moved = model.final_residual(inputs, hooks=[(model.hook_name(layer, "resid_pre"), add), *freeze])
    return (moved - base)[:, -1]


@pytest.fixture(scope="module", params=BACKENDS)
def attn_only(request):
    return HookedModel.from_config(tiny_config(n_layers=2, attn_only=True), backend=request.param, dtype=torch.float64)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), layer=st.integers(0, 1), position=st.sampled_from([-1, 2, 0]),
       size=st.floats(0.1, 10.0))
def test_frozen_decomposition_is_exact(attn_only, seed, layer, position, size):
    """Δ final stream = direct path + Σ per-head OV contributions, for random θ, layers and positions."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, attn_only.d_vocab, (3, 7), generator=gen)
    theta = size * torch.randn(attn_only.d_model, generator=gen, dtype=torch.float64)
    parts = frozen_decomposition(attn_only, inputs, theta, layer, positions=position % 7)
    expected = frozen_run_change(attn_only, inputs, theta, layer, position % 7)
    torch.testing.assert_close(parts.direct + parts.heads.sum((1, 2)), expected, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(parts.total, expected, atol=1e-10, rtol=1e-8)
    assert (parts.heads[:, :layer] == 0).all()  # heads before θ's layer never see it
    if position % 7 != 6:
        assert (parts.direct == 0).all()  # θ away from the query reaches it only through heads


def test_frozen_decomposition_refuses_mlps(tiny_model64):
    with pytest.raises(ValueError, match="attention-only"):
        frozen_decomposition(tiny_model64, torch.zeros(1, 3, dtype=torch.long), torch.zeros(32), 0)


def test_theta_ov_matches_the_weights(tiny_model64):
    theta = torch.randn(32, dtype=torch.float64)
    expected = sum(theta @ tiny_model64.W_V[k, h] @ tiny_model64.W_O[k, h] for k in (1, 2) for h in range(4))
    torch.testing.assert_close(theta_ov(tiny_model64, theta, 1), expected)


def test_per_head_terms_match_the_real_heads(tiny_model64, small_task):
    """The θ-term of a first-hop head equals its output change in the real model (MLPs included)
    when attention and the ln1 scale are held at the injected run's values."""
    model, layer = tiny_model64, 1
    task = small_task.single(0)
    batch = task.sample(6, 4, seed=3)
    theta = torch.randn(model.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tv = TaskVector.single(theta, layer)
    result = ov_decomposition(model, task, tv, batch=batch, reinject=False)

    inputs = batch.zero_shot.inputs
    names = [model.hook_name(layer, "attn.hook_pattern"), model.hook_name(layer, "ln1.hook_scale")]
    with tv.inject(model):
        _, injected = model.run_with_cache(inputs, names)
    freeze = [(n, (lambda act, hook, n=n: injected[n])) for n in names]
    z_name = model.hook_name(layer, "attn.hook_z")
    _, with_theta = model.run_with_cache(inputs, [z_name], hooks=[*freeze, *(
        (model.hook_name(layer, "resid_pre"), iv_hook) for iv_hook in [_adder(theta)])])
    _, without = model.run_with_cache(inputs, [z_name], hooks=freeze)
    change = model.head_outputs(with_theta[z_name] - without[z_name], layer)[:, -1]  # [batch, heads, d]
    torch.testing.assert_close(result.contribution_norm[layer], change.norm(dim=-1).mean(0))
    pattern = injected[names[0]][:, :, -1, -1]
    torch.testing.assert_close(result.attention[layer], pattern.mean(0))
    assert torch.isnan(result.ov_norm[:layer]).all() and not torch.isnan(result.ov_norm[layer:]).any()
    assert (result.mlp_change[layer:] > 0).all() and torch.isnan(result.mlp_change[:layer]).all()


def _adder(theta):
    def add(act, hook):
        act = act.clone()
        act[:, -1] += theta
        return act

    return add


def test_logit_effect_of_a_single_head_model_is_the_answer_logit_change():
    """One attention-only layer, no LayerNorm: the frozen-pattern change of the answer's logit margin
    is exactly Σ_heads logit_effect (no norms to freeze, one hop)."""
    from tvlens.tasks import PermutationMixture

    task = PermutationMixture(n_symbols=16, n_perms=4, seed=0).single(1)
    model = HookedModel.from_config(tiny_config(n_layers=1, attn_only=True, normalization_type=None),
                                    backend=BACKENDS[0], dtype=torch.float64)
    batch = task.sample(5, 4, seed=0)
    theta = torch.randn(model.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    tv = TaskVector.single(theta, 0)
    result = ov_decomposition(model, task, tv, batch=batch, reinject=False)
    inputs = batch.zero_shot.inputs
    name = model.hook_name(0, "attn.hook_pattern")
    with tv.inject(model):
        _, cache = model.run_with_cache(inputs, [name])
    freeze = [(name, lambda act, hook: cache[name])]
    with torch.no_grad():
        base = model(inputs, hooks=freeze)[:, -1]
        moved = model(inputs, hooks=[*freeze, (model.hook_name(0, "resid_pre"), _adder(theta))])[:, -1]
    # minus θ's own direct path (the residual connection), which is not a head's
    direct = theta @ model.W_U
    delta = moved - base - direct
    labels = batch.label_set
    targets = batch.targets
    margin = delta[torch.arange(5), targets] - delta[:, labels].mean(-1)
    torch.testing.assert_close(result.logit_effect[0].sum(), margin.mean())


def test_reinjection_reports_all_paths(trained_perm_model):
    model, family, _ = trained_perm_model
    task = family.single(0)
    tv = TaskVector.single(torch.randn(model.d_model) * 0.5, 1)
    result = ov_decomposition(model, task, tv, batch=task.sample(32, seed=0))  # every query: a vector that moves some
    assert result.reinjection["vector"].mean != result.reinjection["zero_shot"].mean  # a share to compute
    assert set(result.reinjection) == {"zero_shot", "vector", "theta_ov", "theta_attention", "theta_mlp",
                                       "attention_per_prompt", "mlp_per_prompt"}
    assert all(r.values.numel() == 32 for r in result.reinjection.values())
    assert ov_decomposition(model, task, tv, n_prompts=8).reinjection["vector"].values.numel() == 8  # held-out default
    torch.testing.assert_close(result.theta_ov, theta_ov(model, tv.vector(), 1))
    assert set(result.reinjection_shares()) == set(result.reinjection) - {"zero_shot", "vector"}


def test_paths_sum_to_the_final_change(trained_perm_model):
    """The per-prompt attention / MLP / direct split adds up to the answer effect of the final stream's change,
    computed here from the final residual stream of a clean and an injected run."""
    model, family, _ = trained_perm_model
    task = family.single(0)
    tv = TaskVector.single(torch.randn(model.d_model), 1)
    batch = task.sample(16, 4, seed=3)
    result = ov_decomposition(model, task, tv, batch=batch, reinject=False)
    prompts = batch.zero_shot
    final = model.hook_name(model.n_layers - 1, "resid_post")
    with torch.no_grad():
        _, clean = model.run_with_cache(prompts.inputs, [final], attention_mask=prompts.attention_mask)
        with tv.inject(model):
            _, moved = model.run_with_cache(prompts.inputs, [final, "ln_final.hook_scale"],
                                            attention_mask=prompts.attention_mask)
    q = prompts.query_positions
    rows = torch.arange(len(prompts))
    delta = (moved[final] - clean[final])[rows, q]
    delta = (delta - delta.mean(-1, keepdim=True)) / moved["ln_final.hook_scale"][rows, q] * model.norm_parameters(
        "ln_final")[0]
    logits = delta @ model.W_U
    expected = logits[rows, prompts.targets] - logits[:, prompts.label_set].mean(-1)
    torch.testing.assert_close(result.paths["total"], expected.double(), rtol=1e-4, atol=1e-5)
    parts = result.paths["direct"] + result.paths["attention"] + result.paths["mlp"]
    torch.testing.assert_close(parts, result.paths["total"])
    shares = result.path_shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    # θ_MLP: the prompt-averaged change of each later MLP's output at the query, one row per layer
    mlps = [model.hook_name(k, "mlp_out") for k in range(1, model.n_layers)]
    with torch.no_grad():
        _, c = model.run_with_cache(prompts.inputs, mlps, attention_mask=prompts.attention_mask)
        with tv.inject(model):
            _, m = model.run_with_cache(prompts.inputs, mlps, attention_mask=prompts.attention_mask)
    expected_mlp = torch.stack([(m[n] - c[n])[rows, q].mean(0) for n in mlps])
    torch.testing.assert_close(result.theta_mlp, expected_mlp)


def test_errors(tiny_model, small_task):
    task = small_task.single(0)
    two = TaskVector.single(torch.zeros(32), 0) + TaskVector.single(torch.zeros(32), 1)
    with pytest.raises(ValueError, match="single-site 'add' vector"):
        ov_decomposition(tiny_model, task, two)
    with pytest.raises(ValueError, match="needs resid_pre at one position"):
        ov_decomposition(tiny_model, task, TaskVector.single(torch.zeros(32), 0, positions="all"))
    with pytest.raises(ValueError, match="base='train'"):
        ov_decomposition(tiny_model, task, TaskVector.single(torch.zeros(32), 0), base="train")
    with pytest.raises(TypeError, match="expects a TaskVector"):
        ov_decomposition(tiny_model, task, torch.zeros(32))
