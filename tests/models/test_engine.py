"""The query engine: its cached path equals the full forward (float64, 1e-5) on tvlens' own models and on a
tiny random model of every architecture family it allows, built offline — query logits, the loss and
gradient of a learned vector, multi-head ablations across layers, stream collection, early positions,
left padding. Both TransformerLens lines run this file (3.x for the families its converters take)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from tvlens import Intervention, inject
from tvlens.models import HookedModel
from tvlens.models import engine as engine_module
from tvlens.models.capabilities import read_capabilities
from tvlens.models.engine import QueryEngine, StreamEdit
from tvlens.tasks.text import TextTasks

from ..hf_models import FAMILIES, hf_model


def full_loss(model, inputs, mask, vectors, mode, targets):
    """The reference: the vectors put in with tvlens.inject, one full forward."""
    ivs = [Intervention(v, layer=layer, mode=mode) for layer, v in vectors.items() if layer < model.n_layers]
    if model.n_layers in vectors:
        ivs.append(Intervention(vectors[model.n_layers], layer=model.n_layers - 1, hook="resid_post", mode=mode))
    with inject(model, *ivs):
        logits = model(inputs, attention_mask=mask)[:, -1]
    return F.cross_entropy(logits, targets)


@pytest.mark.parametrize(
    ("mode", "layers"),
    # layer 3 = n_layers is the final stream (resid_post of the last block)
    [("add", [1]), ("add", [0, 2]), ("add", [2, 3]), ("replace", [1]), ("replace", [0, 2])],
)
@pytest.mark.parametrize("base", ["zero_shot", "icl"])
def test_loss_and_gradient_match_full_forward(tiny_model64, small_task, mode, layers, base):
    model = tiny_model64
    batch = small_task.sample(5, 3, seed=0)
    prompts = batch.zero_shot if base == "zero_shot" else batch
    gen = torch.Generator().manual_seed(1)
    vectors = {layer: torch.randn(model.d_model, generator=gen, dtype=torch.float64).requires_grad_(True)
               for layer in layers}
    engine = QueryEngine(model, prompts.inputs, start=min(min(layers), model.n_layers - 1))
    assert engine.path == "cached"
    cached = F.cross_entropy(engine.run([StreamEdit(k, v, mode=mode) for k, v in vectors.items()]), prompts.targets)
    # (with replace, a vector replaced again at a later layer gets no gradient on either path)
    cached_grads = torch.autograd.grad(cached, list(vectors.values()), allow_unused=True, materialize_grads=True)
    full = full_loss(model, prompts.inputs, None, vectors, mode, prompts.targets)
    full_grads = torch.autograd.grad(full, list(vectors.values()), allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
    for a, b in zip(cached_grads, full_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("position", [1, 3, -2])
def test_early_position_runs_the_suffix_and_equals_the_full_forward(tiny_model64, small_task, position):
    """A vector at position P: the columns before P are cached, the rest run; loss and gradient as the full forward."""
    model = tiny_model64
    prompts = small_task.sample(6, 4, seed=4)
    theta = torch.randn(model.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    theta.requires_grad_(True)
    engine = QueryEngine(model, prompts.inputs, start=1, positions=[position])
    n_pos = prompts.inputs.shape[1]
    assert engine.path == "cached" and engine._suffix.width == n_pos - (position % n_pos)
    cached = F.cross_entropy(engine.run([StreamEdit(1, theta, position)]), prompts.targets)
    with inject(model, Intervention(theta, layer=1, positions=position)):
        full = F.cross_entropy(model(prompts.inputs)[:, -1], prompts.targets)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.autograd.grad(cached, theta)[0], torch.autograd.grad(full, theta)[0],
                               atol=1e-5, rtol=0)


def test_left_padded_prompts_and_row_subsets(tiny_model64):
    model = tiny_model64
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(model.d_vocab, (4, 8), generator=gen)
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0
    mask[3, :5] = 0
    v = torch.randn(model.d_model, generator=gen, dtype=torch.float64)
    engine = QueryEngine(model, tokens, mask, start=1, positions=["last", 1])
    for position in ("last", 1):
        with inject(model, Intervention(v, layer=1, positions=position)):
            full = model(tokens, attention_mask=mask)[:, -1]
        torch.testing.assert_close(engine.run([StreamEdit(1, v, position)]), full, atol=1e-10, rtol=0)
        rows = torch.tensor([3, 1, 3])
        torch.testing.assert_close(engine.run([StreamEdit(1, v, position)], rows=rows), full[rows], atol=1e-10, rtol=0)


def test_a_wide_suffix_runs_its_last_block_at_the_query_alone(tiny_model64):
    """With several suffix columns the last block computes the query column alone (the others give keys and
    values): edits of the final stream act where they land on the query — for a row whose position 1 is its
    last real token — and nowhere else; logits and the recorded streams as the full forward."""
    model = tiny_model64
    gen = torch.Generator().manual_seed(7)
    tokens = torch.randint(model.d_vocab, (4, 8), generator=gen)
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0
    mask[2, :6] = 0  # two real tokens: position 1 is the query
    v = torch.randn(3, model.d_model, generator=gen, dtype=torch.float64)
    final = model.n_layers
    edits = [StreamEdit(1, v[0], 1), StreamEdit(final, v[1], 1), StreamEdit(final, v[2], "last", "replace")]
    out = {}
    for path in ("cached", "full"):
        engine = QueryEngine(model, tokens, mask, start=1, positions=["last", 1], path=path)
        streams = []
        out[path] = (engine.run(edits, streams=streams), engine.run(edits[:2]), *streams)
    assert out["cached"][0].shape == (4, model.d_vocab)
    for a, b in zip(out["cached"], out["full"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    alone = QueryEngine(model, tokens, mask, start=1, positions=["last", 1]).run(edits[:1])
    moved = (out["cached"][1] - alone).abs().amax(-1) > 1e-8
    assert moved.tolist() == [False, False, True, False]  # the final-stream edit at position 1 reaches row 2 only


def test_repeated_prompts_run_once_and_equal_the_full_forward(tiny_model64, monkeypatch):
    """Prompts that repeat (a zero-shot view) are cached once; a call whose repeated rows carry the same edits —
    one [d] vector, or per-row vectors with ``variants`` — runs each (prompt, edits) pair once. Logits, recorded
    streams, the final stream and the gradient of per-copy vectors equal the full forward; per-row vectors
    without ``variants`` still run every row."""
    model = tiny_model64
    gen = torch.Generator().manual_seed(11)
    distinct = torch.randint(model.d_vocab, (3, 5), generator=gen)
    tokens = distinct[torch.tensor([0, 1, 0, 2, 1, 0])]
    mask = torch.ones_like(tokens)
    mask[[1, 4], :2] = 0  # prompt 1 padded: the mask is part of what makes two prompts equal
    mask[5, :1] = 0  # row 5 has prompt 0's tokens but another mask: a prompt of its own
    theta = torch.randn(2, model.d_model, generator=gen, dtype=torch.float64, requires_grad=True)
    cached, full = (QueryEngine(model, tokens, mask, start=1, positions=["last", 1], path=p)
                    for p in ("cached", "full"))
    assert cached._distinct[0].tolist() == [0, 1, 3, 5] and cached._distinct[1].tolist() == [0, 1, 0, 2, 1, 3]
    assert cached._suffix.window.shape[0] == 4  # the cache holds the distinct prompts

    ran = []
    real_run = engine_module._CachedSuffix.run
    monkeypatch.setattr(engine_module._CachedSuffix, "run", lambda self, edits, index, *a: ran.append(
        len(range(len(self.window))[index]) if isinstance(index, slice) else len(index)) or real_run(
        self, edits, index, *a))

    rows = torch.tensor([0, 2, 1, 3, 1, 4])  # copy 0: prompt 0 twice and prompt 1; copy 1: prompt 2, prompt 1 twice
    per_copy = theta.repeat_interleave(3, 0)  # [6, d]: copy c's vector on its three rows
    variants = torch.tensor([0, 0, 0, 1, 1, 1])
    edits = [StreamEdit(1, per_copy, 1), StreamEdit(model.n_layers, per_copy, "last")]
    out = {}
    for name, engine in (("cached", cached), ("full", full)):
        streams = []
        logits, final = engine.run(edits, rows=rows, variants=variants, streams=streams, return_resid=True)
        grad = torch.autograd.grad(F.cross_entropy(logits, tokens[rows, 0]), theta)[0]
        out[name] = (logits, final, grad, *streams)
    assert ran == [4]  # six rows, four (prompt, vector) pairs
    for a, b in zip(out["cached"], out["full"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)

    ran.clear()
    one = [StreamEdit(2, theta[0].detach())]  # one vector for every row: repeats run once without variants
    torch.testing.assert_close(cached.run(one, copies=2), full.run(one, copies=2), atol=1e-10, rtol=0)
    torch.testing.assert_close(cached.run([StreamEdit(2, per_copy.detach(), 1)], rows=rows),
                               full.run([StreamEdit(2, per_copy.detach(), 1)], rows=rows), atol=1e-10, rtol=0)
    assert ran == [4, 6]  # 12 rows of 4 distinct prompts; per-row vectors without variants: every row

    with pytest.raises(ValueError, match=r"variants: a torch.float32 tensor of shape \(6,\); expected integer "
                                         r"labels of shape \(6,\)"):
        cached.run(edits, rows=rows, variants=torch.zeros(6))
    with pytest.raises(ValueError, match=r"variants: a torch.int64 tensor of shape \(5,\); expected integer "
                                         r"labels of shape \(6,\), one per row"):
        cached.run(edits, rows=rows, variants=torch.zeros(5, dtype=torch.long))


def test_rows_join_at_their_first_edited_layer(tiny_model64, monkeypatch):
    """Vectors of several layers side by side, rows sorted by layer with ``enter``: each row runs only the blocks
    from its layer (joining with its prompt's intact stream), and the logits, streams and gradients equal the full
    forward — with repeated prompts too."""
    model = tiny_model64
    gen = torch.Generator().manual_seed(5)
    tokens = torch.randint(model.d_vocab, (4, 6), generator=gen)[torch.tensor([0, 1, 2, 3, 1])]  # prompt 1 twice
    theta = torch.randn(3, model.d_model, generator=gen, dtype=torch.float64, requires_grad=True)
    layers = [0, 1, 2]  # copy c carries theta[c] at layer c
    n = len(tokens)
    rows = torch.arange(n).repeat(3)
    def edits() -> list[StreamEdit]:  # copy k's rows carry theta[k] at layer k, the other rows zeros
        return [StreamEdit(k, torch.zeros(3 * n, model.d_model, dtype=torch.float64).index_add(
            0, torch.arange(k * n, (k + 1) * n), theta[k].expand(n, -1))) for k in layers]

    enter = torch.tensor(layers).repeat_interleave(n)
    ran = []
    real_block = engine_module._CachedSuffix._block
    monkeypatch.setattr(engine_module._CachedSuffix, "_block",
                        lambda self, layer, x, *a: ran.append((layer, x.shape[0])) or real_block(self, layer, x, *a))
    out = {}
    for name, engine, options in (("joined", QueryEngine(model, tokens), {"enter": enter}),
                                  ("joined, repeats once", QueryEngine(model, tokens),
                                   {"enter": enter, "variants": torch.arange(3).repeat_interleave(n)}),
                                  ("full", QueryEngine(model, tokens, path="full"), {})):
        streams = []
        logits = engine.run(edits(), rows=rows, streams=streams, **options)
        out[name] = (logits, torch.autograd.grad(logits.logsumexp(-1).sum(), theta)[0], *streams)
        if name == "joined":
            # the intact run of the 4 distinct prompts (once per engine), then copy k's rows from block k on
            assert ran == [(0, 4), (1, 4), (2, 4), (0, 5), (1, 10), (2, 15)]
        if name == "joined, repeats once":
            assert ran[-3:] == [(0, 4), (1, 8), (2, 12)]
    for name in ("joined", "joined, repeats once"):
        for a, b in zip(out[name], out["full"], strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    engine = QueryEngine(model, tokens, start=1)
    with pytest.raises(ValueError, match=r"enter: a torch.int64 tensor of shape \(15,\); expected \(15,\) "
                                         r"non-decreasing integer layers in \[1, 3\]"):
        engine.run(edits()[1:], rows=rows, enter=enter)  # layer 0 is before start
    with pytest.raises(ValueError, match="non-decreasing"):
        engine.run(edits()[1:], rows=rows, enter=enter.flip(0).clamp(min=1))
    with pytest.raises(ValueError, match=r"enter: 5 rows enter after layer 1, where a StreamEdit \(add\) changes "
                                         r"them; expected every row's edits at layers >= its enter"):
        engine.run([StreamEdit(1, theta[0].detach())], rows=rows, enter=enter.clamp(min=1))


def test_regression_model(backend, regression_task):
    from tests.conftest import tiny_config

    model = HookedModel.from_config(tiny_config(d_vocab=1, d_input=5), backend=backend, dtype=torch.float64)
    prompts = regression_task.sample(4, 3, seed=0)
    v = torch.randn(model.d_model, dtype=torch.float64)
    engine = QueryEngine(model, prompts.inputs.double(), start=1)
    with inject(model, Intervention(v, layer=1)):
        full = model(prompts.inputs.double())[:, -1]
    torch.testing.assert_close(engine.run([StreamEdit(1, v)]), full, atol=1e-8, rtol=0)


def test_errors_name_the_argument(tiny_model):
    engine = QueryEngine(tiny_model, torch.zeros(2, 5, dtype=torch.long), start=2)
    with pytest.raises(ValueError, match=r"StreamEdit.layer=1 is outside this engine's range \[2, 3\]"):
        engine.run([StreamEdit(1, torch.zeros(32))])
    with pytest.raises(ValueError, match=r"StreamEdit.position=0 was not declared; this engine's positions are"):
        engine.run([StreamEdit(2, torch.zeros(32), 0)])
    with pytest.raises(ValueError, match="pass either rows or copies"):
        engine.run(rows=torch.tensor([0]), copies=2)
    with pytest.raises(ValueError, match=r"StreamEdit.vector has shape \(3, 32\); expected \[32\] or \[2, 32\]"):
        engine.run([StreamEdit(2, torch.zeros(3, 32))])
    with pytest.raises(ValueError, match=r"StreamEdit.mode='scale': expected 'add' or 'replace'"):
        StreamEdit(2, torch.zeros(32), mode="scale")
    with pytest.raises(ValueError, match=r"path='fast': expected 'auto', 'cached' or 'full'"):
        QueryEngine(tiny_model, torch.zeros(2, 5, dtype=torch.long), path="fast")
    right_padded = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    engine = QueryEngine(tiny_model, torch.zeros(2, 5, dtype=torch.long), right_padded)
    assert engine.path == "full" and "right padding" in engine.reason
    with pytest.raises(ValueError, match=r"path='cached' is not possible here: the query is not the last column"):
        QueryEngine(tiny_model, torch.zeros(2, 5, dtype=torch.long), right_padded, path="cached")


def test_an_unverified_architecture_runs_the_full_path_and_says_why(tiny_model):
    fake = SimpleNamespace(cfg=tiny_model.cfg, original_model=SimpleNamespace(config=SimpleNamespace(
        model_type="bloom", architectures=["BloomForCausalLM"])))
    caps = read_capabilities(fake)
    assert not caps.cached_suffix and "'bloom' is not among those whose cached path is checked" in caps.reason
    assert tiny_model.capabilities.cached_suffix and tiny_model.capabilities.reason == ""


def test_the_family_table_is_the_one_home_of_family_facts():
    """Every family the engine is checked on is one Family entry, found by model type and by architecture; a
    duplicate is refused; a family's refused config flag sends the model to the full path with the reason."""
    from tvlens.models.capabilities import FAMILIES, VERIFIED_ARCHITECTURES, Family, family_of, register_family

    assert {name for name in FAMILIES} == {"gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma", "gemma2",
                                           "gptj", "phi"}
    assert VERIFIED_ARCHITECTURES == {name: f.architecture for name, f in FAMILIES.items()}
    assert family_of("GPTJForCausalLM") is FAMILIES["gptj"] and family_of("BloomForCausalLM") is None
    with pytest.raises(ValueError, match=r"family 'gptj' \(GPTJForCausalLM\): already registered as 'gptj'"):
        register_family(Family("gptj", "GPTJForCausalLM"))
    with pytest.raises(ValueError, match="Family.parallel_norm='both'"):
        Family("x", "XForCausalLM", parallel_norm="both")
    assert (FAMILIES["gptj"].parallel_norm, FAMILIES["phi"].parallel_norm, FAMILIES["gpt_neox"].parallel_norm) == \
        ("shared", "shared", "own")


# ----------------------------------------------------------------------------- every architecture family
@pytest.fixture(scope="module")
def prompts(tokenizer):
    return TextTasks(("country_capital", "antonyms"), tokenizer=tokenizer).sample(6, 4, seed=0)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tokenizer):
    try:
        model = HookedModel.from_hf(hf_model(request.param, tokenizer, n_layers=3), tokenizer, dtype=torch.float64)
    except Exception as error:  # TL 3.x's converters do not take every family
        if _line() >= 4:
            raise
        pytest.skip(f"TransformerLens 3.x does not load {request.param}: {type(error).__name__}")
    return request.param, model


