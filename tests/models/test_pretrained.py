"""Hugging Face models through TransformerLens, offline: tiny GPT-2 / GPT-NeoX / Llama models built from a
config with a tokenizer trained here, loaded with ``HookedModel.from_pretrained(path)``.

Both CI venvs run this file: each line's logits are checked against ``transformers`` itself, so the
3.x and 4.x lines agree with each other on every architecture listed.
"""

from __future__ import annotations

import pytest
import torch

from tvlens import TaskVector, evaluate, inject
from tvlens.analysis import ablate_heads, key_head_analysis, linear_dynamics, ov_decomposition
from tvlens.models import HookedModel
from tvlens.models.engine import QueryEngine, StreamEdit
from tvlens.tasks import Splits
from tvlens.tasks.text import TextTasks
from tvlens.training import TrainConfig, train
from tvlens.vectors import function_vector, head_weighted_task_vector, learn_task_vector, vanilla_task_vector

from ..hf_models import ARCHITECTURES, build


@pytest.fixture(scope="module")
def saved(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {arch: build(arch, root / f"arch{i}", tokenizer, d_model=32) for i, arch in enumerate(ARCHITECTURES)}


@pytest.fixture(scope="module", params=ARCHITECTURES)
def loaded(request, saved):
    return request.param, HookedModel.from_pretrained(str(saved[request.param]), device="cpu")


def test_logits_match_transformers(loaded, saved, tokenizer):
    from transformers import AutoModelForCausalLM

    arch, model = loaded
    reference = AutoModelForCausalLM.from_pretrained(saved[arch])
    ids = tokenizer("<bos>hot -> cold\nbig -> small\nup ->", return_tensors="pt").input_ids
    with torch.no_grad():
        ours, theirs = model(ids).log_softmax(-1), reference(ids).logits.log_softmax(-1)
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=0)
    assert model.tokenizer is not None and model.device.type == "cpu"


def test_hook_outputs_are_additive(loaded, tokenizer):
    """TransformerLens #1639/#1648: resid_pre + attn_out (+ mlp_out) must rebuild the stream on every architecture."""
    arch, model = loaded
    ids = tokenizer("<bos>France -> Paris\nSpain ->", return_tensors="pt").input_ids
    names = [model.hook_name(0, h) for h in ("resid_pre", "attn_out", "mlp_out", "resid_post")]
    _, cache = model.run_with_cache(ids, names)
    pre, attn, mlp, post = (cache[n] for n in names)
    torch.testing.assert_close(pre + attn + mlp, post, atol=1e-5, rtol=0)
    if model.hook_name(0, "resid_mid") in model.model.hook_dict and arch != "neox":  # NeoX runs attn ∥ mlp
        _, mid = model.run_with_cache(ids, [model.hook_name(0, "resid_mid")])
        torch.testing.assert_close(pre + attn, mid[model.hook_name(0, "resid_mid")], atol=1e-5, rtol=0)


def test_left_padded_batches_equal_single_prompts(loaded):
    arch, model = loaded
    task = TextTasks(("country_capital", "antonyms"), tokenizer=model.tokenizer)
    batch = task.sample(6, 2, seed=0)
    assert batch.attention_mask is not None
    with torch.no_grad():
        padded = model(batch.inputs, attention_mask=batch.attention_mask)[:, -1]
        for row in range(len(batch)):
            real = batch.inputs[row][batch.attention_mask[row].bool()][None]
            torch.testing.assert_close(padded[row], model(real)[0, -1], atol=1e-4, rtol=1e-4)


def test_every_method_runs(loaded):
    arch, model = loaded
    task = TextTasks(("antonyms",), tokenizer=model.tokenizer)
    small = {"n_prompts": 16, "n_shots": 3}
    vtv, _ = vanilla_task_vector(model, task, 1, n_prompts=16, n_shots=3, dev_prompts=8, test_prompts=8)
    fv, _ = function_vector(model, task, 1, top_k=2, n_prompts=8, n_corrupted=4, n_shots=3)
    ltv, result = learn_task_vector(model, task, 1, n_shots=3, progress=False, epochs=2, n_train=32, n_val=16)
    hw, _ = head_weighted_task_vector(model, task, n_shots=3, progress=False, epochs=2, n_train=32, n_val=16,
                                      n_head_prompts=8)
    assert result.path == "cached" and model.capabilities.cached_suffix
    prompts = Splits(0).sample(task, "shared", 16, 3).zero_shot  # what evaluate(**small) scores
    for tv in (vtv, fv, ltv, hw):
        score = evaluate(model, task, "injected", tv, progress=False, **small)
        with torch.no_grad(), inject(model, tv):  # the same score by hand: argmax at each query
            logits = model(prompts.inputs, attention_mask=prompts.attention_mask)
        correct = logits[torch.arange(16), prompts.query_positions].argmax(-1) == prompts.targets
        assert score.values.tolist() == correct.float().tolist()
    # the analyses score one prompt set per seed (the shared split); each score is an exact rerun by hand
    shared = Splits(0).sample(task, "shared", 16, 3)
    by_hand = evaluate(model, task, "injected", ltv, batch=shared, progress=False).values
    ov = ov_decomposition(model, task, ltv, **small)
    assert not torch.isnan(ov.contribution_norm[1:]).any()
    assert ov.reinjection["vector"].values.tolist() == by_hand.tolist()
    heads = key_head_analysis(model, task, ltv, n_random=20, **small)
    assert len(heads.key_heads) == 1 and heads.injected.tolist() == by_hand.tolist()
    prompts = shared.zero_shot
    with torch.no_grad(), inject(model, ltv), ablate_heads(model, heads.key_heads):
        logits = prompts.at_query(model(prompts.inputs, attention_mask=prompts.attention_mask))
    assert heads.key_ablated.tolist() == (logits.argmax(-1) == prompts.targets).double().tolist()
    dynamics = linear_dynamics(model, task, ltv, n_prompts=2, n_copies=80, n_shots=3)
    few = Splits(0).sample(task, "shared", 2, 3)
    assert dynamics.injected.values.tolist() == evaluate(model, task, "injected", ltv, batch=few,
                                                         progress=False).values.tolist()
    assert dynamics.direct.r2.shape == (2,) and bool((dynamics.direct.r2 <= 1).all())


