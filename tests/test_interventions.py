"""inject / Intervention: exact effects, padding awareness, hook hygiene, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from tvlens import Intervention, inject
from tvlens.interventions import injected_forward


def toks(model, batch=3, pos=10, seed=0):
    return torch.randint(model.d_vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


def vec(model, seed=1, rows=None):
    shape = (model.d_model,) if rows is None else (rows, model.d_model)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=model.dtype)


def test_zero_vector_changes_nothing(tiny_model):
    t = toks(tiny_model)
    clean = tiny_model(t)
    with inject(tiny_model, Intervention(torch.zeros(tiny_model.d_model), layer=1, positions="all")):
        assert torch.equal(tiny_model(t), clean)


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize("positions", ["last", 3, [1, -2], slice(2, 6), "all"])
def test_add_equals_forward_from_layer_with_shifted_stream(tiny_model64, layer, positions):
    model, t, v = tiny_model64, toks(tiny_model64), vec(tiny_model64)
    name = model.hook_name(layer, "resid_pre")
    _, cache = model.run_with_cache(t, [name])
    resid = cache[name].clone()
    index = {"last": [9], 3: [3], "all": list(range(10))}.get(positions) if not isinstance(positions, (list, slice)) \
        else (list(range(10))[positions] if isinstance(positions, slice) else [p % 10 for p in positions])
    resid[:, index] += 0.7 * v
    expected = model.run_from_layer(resid, layer)
    with inject(model, Intervention(v, layer=layer, positions=positions, scale=0.7)):
        got = model(t)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("layer", [0, 2])
def test_replace_sets_the_stream_exactly(tiny_model64, layer):
    model, t, v = tiny_model64, toks(tiny_model64), vec(tiny_model64, rows=3)
    name = model.hook_name(layer, "resid_pre")
    _, cache = model.run_with_cache(t, [name])
    resid = cache[name].clone()
    resid[:, 4] = v
    with inject(model, Intervention(v, layer=layer, positions=4, mode="replace")):
        got, seen = model.run_with_cache(t, [name])
    assert torch.equal(seen[name][:, 4], v)
    torch.testing.assert_close(got, model.run_from_layer(resid, layer), atol=1e-10, rtol=0)


def test_resid_post_of_l_is_resid_pre_of_l_plus_1(tiny_model64):
    model, t, v = tiny_model64, toks(tiny_model64), vec(tiny_model64)
    with inject(model, Intervention(v, layer=0, hook="resid_post")):
        a = model(t)
    with inject(model, Intervention(v, layer=1, hook="resid_pre")):
        b = model(t)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_several_layers_compose(tiny_model64):
    model, t = tiny_model64, toks(tiny_model64)
    v0, v2 = vec(model, 1), vec(model, 2)
    name = model.hook_name(2, "resid_pre")
    with inject(model, Intervention(v0, layer=0)):
        _, cache = model.run_with_cache(t, [name])
    resid = cache[name].clone()
    resid[:, -1] += v2
    with inject(model, Intervention(v0, layer=0), Intervention(v2, layer=2)):
        got = model(t)
    torch.testing.assert_close(got, model.run_from_layer(resid, 2), atol=1e-10, rtol=0)


@pytest.mark.parametrize("positions", ["last", 0, -3, "tensor"])
def test_left_padding_matches_unpadded_examples(tiny_model64, positions):
    """A left-padded batch with per-example vectors gives each example's unpadded logits."""
    model = tiny_model64
    lengths = [7, 4, 5]
    seq = max(lengths)
    singles = [toks(model, 1, n, seed=10 + i) for i, n in enumerate(lengths)]
    padded = torch.zeros(len(lengths), seq, dtype=torch.long)
    mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for b, (s, n) in enumerate(zip(singles, lengths)):
        padded[b, seq - n :] = s[0]
        mask[b, seq - n :] = 1
    v = vec(model, rows=len(lengths))
    spec = torch.tensor([1, 3, 0]) if positions == "tensor" else positions
    with inject(model, Intervention(v, layer=1, positions=spec)):
        batched = model(padded, attention_mask=mask)
    for b, (s, n) in enumerate(zip(singles, lengths)):
        one_spec = spec[b : b + 1] if positions == "tensor" else spec
        with inject(model, Intervention(v[b], layer=1, positions=one_spec)):
            alone = model(s)
        torch.testing.assert_close(batched[b, seq - n :], alone[0], atol=1e-8, rtol=0)


