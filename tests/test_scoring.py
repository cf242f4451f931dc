"""evaluate: metrics equal independent computations; modes are paired; a trained model learns in context."""

from __future__ import annotations

import pytest
import torch

from tvlens import Intervention, evaluate, inject
from tvlens.models import engine as engine_module
from tvlens.scoring import PromptScorer, mean_and_stderr
from tvlens.tasks import Splits


def test_accuracy_equals_manual_argmax(tiny_model, small_task):
    result = evaluate(tiny_model, small_task, "icl", n_prompts=40, n_shots=3, seed=2, batch_size=16)
    batch = Splits(2).sample(small_task, "shared", 40, 3)  # the user seed's held-out split
    logits = tiny_model(batch.inputs)[:, -1]
    assert torch.equal(result.values, (logits.argmax(-1) == batch.targets).float())
    labels = torch.arange(small_task.n_symbols)
    assert torch.equal(result.label_values, (logits[:, labels].argmax(-1) == batch.targets).float())
    assert result.metric == "accuracy" and result.n_shots == 3


def test_mean_and_stderr():
    values = torch.tensor([1.0, 0.0, 1.0, 1.0])
    mean, stderr = mean_and_stderr(values)
    assert mean == pytest.approx(0.75)
    assert stderr == pytest.approx(values.std().item() / 2)
    assert mean_and_stderr(torch.tensor([3.0])) == (3.0, 0.0)


def test_zero_shot_scores_the_same_queries(tiny_model, small_task):
    zero = evaluate(tiny_model, small_task, "zero_shot", n_prompts=30, n_shots=3, seed=4)
    batch = Splits(4).sample(small_task, "shared", 30, 3)
    manual = tiny_model(batch.zero_shot.inputs)[:, -1].argmax(-1) == batch.targets
    assert torch.equal(zero.values, manual.float()) and zero.n_shots == 0


def test_regression_metric_is_squared_error_over_dimension(regression_model, regression_task):
    result = evaluate(regression_model, regression_task, "icl", n_prompts=12, n_shots=4, seed=0)
    batch = Splits(0).sample(regression_task, "shared", 12, 4)
    pred = regression_model(batch.inputs)[:, -1, 0]
    torch.testing.assert_close(result.values, (pred - batch.targets) ** 2 / 5)
    assert result.metric == "mse_per_dim" and result.label_values is None


@pytest.mark.parametrize("base", ["zero_shot", "icl"])
def test_injected_mode_equals_manual_injection(tiny_model, small_task, base):
    v = torch.randn(tiny_model.d_model)
    iv = Intervention(v, layer=1)
    result = evaluate(tiny_model, small_task, "injected", iv, n_prompts=25, n_shots=3, seed=1, base=base)
    batch = Splits(1).sample(small_task, "shared", 25, 3)
    prompts = batch.zero_shot if base == "zero_shot" else batch
    with inject(tiny_model, iv):
        manual = tiny_model(prompts.inputs)[:, -1].argmax(-1) == batch.targets
    assert torch.equal(result.values, manual.float())


def test_per_example_vectors_follow_their_rows_across_chunks(tiny_model, small_task):
    v = torch.randn(30, tiny_model.d_model)
    one = evaluate(tiny_model, small_task, "injected", Intervention(v, layer=2), n_prompts=30, seed=5, batch_size=30)
    many = evaluate(tiny_model, small_task, "injected", Intervention(v, layer=2), n_prompts=30, seed=5, batch_size=7)
    assert torch.equal(one.values, many.values)


def test_trained_model_learns_in_context(trained_perm_model):
    """Meta-ICL training works: n-shot accuracy far above zero-shot, which stays near guessing among 4 maps."""
    model, task, _ = trained_perm_model
    # a check of the model, not of a vector: every query symbol (the ``aside`` split), not the shared split's 3
    icl = evaluate(model, task, "icl", n_prompts=400, n_shots=4, seed=77, split="aside")
    zero = evaluate(model, task, "zero_shot", n_prompts=400, n_shots=4, seed=77, split="aside")
    assert icl.mean >= 0.85
    assert zero.mean <= 0.45
    assert icl.mean - zero.mean > 10 * (icl.stderr + zero.stderr)


