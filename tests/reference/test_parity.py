"""tvlens against plain re-statements of the papers' procedures (``procedures.py``) on the same model and prompts.

A tiny GPT-2 in float64, wrapped by tvlens (a copy) and run directly by ``transformers`` with PyTorch
hooks, one unpadded prompt at a time. Agreement within 1e-5 (in practice ~1e-12).
"""

from __future__ import annotations

import pytest
import torch

from tvlens import Intervention, inject
from tvlens.models import HookedModel
from tvlens.tasks import Splits
from tvlens.tasks.text import TextTasks
from tvlens.vectors import function_vector, vanilla_task_vector
from tvlens.vectors.function import average_indirect_effect, mean_head_outputs
from tvlens.vectors.vanilla import hendel_dummy_examples, hendel_states

from . import procedures as ref

ATOL = 1e-5


@pytest.fixture(scope="module")
def models(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=3, n_embd=32, n_head=4, n_positions=256, vocab_size=len(tokenizer),
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    hf = GPT2LMHeadModel(config).double().eval()
    return hf, HookedModel.from_hf(hf, tokenizer, dtype=torch.float64)


def unpadded(batch, row: int) -> torch.Tensor:
    ids = batch.inputs[row]
    return ids[batch.attention_mask[row].bool()] if batch.attention_mask is not None else ids


@pytest.mark.parametrize("template", ["hendel", "todd"])
def test_prompts_are_the_papers_strings(models, tokenizer, template):
    task = TextTasks(("antonyms", "country_capital"), tokenizer=tokenizer, template=template)
    batch = task.sample(6, 3, seed=0)
    for row, pairs in enumerate(batch.examples):
        assert unpadded(batch, row).tolist() == ref.encode(tokenizer, ref.prompt_text(template, pairs))[0].tolist()


def test_injection_equals_a_forward_pre_hook_on_the_block(models, tokenizer):
    hf, model = models
    task = TextTasks(("antonyms", "country_capital"), tokenizer=tokenizer, template="todd")
    batch = task.sample(6, 2, seed=1)  # left-padded: prompts differ in length
    assert batch.attention_mask is not None
    vector = torch.randn(model.d_model, dtype=torch.float64)
    for layer in range(model.n_layers):
        with torch.no_grad(), inject(model, Intervention(vector, layer)):
            logits = model(batch.inputs, attention_mask=batch.attention_mask)[torch.arange(len(batch)),
                                                                                batch.query_positions]
        for row, pairs in enumerate(batch.examples):
            with ref.add_to_block_input(hf, layer, vector):
                expected = ref.last_logits(hf, ref.encode(tokenizer, ref.prompt_text("todd", pairs)))
            torch.testing.assert_close(logits[row], expected, atol=ATOL, rtol=0)


def test_hendel_per_prompt_vectors_and_layer_sweep(models, tokenizer):
    hf, model = models
    task = TextTasks(("antonyms",), tokenizer=tokenizer, template="hendel")
    tv, result = vanilla_task_vector(model, task, procedure="hendel", n_prompts=4, n_shots=3, dev_prompts=5,
                                     test_prompts=5, seed=0)
    assert result.extra["procedure"] == "hendel" and "output of block L" in result.extra["layer_convention"]
    assert tv.sites[0].hook == "resid_post" and tv.mode == "replace"
    dev = Splits(0).sample(task, "dev", 5, 3)  # the dev split of seed 0: its stream and its word pairs
    layers = list(range(model.n_layers))
    states = hendel_states(model, task, dev, layers, seed=Splits(0).dev)
    dummies = hendel_dummy_examples(task, dev, seed=Splits(0).dev)
    accuracy = torch.zeros(len(layers))
    for row, pairs in enumerate(dev.examples):
        mine = dummies[2 * row: 2 * row + 2]
        assert all(d[:-1] == pairs[:-1] and d[-1][0] != pairs[-1][0] for d in mine)  # same demos, another query
        expected = torch.stack([ref.block_outputs(hf, ref.encode(tokenizer, ref.prompt_text("hendel", d)))
                                for d in mine]).mean(0)
        torch.testing.assert_close(states[:, row], expected, atol=ATOL, rtol=0)
        query = ref.encode(tokenizer, ref.prompt_text("hendel", pairs[-1:]))
        for layer in layers:
            with ref.replace_block_output(hf, layer, expected[layer]):
                logits = ref.last_logits(hf, query)
            with torch.no_grad(), inject(model, Intervention(states[layer, row], layer, hook="resid_post",
                                                             mode="replace")):
                mine_logits = model(unpadded(dev.zero_shot, row)[None])[0, -1]
            torch.testing.assert_close(mine_logits, logits, atol=ATOL, rtol=0)
            accuracy[layer] += float(logits.argmax() == dev.zero_shot.targets[row]) / len(dev)
    torch.testing.assert_close(result.sweep.dev_mean.double(), accuracy.double())
    assert result.sweep.best_layer == int(accuracy.argmax())


def test_todd_mean_activations_aie_and_function_vector(models, tokenizer):
    hf, model = models
    task = TextTasks(("country_capital",), tokenizer=tokenizer, template="todd")
    clean = Splits(0).sample(task, "train", 8, 3)  # function_vector(seed=0)'s clean prompts: the train split
    expected_z = torch.stack([ref.head_inputs(hf, ref.encode(tokenizer, ref.prompt_text("todd", pairs)))
                              for pairs in clean.examples]).mean(0)
    z_mean, _ = mean_head_outputs(model, clean)
    torch.testing.assert_close(z_mean, expected_z, atol=ATOL, rtol=0)

    corrupted = task.with_shuffled_labels(clean.select(slice(0, 4)), torch.Generator().manual_seed(0))
    expected_aie = torch.zeros(model.n_layers, model.n_heads, dtype=torch.float64)
    for row, pairs in enumerate(corrupted.examples):
        ids, target = ref.encode(tokenizer, ref.prompt_text("todd", pairs)), int(corrupted.targets[row])
        base = ref.last_logits(hf, ids).softmax(-1)[target]
        for layer in range(model.n_layers):
            for head in range(model.n_heads):
                with ref.patch_head(hf, layer, head, expected_z[layer, head]):
                    patched = ref.last_logits(hf, ids).softmax(-1)[target]
                expected_aie[layer, head] += (patched - base) / len(corrupted)
    aie = average_indirect_effect(model, corrupted, z_mean)
    torch.testing.assert_close(aie, expected_aie, atol=ATOL, rtol=0)

    tv, result = function_vector(model, task, 1, top_k=3, n_prompts=8, n_corrupted=4, n_shots=3, seed=0,
                                 output_bias=True)
    order = expected_aie.flatten().argsort(descending=True)[:3]
    heads = [(int(i) // model.n_heads, int(i) % model.n_heads) for i in order]
    assert result.top_heads == heads
    torch.testing.assert_close(tv.vector(), ref.todd_function_vector(hf, expected_z, heads), atol=ATOL, rtol=0)
    without, _ = function_vector(model, task, 1, top_k=3, n_prompts=8, n_corrupted=4, n_shots=3, seed=0)
    bias = sum(hf.transformer.h[layer].attn.c_proj.bias for layer, _ in heads)
    torch.testing.assert_close(tv.vector() - without.vector(), bias.detach(), atol=ATOL, rtol=0)