def _line() -> int:
    from tvlens.models import transformer_lens_line

    return transformer_lens_line()


def test_family_is_cached_and_reads_its_architecture(family):
    name, model = family
    caps = model.capabilities
    assert caps.cached_suffix, caps.reason
    expected_kv = {"llama_gqa": 2, "mistral": 2, "qwen2": 2, "gemma": 1, "gemma2": 2}.get(name, model.n_heads)
    assert caps.n_key_value_heads == expected_kv
    assert caps.parallel_attn_mlp == (name in ("neox", "gptj", "phi"))
    assert caps.positional == ("standard" if name == "gpt2" else "rotary")
    if name in ("neox", "gptj", "phi"):  # partial rotary: a quarter (NeoX), rotary_dim (GPT-J), half (Phi)
        assert caps.rotary_dim == {"neox": 4, "gptj": 8, "phi": 8}[name]
        assert caps.parallel_norm == ("own" if name == "neox" else "shared")
    assert caps.rotary_interleaved == (name == "gptj") and caps.norm_offset == (1.0 if "gemma" in name else 0.0)
    assert caps.sandwich_norms == (("post_attention_layernorm", "post_feedforward_layernorm") if name == "gemma2"
                                   else None)
    # a 3.x HookedTransformer computes its rotary angles in its own dtype, Hugging Face's modules in float32
    assert caps.rotary_in_model_dtype == (caps.positional == "rotary" and _line() == 3)