def test_errors(tiny_model, small_task):
    v = Intervention(torch.zeros(tiny_model.d_model), layer=0)
    with pytest.raises(ValueError, match=r"mode='few_shot': expected one of"):
        evaluate(tiny_model, small_task, "few_shot")
    with pytest.raises(ValueError, match=r"mode='injected' needs a vector"):
        evaluate(tiny_model, small_task, "injected")
    with pytest.raises(ValueError, match=r"vector is given but mode='icl'"):
        evaluate(tiny_model, small_task, "icl", v)
    with pytest.raises(ValueError, match=r"base='both'"):
        evaluate(tiny_model, small_task, "injected", v, base="both")
    with pytest.raises(ValueError, match=r"per-example intervention has 3 rows but 10 prompts are scored"):
        evaluate(tiny_model, small_task, "injected", Intervention(torch.zeros(3, 32), layer=0), n_prompts=10)
    with pytest.raises(ValueError, match=r"batch_size=0"):
        evaluate(tiny_model, small_task, "icl", batch_size=0)
    with pytest.raises(ValueError, match=r"path='fast': expected 'auto', 'cached' or 'full'"):
        evaluate(tiny_model, small_task, "icl", path="fast")
    with pytest.raises(ValueError, match=r"split='heldout': expected one of \['train', 'dev'"):
        evaluate(tiny_model, small_task, "icl", split="heldout")


def test_the_seed_is_the_user_seed_and_the_split_names_the_prompts(tiny_model, small_task):
    """One meaning of ``seed``: the user seed of :class:`Splits`. By default evaluate scores the ``shared`` split, whose
    queries are the test block's of each prompt's task (no vector made with this seed trained or chose on them);
    ``split=`` names another."""
    splits = Splits(6)
    test_queries = {(t, q) for t in range(small_task.n_tasks)
                    for q in splits.block("shared").items(small_task.n_symbols, salt=t).tolist()}
    for split in ("shared", "dev"):
        scored = evaluate(tiny_model, small_task, "icl", n_prompts=40, n_shots=3, seed=6, split=split, progress=False)
        batch = splits.sample(small_task, split, 40, 3)
        manual = tiny_model(batch.inputs)[:, -1].argmax(-1) == batch.targets
        assert torch.equal(scored.values, manual.float())
        queries = set(zip(batch.task_ids.tolist(), batch.inputs[:, -small_task.query_tokens].tolist()))
        assert (queries <= test_queries) == (split == "shared")


def test_overflowing_vectors_are_errors_not_zero_accuracy(tiny_model, small_task):
    ones = torch.ones(tiny_model.d_model)
    with pytest.raises(ValueError, match=r"scale=1e\+39 overflows torch.float32"):
        Intervention(ones, layer=1, scale=1e39)
    huge = Intervention(ones * 3e38, layer=1)  # finite, but the stream's LayerNorm overflows: NaN logits
    with pytest.raises(ValueError, match=r"logits at the query are NaN or inf for 16 of 16 prompts.*injected vector"):
        evaluate(tiny_model, small_task, "injected", huge, n_prompts=16)


def test_a_result_is_one_table_row(tiny_model, small_task):
    """The row every study table records: the metric's mean under its own name, the standard error, the count."""
    result = evaluate(tiny_model, small_task, "icl", n_prompts=12, n_shots=2, seed=3, progress=False)
    values = result.values.double()
    assert result.row() == {"accuracy": pytest.approx(float(values.mean())),
                            "stderr": pytest.approx(float(values.std() / 12**0.5)), "n": 12}


