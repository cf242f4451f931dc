"""HookedModel: one surface over the TL lines — shapes, hooks, weights, forward paths."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_config
from tvlens.models import HookedModel, ModelConfig


def tokens(model: HookedModel, batch: int = 3, pos: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.randint(model.d_vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


def test_shape_facts(tiny_model):
    cfg = tiny_config()
    assert (tiny_model.n_layers, tiny_model.n_heads, tiny_model.d_model, tiny_model.d_head, tiny_model.d_vocab) == (
        cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab)
    assert tiny_model.W_V.shape == (3, 4, 32, 8)
    assert tiny_model.W_O.shape == (3, 4, 8, 32)
    assert tiny_model.b_O.shape == (3, 32)
    assert tiny_model.W_E.shape == (cfg.d_vocab, 32)
    assert tiny_model.W_U.shape == (32, cfg.d_vocab)


def test_model_is_frozen_by_default(tiny_model):
    assert not any(p.requires_grad for p in tiny_model.parameters())
    assert not tiny_model.training


@pytest.mark.parametrize("hook", ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "attn.hook_z"])
def test_canonical_hook_names_resolve(tiny_model, hook):
    name = tiny_model.hook_name(1, hook)
    assert name.startswith("blocks.1.")
    assert type(tiny_model.hook_point(name)).__name__ == "HookPoint"


def test_stream_decomposes_additively(tiny_model64):
    """resid_pre + attn_out == resid_mid and resid_mid + mlp_out == resid_post (TL issues #1639/#1648)."""
    model = tiny_model64
    names = [model.hook_name(1, h) for h in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")]
    _, cache = model.run_with_cache(tokens(model), names)
    pre, attn, mid, mlp, post = (cache[n] for n in names)
    torch.testing.assert_close(pre + attn, mid, atol=1e-10, rtol=0)
    torch.testing.assert_close(mid + mlp, post, atol=1e-10, rtol=0)


def test_head_outputs_sum_to_attn_out(tiny_model64):
    """Σ_k z_k W_O[l,k] + b_O[l] equals hook_attn_out: per-head outputs without hook_result."""
    model = tiny_model64
    z_name, out_name = model.hook_name(2, "attn.hook_z"), model.hook_name(2, "attn_out")
    _, cache = model.run_with_cache(tokens(model), [z_name, out_name])
    heads = model.head_outputs(cache[z_name], 2)
    assert heads.shape == (3, 11, model.n_heads, model.d_model)
    torch.testing.assert_close(heads.sum(2) + model.b_O[2], cache[out_name], atol=1e-10, rtol=0)


def test_ov_factored_matrix_is_wv_wo(tiny_model):
    ov = tiny_model.OV(1, 2)
    torch.testing.assert_close(ov.AB, tiny_model.W_V[1, 2] @ tiny_model.W_O[1, 2])
    x = torch.randn(tiny_model.d_model)
    torch.testing.assert_close(x @ ov, x @ tiny_model.W_V[1, 2] @ tiny_model.W_O[1, 2], atol=1e-5, rtol=1e-5)
    assert tiny_model.OV(1).AB.shape == (tiny_model.n_heads, tiny_model.d_model, tiny_model.d_model)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_run_from_layer_matches_full_forward(tiny_model64, layer):
    model = tiny_model64
    toks = tokens(model)
    name = model.hook_name(layer, "resid_pre")
    full, cache = model.run_with_cache(toks, [name])
    torch.testing.assert_close(model.run_from_layer(cache[name], layer), full, atol=1e-10, rtol=0)


def test_run_from_layer_uses_the_given_stream(tiny_model64):
    """Changing the stream handed to run_from_layer changes the logits (the blocks before are not rerun on it)."""
    model = tiny_model64
    name = model.hook_name(1, "resid_pre")
    full, cache = model.run_with_cache(tokens(model), [name])
    # (a constant shift would be erased by LayerNorm's centring: use a random one)
    shifted = model.run_from_layer(cache[name] + torch.randn_like(cache[name]), 1)
    assert (shifted - full).abs().max() > 1e-3


def test_embed_is_the_stream_entering_block_zero(tiny_model64):
    model = tiny_model64
    toks = tokens(model)
    name = model.hook_name(0, "resid_pre")
    _, cache = model.run_with_cache(toks, [name])
    torch.testing.assert_close(model.embed(toks), cache[name], atol=1e-12, rtol=0)


def test_final_residual_feeds_ln_final_and_unembed(tiny_model64):
    model = tiny_model64
    logits, resid = model.final_residual(tokens(model))
    x = resid - resid.mean(-1, keepdim=True)
    normed = x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    state = model.tl_state_dict()
    w, b = state["ln_final.w"].double(), state["ln_final.b"].double()
    torch.testing.assert_close(((normed * w + b) @ model.W_U), logits, atol=1e-8, rtol=0)


def test_tl_state_dict_round_trip(tiny_model, backend):
    other = HookedModel.from_config(tiny_config(seed=7), backend=backend)
    toks = tokens(tiny_model)
    assert (other(toks) - tiny_model(toks)).abs().max() > 1e-3
    other.load_tl_state_dict(tiny_model.tl_state_dict())
    assert torch.equal(other(toks), tiny_model(toks))
    assert other.fingerprint() == tiny_model.fingerprint()


def test_the_fingerprint_follows_every_weight_change(tiny_model, backend):
    """The fingerprint is remembered between calls, but an in-place edit, a loaded state or a replaced parameter
    gives the hash of the new weights (each time equal to one computed afresh)."""
    before = tiny_model.fingerprint()
    assert tiny_model.fingerprint() == before == tiny_model._compute_fingerprint()
    param = next(tiny_model.model.parameters())
    with torch.no_grad():
        param.add_(1.0)
    edited = tiny_model.fingerprint()
    assert edited["weights_sha256"] != before["weights_sha256"] and edited == tiny_model._compute_fingerprint()
    tiny_model.load_tl_state_dict(HookedModel.from_config(tiny_config(seed=7), backend=backend).tl_state_dict())
    loaded = tiny_model.fingerprint()
    assert loaded["weights_sha256"] not in (before["weights_sha256"], edited["weights_sha256"])
    assert loaded == tiny_model._compute_fingerprint()
    module, name, weight = next((m, n, w) for m in tiny_model.model.modules()
                                for n, w in m.named_parameters(recurse=False))
    setattr(module, name, torch.nn.Parameter(weight.detach() * 2))  # a new tensor in the module
    assert tiny_model.fingerprint() == tiny_model._compute_fingerprint() != loaded


def test_tl_state_dict_without_copies(tiny_model):
    """clone=False gives the same weights, detached, without copying the large matrices."""
    copies, views = tiny_model.tl_state_dict(), tiny_model.tl_state_dict(clone=False)
    assert copies.keys() == views.keys()
    assert all(torch.equal(copies[k], views[k]) and not views[k].requires_grad for k in views)
    params = {p.untyped_storage().data_ptr() for p in tiny_model.model.parameters()}
    embed = views["embed.W_E"]
    assert embed.untyped_storage().data_ptr() in params  # shares the parameter's storage
    assert copies["embed.W_E"].untyped_storage().data_ptr() not in params


def test_regression_model_reads_vectors(regression_model):
    x = torch.randn(2, 7, 5)
    logits = regression_model(x)
    assert logits.shape == (2, 7, 1)
    assert regression_model.predict(logits).shape == (2, 7)
    # The read-in replaces the token embedding: block 0 sees read_in(x) + W_pos.
    name = regression_model.hook_name(0, "resid_pre")
    _, cache = regression_model.run_with_cache(x, [name])
    expected = regression_model.read_in(x) + regression_model.W_pos[:7]
    torch.testing.assert_close(cache[name], expected, atol=1e-6, rtol=0)


def test_activations_stop_after_the_last_one_and_equal_the_full_forward(tiny_model64):
    """The activations a stopped forward records equal run_with_cache's; nothing after the last one runs (a hook on
    the last block and on the unembedding never fires); the model's hooks are gone afterwards."""
    model, toks = tiny_model64, tokens(tiny_model64)
    names = [model.hook_name(layer, "resid_pre") for layer in range(model.n_layers)] + [model.hook_name(0, "attn.hook_z")]
    _, full = model.run_with_cache(toks, names)
    later: list[str] = []
    watch = [(model.hook_name(model.n_layers - 1, "mlp_out"), lambda act, hook: later.append("mlp")),
             ("ln_final.hook_normalized", lambda act, hook: later.append("ln_final"))]
    stopped = model.activations(toks, names, hooks=watch)
    assert later == [] and set(stopped) == set(names)
    for name in names:
        torch.testing.assert_close(stopped[name], full[name], rtol=0, atol=0)
    assert model.attached_hooks() == 0
    with pytest.raises(ValueError, match=r"names=\[\]: expected at least one hook name"):
        model.activations(toks, [])


def test_hooks_context_removes_only_its_own(tiny_model):
    name = tiny_model.hook_name(0, "resid_pre")
    point = tiny_model.hook_point(name)
    point.add_hook(lambda act, hook: None)  # a user's hook, attached outside tvlens
    users = list(point.fwd_hooks)
    with tiny_model.hooks([(name, lambda act, hook: act * 1.0)]):
        assert len(point.fwd_hooks) == 2
    assert point.fwd_hooks == users
    point.remove_hooks("fwd")
    assert tiny_model.attached_hooks() == 0


def test_bad_layer_and_hook_names(tiny_model):
    with pytest.raises(ValueError, match=r"layer=3 is out of range for a model with n_layers=3"):
        tiny_model.hook_name(3)
    with pytest.raises(TypeError, match=r"layer='1': expected an int"):
        tiny_model.hook_name("1")
    with pytest.raises(ValueError, match=r"hook='resid'"):
        tiny_model.hook_name(0, "resid")
    with pytest.raises(KeyError, match=r"does not exist"):
        tiny_model.hook_point("blocks.0.hook_nothing")


def test_bad_inputs(tiny_model, regression_model):
    with pytest.raises(ValueError, match=r"expected token ids \[batch, pos\]"):
        tiny_model(torch.randint(5, (7,)))
    with pytest.raises(ValueError, match=r"n_ctx is 64"):
        tiny_model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match=r"regression model \(d_input=5\)"):
        regression_model(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"residual stream \[batch, pos, d_model=32\]"):
        tiny_model.run_from_layer(torch.zeros(1, 3, 31), 1)


def test_model_config_round_trip_and_errors():
    cfg = ModelConfig(n_layers=2, d_model=48, n_heads=3, d_vocab=10, n_ctx=20)
    assert cfg.d_head == 16 and cfg.d_mlp == 192
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"d_model=30 is not divisible by n_heads=4"):
        ModelConfig(n_layers=1, d_model=30, n_heads=4, d_vocab=5, n_ctx=5)
    with pytest.raises(ValueError, match=r"n_layers=0"):
        ModelConfig(n_layers=0, d_model=32, n_heads=4, d_vocab=5, n_ctx=5)
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_token_ids_outside_the_vocabulary_are_a_clear_error(tiny_model):
    tokens = torch.zeros(2, 4, dtype=torch.long)
    tokens[1, 2] = tiny_model.d_vocab
    with pytest.raises(ValueError, match=rf"token id {tiny_model.d_vocab}: expected ids in \[0, d_vocab="):
        tiny_model(tokens)
    tokens[1, 2] = -1
    with pytest.raises(ValueError, match=r"token id -1"):
        tiny_model.embed(tokens)