def test_cached_path_equals_full_forward_on_padded_text(saved):
    model = HookedModel.from_pretrained(str(saved["gpt2"]), device="cpu", dtype=torch.float64)
    task = TextTasks(("country_capital", "english_french"), tokenizer=model.tokenizer)
    batch = task.sample(8, 3, seed=1)
    theta = torch.randn(model.d_model, dtype=torch.float64)
    engine = QueryEngine(model, batch.inputs, batch.attention_mask, start=1)
    with torch.no_grad(), inject(model, TaskVector.single(theta, 1)):
        full = model(batch.inputs, attention_mask=batch.attention_mask)[:, -1]
    assert engine.path == "cached"
    torch.testing.assert_close(engine.run([StreamEdit(1, theta)]), full, atol=1e-8, rtol=0)


def test_from_hf_equals_from_pretrained(saved, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(saved["llama"])
    wrapped = HookedModel.from_hf(hf, AutoTokenizer.from_pretrained(saved["llama"]))
    loaded = HookedModel.from_pretrained(str(saved["llama"]), device="cpu")
    ids = tokenizer("<bos>cat -> cats\ndog ->", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(wrapped(ids), loaded(ids), atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="transformers PreTrainedModel"):
        HookedModel.from_hf(torch.nn.Linear(2, 2), tokenizer)


def test_from_hf_leaves_the_callers_model_intact_and_takes_an_in_memory_tokenizer(tokenizer, tmp_path):
    """The tokenizer here was built in memory (never saved); the caller's model still saves and trains."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=len(tokenizer),
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    hf = GPT2LMHeadModel(config).eval()
    block_type = type(hf.transformer.h[0])
    wrapped = HookedModel.from_hf(hf, tokenizer)
    assert type(hf.transformer.h[0]) is block_type and all(p.requires_grad for p in hf.parameters())
    hf.save_pretrained(tmp_path / "still-saves")
    ids = tokenizer("<bos>cat -> cats\ndog ->", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(wrapped(ids), hf(ids).logits, atol=1e-5, rtol=0)
    assert wrapped.tokenizer is tokenizer
    in_place = HookedModel.from_hf(hf, tokenizer, copy=False)
    if in_place.line >= 4:  # the 4.x bridge wraps the model it is given, as documented; 3.x copies its weights
        assert type(hf.transformer.h[0]) is not block_type
    with pytest.raises(TypeError, match="copy='no'"):
        HookedModel.from_hf(hf, tokenizer, copy="no")


def test_missing_models_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="huggingface-cli download"):
        HookedModel.from_pretrained("tvlens-tests/no-such-model", device="cpu")
    for missing in (str(tmp_path / "no-such-dir"), "./no-such-dir", "~/no-such-dir/model"):
        with pytest.raises(FileNotFoundError, match="no such directory") as info:
            HookedModel.from_pretrained(missing, device="cpu")
        assert "huggingface-cli" not in str(info.value)  # a mistyped path is not a model to download
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="without config.json"):
        HookedModel.from_pretrained(str(tmp_path / "empty"), device="cpu")
    with pytest.raises(ValueError, match="dtype=torch.int8"):
        HookedModel.from_pretrained(str(tmp_path / "empty"), dtype=torch.int8)


@pytest.mark.slow
def test_fine_tuned_text_model_learns_in_context_and_the_ltv_beats_zero_shot(saved, tokenizer, tmp_path):
    """A tiny GPT-2 fine-tuned for ~30 s on word-pair tasks that share their inputs (so the query alone
    is ambiguous): ICL beats zero-shot, and a learned task vector beats zero-shot (Yang et al. 2025a's claim)."""
    directory = build("gpt2", tmp_path / "ft", tokenizer, n_layers=2, d_model=64)
    model = HookedModel.from_pretrained(str(directory), device="cpu")
    family = TextTasks(("english_french", "english_spanish", "lowercase_uppercase", "word_first_letter"),
                       tokenizer=model.tokenizer)
    train(model, family, TrainConfig(steps=700, batch_size=32, n_shots=5, lr=3e-3, eval_every=0), progress=False)
    task = family.single(2)  # lowercase → uppercase: the query alone is ambiguous with the first-letter task
    icl = evaluate(model, task, "icl", n_prompts=200, n_shots=5, seed=5, progress=False)
    zero = evaluate(model, task, "zero_shot", n_prompts=200, n_shots=5, seed=5, progress=False)
    assert icl.mean > zero.mean + 3 * (icl.stderr + zero.stderr)
    ltv, _ = learn_task_vector(model, task, 1, n_shots=5, seed=5, progress=False)  # scored with the seed it learned with
    injected = evaluate(model, task, "injected", ltv, n_prompts=200, n_shots=5, seed=5, progress=False)
    assert injected.mean > zero.mean + 3 * (injected.stderr + zero.stderr)