def test_the_query_engine_path_equals_the_full_forward(tiny_model64, small_task):
    """evaluate on the query engine (cached; repeated zero-shot prompts run once) gives the per-prompt values of the
    model's own forward with hooks (``path="full"``) — every mode, add and replace, both bases, a per-prompt vector,
    an early position, and a vector at a hook point the stream edits cannot express."""
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(tiny_model64.d_model, generator=gen, dtype=torch.float64)
    questions = [("icl", None, "zero_shot"), ("zero_shot", None, "zero_shot"),
                 ("injected", Intervention(v, layer=1), "zero_shot"),
                 ("injected", Intervention(v, layer=2, mode="replace"), "zero_shot"),
                 ("injected", [Intervention(v, layer=0), Intervention(-v, layer=2, hook="resid_post")], "icl"),
                 ("injected", Intervention(v, layer=1, positions=1), "icl"),
                 ("injected", Intervention(torch.randn(40, tiny_model64.d_model, generator=gen, dtype=torch.float64),
                                           layer=1), "zero_shot"),
                 ("injected", Intervention(v, layer=1, hook="attn_out"), "zero_shot")]
    batch = Splits(0).sample(small_task, "shared", 40, 3)
    assert len(torch.unique(batch.zero_shot.inputs, dim=0)) < 40  # the zero-shot view repeats prompts
    for mode, vector, base in questions:
        results = [evaluate(tiny_model64, small_task, mode, vector, batch=batch, base=base, path=path,
                            batch_size=16) for path in ("auto", "full")]
        assert torch.equal(results[0].values, results[1].values), (mode, vector, base)
        torch.testing.assert_close(results[0].nll_values, results[1].nll_values, atol=1e-10, rtol=0)


def test_a_prompt_scorer_runs_each_view_into_an_engine_once(tiny_model, small_task, monkeypatch):
    """Many questions of one batch: one engine per view, first edited layer and positions (a vector with a hook of
    its own builds its own); each answer equals evaluate's."""
    built = []
    real = engine_module.QueryEngine.__init__
    monkeypatch.setattr(engine_module.QueryEngine, "__init__",
                        lambda self, *a, **k: built.append(k.get("start")) or real(self, *a, **k))
    batch = Splits(2).sample(small_task, "test", 30, 3)
    scorer = PromptScorer(tiny_model, batch)
    vectors = [Intervention(torch.randn(tiny_model.d_model), layer=1) for _ in range(3)]
    answers = [scorer.evaluate("icl"), scorer.evaluate("icl"), scorer.evaluate("zero_shot"),
               *(scorer.evaluate("injected", v) for v in vectors), scorer.evaluate("injected", vectors[0], "icl")]
    assert built == [tiny_model.n_layers - 1, tiny_model.n_layers - 1, 1, 1]  # icl; zero-shot; layer 1 on each view
    hooked = Intervention(torch.randn(tiny_model.d_model), layer=1, hook="attn_out")  # a hook: not a stream edit
    answers += [scorer.evaluate("injected", hooked), scorer.evaluate("injected", hooked)]
    assert len(built) == 6  # each call with a hook its own engine (the full forward)
    built.clear()
    expected = [evaluate(tiny_model, small_task, "icl", batch=batch), evaluate(tiny_model, small_task, "icl",
                                                                              batch=batch),
                evaluate(tiny_model, small_task, "zero_shot", batch=batch),
                *(evaluate(tiny_model, small_task, "injected", v, batch=batch) for v in vectors),
                evaluate(tiny_model, small_task, "injected", vectors[0], batch=batch, base="icl"),
                *(evaluate(tiny_model, small_task, "injected", hooked, batch=batch) for _ in range(2))]
    for a, b in zip(answers, expected, strict=True):
        assert a.mode == b.mode and torch.equal(a.values, b.values)