def test_right_padding_last_means_last_real_token(tiny_model64):
    model = tiny_model64
    t = toks(model, 1, 6, seed=3)
    padded = torch.cat([t, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    v = vec(model)
    with inject(model, Intervention(v, layer=1)):
        alone = model(t)
        batched = model(padded, attention_mask=mask)
    torch.testing.assert_close(batched[0, :6], alone[0], atol=1e-8, rtol=0)


def _no_hooks_left(model) -> bool:
    return model.attached_hooks() == 0 and all(not hp.fwd_hooks for hp in model.hook_points())


def test_hooks_removed_after_exception_in_body(tiny_model):
    with pytest.raises(RuntimeError, match="boom"):
        with inject(tiny_model, Intervention(vec(tiny_model), layer=1)):
            assert tiny_model.attached_hooks() == 1
            raise RuntimeError("boom")
    assert _no_hooks_left(tiny_model)


def test_hooks_removed_after_error_inside_the_forward(tiny_model):
    """The position is out of range only for this prompt: the hook raises mid-forward."""
    with pytest.raises(ValueError, match=r"position 12 is out of range for example 0, a prompt of 10 real tokens"):
        with inject(tiny_model, Intervention(vec(tiny_model), layer=2, positions=12)):
            tiny_model(toks(tiny_model))
    assert _no_hooks_left(tiny_model)


def test_hooks_removed_after_keyboard_interrupt(tiny_model):
    def interrupt(act, hook):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with inject(tiny_model, Intervention(vec(tiny_model), layer=0), Intervention(vec(tiny_model), layer=2)):
            tiny_model(toks(tiny_model), hooks=[(tiny_model.hook_name(1), interrupt)])
    assert _no_hooks_left(tiny_model)


def test_invalid_intervention_attaches_nothing(tiny_model):
    good = Intervention(vec(tiny_model), layer=0)
    bad = Intervention(vec(tiny_model), layer=7)
    with pytest.raises(ValueError, match="layer=7 is out of range"):
        with inject(tiny_model, good, bad):
            pass
    assert _no_hooks_left(tiny_model)


def test_inject_accepts_a_raw_transformer_lens_model(tiny_model):
    raw, t, v = tiny_model.model, toks(tiny_model), vec(tiny_model)
    with inject(tiny_model, Intervention(v, layer=1)):
        expected = tiny_model(t)
    with inject(raw, Intervention(v, layer=1)):
        got = raw(t)
    torch.testing.assert_close(got, expected)
    assert _no_hooks_left(tiny_model)


def test_gradient_flows_into_the_vector_only(tiny_model64):
    """d loss / d v equals the gradient w.r.t. the stream at the injected position (independent path)."""
    model, t = tiny_model64, toks(tiny_model64)
    before = {k: p.clone() for k, p in model.state_dict().items()}
    v = vec(model).requires_grad_(True)
    loss = injected_forward(model, t, [Intervention(v, layer=1, positions=-2)])[:, -1, 5].sum()
    loss.backward()

    name = model.hook_name(1, "resid_pre")
    _, cache = model.run_with_cache(t, [name])
    resid = cache[name].detach().clone()
    resid[:, -2] += v.detach()
    resid.requires_grad_(True)
    model.run_from_layer(resid, 1)[:, -1, 5].sum().backward()
    torch.testing.assert_close(v.grad, resid.grad[:, -2].sum(0), atol=1e-10, rtol=0)
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_per_example_vector_rows_must_match_batch(tiny_model):
    with pytest.raises(ValueError, match=r"vector has 2 rows \(one per example\) but the batch has 3 examples"):
        with inject(tiny_model, Intervention(vec(tiny_model, rows=2), layer=0)):
            tiny_model(toks(tiny_model))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"vector": torch.randn(31)}, ValueError, r"vector has shape \(31,\): its last dimension must be the model's d_model=32"),
        ({"vector": torch.randn(32, dtype=torch.float64)}, TypeError, r"vector has dtype torch.float64 but the model computes in torch.float32"),
        ({"vector": torch.randn(32, device="meta")}, ValueError, r"vector is on device meta but the model is on cpu"),
        ({"layer": -4}, ValueError, r"layer=-4 is out of range for a model with n_layers=3; expected -3 <= layer < 3"),
    ],
)
def test_errors_against_the_model(tiny_model, kwargs, error, message):
    args = {"vector": torch.randn(32), "layer": 1, **kwargs}
    with pytest.raises(error, match=message):
        with inject(tiny_model, Intervention(**args)):
            pass
    assert _no_hooks_left(tiny_model)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"vector": torch.tensor([1.0, float("nan")])}, ValueError, r"NaN or inf"),
        ({"vector": torch.tensor([1.0, float("inf")])}, ValueError, r"NaN or inf"),
        ({"vector": torch.zeros(2, 3, 4)}, ValueError, r"expected \[d_model\] or \[batch, d_model\]"),
        ({"vector": torch.zeros(4, dtype=torch.long)}, TypeError, r"floating-point tensor"),
        ({"vector": [0.0, 1.0]}, TypeError, r"expected a torch.Tensor, got list"),
        ({"mode": "multiply"}, ValueError, r"mode='multiply': expected 'add' or 'replace'"),
        ({"hook": "attn.hook_z"}, ValueError, r"hook='attn.hook_z': expected one of"),
        ({"scale": float("nan")}, ValueError, r"scale=nan: expected a finite number"),
        ({"layer": 1.0}, TypeError, r"layer=1.0: expected an int"),
        ({"positions": "middle"}, ValueError, r"positions='middle'"),
    ],
)
def test_construction_errors(kwargs, error, message):
    args = {"vector": torch.zeros(4), "layer": 0, **kwargs}
    with pytest.raises(error, match=message):
        Intervention(**args)