@pytest.mark.parametrize("position", ["last", 1])
def test_family_logits_streams_and_head_edits_equal_the_full_forward(family, prompts, position):
    """Left-padded word-pair prompts; vectors at three layers (the final stream included); heads zeroed at
    every layer through ``z_edit``; the query's streams recorded — cached and full agree in float64."""
    _, model = family
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(3, model.d_model, dtype=torch.float64, generator=gen)
    edits = [StreamEdit(1, theta[0], position), StreamEdit(2, theta[1], position, "replace"),
             StreamEdit(3, theta[2], position)]

    def z_edit(layer, z):
        return z * torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=z.dtype)[:, None]

    results = {}
    for path in ("cached", "full"):
        engine = QueryEngine(model, prompts.inputs, prompts.attention_mask, start=1, positions=[position], path=path)
        streams = []
        logits, final = engine.run(edits, z_edit=z_edit, streams=streams, return_resid=True)
        results[path] = (logits, final, streams)
    (a, fa, sa), (b, fb, sb) = results["cached"], results["full"]
    assert not torch.isnan(b).any()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(fa, fb, atol=1e-5, rtol=0)
    for x, y in zip(sa, sb, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_family_prefix_in_small_chunks_equals_the_full_forward(family, prompts, monkeypatch):
    """The prefix in one chunk (left-padded prompts of several lengths: a padding mask) and a prompt at a time (each
    chunk from its first real token: a mask of causality alone, left to the fused kernel, except where Gemma-2's
    window of 16 is reached) gives the logits and streams of the full forward."""
    _, model = family
    theta = torch.randn(model.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert prompts.attention_mask.eq(0).any() and prompts.attention_mask.sum(1).unique().numel() > 1
    out = {}
    for label, chunk_bytes in (("one chunk", 2**40), ("a prompt at a time", 1)):
        monkeypatch.setattr(engine_module, "PREFIX_CHUNK_BYTES", chunk_bytes)
        for path in ("cached", "full"):
            engine = QueryEngine(model, prompts.inputs, prompts.attention_mask, start=1, positions=["last", 1],
                                 path=path)
            streams = []
            logits = engine.run([StreamEdit(1, theta, 1), StreamEdit(2, theta, "last")], streams=streams)
            out[label, path] = (logits, *streams)
    for label in ("one chunk", "a prompt at a time"):
        for a, b in zip(out[label, "cached"], out["one chunk", "full"], strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_family_ltv_gradient_multihead_ablation_copies_and_resume(family, prompts):
    """The learned-vector loss and gradient; a batch of copies ablating several heads across layers, resumed
    from the intact run at their first ablated layer (the head scan's protocol) — cached vs full."""
    _, model = family
    theta = torch.randn(model.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    theta.requires_grad_(True)
    masks = torch.zeros(3, model.n_layers, model.n_heads, dtype=torch.bool)
    masks[0, 1, 0] = masks[0, 2, 3] = masks[1, 1, [1, 2]] = masks[2, 1, 3] = masks[2, 2, :2] = True
    out = {}
    for path in ("cached", "full"):
        engine = QueryEngine(model, prompts.inputs, prompts.attention_mask, start=1, path=path)
        loss = F.cross_entropy(engine.run([StreamEdit(1, theta)]), prompts.targets)
        grad = torch.autograd.grad(loss, theta)[0]
        with torch.no_grad():
            streams, intact = [], {}

            def keep(layer, z, intact=intact):
                return intact.setdefault(layer, z)

            engine.run([StreamEdit(1, theta)], streams=streams, z_edit=keep)
            rows = masks.repeat_interleave(len(prompts), 0)

            def ablate(layer, z, rows=rows):
                return z.masked_fill(rows[:, layer, :, None], 0.0)

            ablated = engine.run([StreamEdit(1, theta)], copies=3, z_edit=ablate, resume=(1, streams[0], intact[1]))
        out[path] = (loss, grad, ablated)
    for x, y in zip(out["cached"], out["full"]):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_gqa_heads_share_their_groups_value_weights(tokenizer):
    """OV circuits under grouped-query attention: query head h reads value head h // (n_heads / n_kv)."""
    hf = hf_model("llama_gqa", tokenizer, n_layers=2)
    model = HookedModel.from_hf(hf, tokenizer)
    v_proj = hf.model.layers[1].self_attn.v_proj.weight.detach()  # [n_kv · d_head, d_model]
    for head in range(model.n_heads):
        group = head // (model.n_heads // model.capabilities.n_key_value_heads)
        expected = v_proj[group * model.d_head:(group + 1) * model.d_head].T
        torch.testing.assert_close(model.W_V[1, head], expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(model.OV(1, head).AB, expected @ model.W_O[1, head], atol=1e-6, rtol=0)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 0.05), (torch.bfloat16, 0.25)])
def test_half_precision_runs_and_agrees_with_float32(tokenizer, prompts, dtype, tolerance):
    """In float16 / bfloat16 the engine's cached path stays within ``tolerance`` of float32 (log-probabilities)."""
    hf = hf_model("llama_gqa", tokenizer, n_layers=3)
    out = {}
    for precision in (torch.float32, dtype):
        model = HookedModel.from_hf(hf, tokenizer, dtype=precision)
        engine = QueryEngine(model, prompts.inputs, prompts.attention_mask, start=1)
        theta = torch.linspace(-1, 1, model.d_model, dtype=precision)
        assert engine.path == "cached"
        out[precision] = engine.run([StreamEdit(1, theta)]).float().log_softmax(-1)
    assert torch.isfinite(out[dtype]).all()
    torch.testing.assert_close(out[dtype], out[torch.float32], atol=tolerance, rtol=0)


def test_family_one_token_prompts_with_copies_equal_the_full_forward(family):
    """The query alone — an empty cached prefix — run as several copies, each with its own vector (the
    zero-shot view of a regression prompt is one token): cached and full agree, no reshape of 0 elements."""
    _, model = family
    gen = torch.Generator().manual_seed(7)
    inputs = torch.randint(model.d_vocab, (4, 1), generator=gen)
    theta = torch.randn(3 * 4, model.d_model, dtype=torch.float64, generator=gen)
    out = {}
    for path in ("cached", "full"):
        engine = QueryEngine(model, inputs, start=0, path=path)
        streams = []
        out[path] = (engine.run([StreamEdit(1, theta)], copies=3, streams=streams), streams)
    assert out["cached"][0].shape == (12, model.d_vocab)
    torch.testing.assert_close(out["cached"][0], out["full"][0], atol=1e-5, rtol=0)
    for x, y in zip(out["cached"][1], out["full"][1], strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_one_token_prompts_with_copies_on_a_zoo_model(tiny_model64):
    model = tiny_model64
    inputs = torch.randint(model.d_vocab, (5, 1), generator=torch.Generator().manual_seed(8))
    theta = torch.randn(2 * 5, model.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    cached = QueryEngine(model, inputs, start=1).run([StreamEdit(1, theta)], copies=2)
    full = QueryEngine(model, inputs, start=1, path="full").run([StreamEdit(1, theta)], copies=2)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