def test_a_task_the_model_cannot_read_is_refused_before_any_work():
    """A 16-symbol permutation task on the 32-symbol zoo model ran and scored 0 % silently; token prompts on a
    regression model, or regression inputs of another width, are refused alike (one line naming both sizes)."""
    from tvlens import zoo
    from tvlens.tasks import LinearRegression, PermutationMixture

    perm = zoo.load("perm-mix")
    with pytest.raises(ValueError, match=r"^task=PermutationMixture: its vocabulary has 19 tokens but the model's "
                                         r"has 35; expected the task family the model was trained on"):
        evaluate(perm, PermutationMixture(n_symbols=16, n_perms=4).single(0), "icl", n_shots=4)
    regression = zoo.load("linear-regression")
    with pytest.raises(ValueError, match=r"^task=PermutationMixture: has token prompts but the model reads inputs "
                                         r"of width 5"):
        evaluate(regression, zoo.task("perm-mix").single(0), "zero_shot")
    with pytest.raises(ValueError, match=r"^task=LinearRegression: has inputs of width 3 but the model reads inputs "
                                         r"of width 5"):
        evaluate(regression, LinearRegression(d_input=3), "icl", n_shots=4)
    with pytest.raises(ValueError, match=r"has inputs of width 5 but the model reads token prompts"):
        evaluate(perm, zoo.task("linear-regression"), "icl", n_shots=4)
    # the model's own family is scored as before
    assert evaluate(perm, zoo.task("perm-mix").single(0), "icl", n_prompts=32, progress=False).mean > 0.5


def test_whole_answers_are_generated_and_scored_as_a_plain_loop_scores_them(tokenizer):
    """evaluate(whole_answers=True) on word pairs whose answers span several tokens: each prompt's exact match and F1
    equal a plain greedy loop's (tvlens.inject and argmax, one prompt at a time, no generate), read and scored by
    tvlens.tasks.answers; chunks follow their rows; a task without text answers is refused in one line."""
    from tests.hf_models import hf_model
    from tvlens.models import HookedModel
    from tvlens.tasks import TextTasks
    from tvlens.tasks.answers import exact_match, read_answer, token_f1

    model = HookedModel.from_hf(hf_model("gpt2", tokenizer, n_layers=2), tokenizer, dtype=torch.float64)
    task = TextTasks(("country_capital", "antonyms"), tokenizer=tokenizer)
    batch = Splits(0).sample(task, "shared", 6, 2)
    answers = [pairs[-1][1] for pairs in batch.examples]
    assert max(len(tokenizer(" " + a)["input_ids"]) for a in answers) > 1  # several tokens
    vector = Intervention(torch.randn(model.d_model, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
                          * 4, 1)
    result = evaluate(model, task, "injected", vector, batch=batch, base="icl", whole_answers=True, batch_size=4)
    new = max(len(tokenizer(" " + a, add_special_tokens=False)["input_ids"]) for a in answers) + 2
    for i in range(len(batch)):
        tokens = batch.inputs[i][batch.attention_mask[i].bool()][None] if batch.attention_mask is not None \
            else batch.inputs[i][None]
        width = tokens.shape[1]
        for _ in range(new):  # the vector on the prompt's last token only
            with torch.no_grad(), inject(model, Intervention(vector.vector, 1, positions=width - 1)):
                tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1)[:, None]], 1)
        read = read_answer(tokenizer.decode(tokens[0, width:].tolist(), skip_special_tokens=True))
        assert result.generated[i] == read
        assert result.exact_match_values[i] == exact_match(read, answers[i])
        assert result.f1_values[i] == pytest.approx(token_f1(read, answers[i]))
    assert result.to_dict()["f1"] == pytest.approx(result.f1_values.mean().item())
    # one chunk or two: every prompt generates for the whole batch's longest answer
    whole = evaluate(model, task, "injected", vector, batch=batch, base="icl", whole_answers=True, batch_size=len(batch))
    assert whole.generated == result.generated
    assert {"exact_match", "f1", "generated"} <= set(result.to_records()[0])
    with pytest.raises(ValueError, match=r"^whole_answers=True: task=PermutationMixture has no text answers"):
        evaluate(model, small_task_like(), "icl", whole_answers=True)


def small_task_like():
    from tvlens.tasks import PermutationMixture

    return PermutationMixture(n_symbols=16, n_perms=4, seed=0)