def test_select_keeps_rows_of_per_example_parts():
    iv = Intervention(torch.arange(12.0).reshape(3, 4), layer=0, positions=torch.tensor([0, 1, 2]))
    sub = iv.select(slice(1, 3))
    assert torch.equal(sub.vector, iv.vector[1:3]) and torch.equal(sub.positions, torch.tensor([1, 2]))
    shared = Intervention(torch.zeros(4), layer=0)
    assert shared.select(slice(0, 1)) is shared


def test_a_prompt_moved_to_a_later_position_is_that_prompt_run_there():
    """position_shift on learned absolute positions equals the forward from embeddings taken at the later positions
    (computed by hand with W_E and W_pos); with the zero-shot query's own moved embedding replaced in at L0, the
    scores are the moved baseline's exactly; on rotary positions nothing moves; a target beyond the context is a
    one-line error."""
    from tvlens import zoo
    from tvlens.interventions import position_shift
    from tvlens.scoring import PromptScorer
    from tvlens.tasks import Splits
    from tvlens.vectors.vanilla import source_position

    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    batch = Splits(0).sample(task, "test", 32, 16)
    zero, at = batch.zero_shot, source_position(batch)
    assert (at == batch.view("icl").inputs.shape[1] - 1).all()
    n, length = zero.inputs.shape
    with torch.no_grad():
        positions = at[:, None] - torch.arange(length - 1, -1, -1)
        by_hand = model.run_from_layer(model.W_E[zero.inputs] + model.W_pos[positions], 0)[:, -1]
        shifted = position_shift(model, n, length, None, at)
        with inject(model, *shifted):
            hooked = model(zero.inputs)[:, -1]
    torch.testing.assert_close(hooked, by_hand, atol=1e-5, rtol=1e-5)
    scorer = PromptScorer(model, batch)
    moved = scorer.evaluate("zero_shot", query_at=at)
    assert moved.values.tolist() == (by_hand.argmax(-1) == zero.targets).float().tolist()
    own = (model.W_E[zero.inputs[:, -1]] + model.W_pos[at]).detach()
    same = scorer.evaluate("injected", Intervention(own, 0, mode="replace"), query_at=at)
    assert torch.equal(same.values, moved.values) and moved.mean != scorer.evaluate("zero_shot").mean
    with pytest.raises(ValueError, match=r"^query_at=\[.*\]: expected positions from the prompts' own query position "
                                         r"\(2\) to the model's last \(\d+\)$"):
        position_shift(model, n, length, None, at + 1000)


def test_rotary_positions_move_nothing(tokenizer, tmp_path):
    from tests.hf_models import build
    from tvlens.interventions import position_shift
    from tvlens.models import HookedModel

    model = HookedModel.from_pretrained(str(build("llama", tmp_path / "rotary", tokenizer)))
    assert not model.capabilities.learned_positions and position_shift(model, 2, 5, None, 40) == []


def test_padded_prompts_of_other_lengths_move_one_by_one(tokenizer, tmp_path):
    """Left-padded word-pair prompts of several lengths on a learned-position model (GPT-2): each prompt moves so
    that its query sits at its own target; checked against the forward from embeddings at those positions."""
    from tests.hf_models import build
    from tvlens.interventions import position_shift, query_position_ids
    from tvlens.models import HookedModel
    from tvlens.tasks import Splits
    from tvlens.tasks.text import TextTasks, builtin_tasks

    model = HookedModel.from_pretrained(str(build("gpt2", tmp_path / "learned", tokenizer)), dtype=torch.float64)
    task = TextTasks((builtin_tasks()["antonyms"],), tokenizer=model.tokenizer).single(0)
    zero = Splits(0).sample(task, "test", 8, 3).zero_shot
    mask = zero.attention_mask
    n, length = zero.inputs.shape
    own = query_position_ids(n, length, mask)
    assert len(set(own.tolist())) > 1  # prompts of several lengths
    target = own.max() + 5 + torch.arange(n)
    with torch.no_grad():
        ids = (model.position_ids(n, length, mask) + (target - own)[:, None]) * mask
        by_hand = model.run_from_layer(model.W_E[zero.inputs] + model.W_pos[ids], 0, attention_mask=mask)[:, -1]
        with inject(model, *position_shift(model, n, length, mask, target)):
            moved = model(zero.inputs, attention_mask=mask)[:, -1]
    torch.testing.assert_close(moved, by_hand, atol=1e-9, rtol=1e-9)
