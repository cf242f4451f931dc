"""The claims ledger on a researcher's own model: subjects (zoo names, Hugging Face directories, tvlens files,
loaded models), word-pair tasks, claims that do not apply, and the units run through an executor."""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from tvlens import evaluate, zoo
from tvlens.models import HookedModel
from tvlens.studies.ledger import CLAIMS, NEEDS, LedgerConfig, claims_ledger
from tvlens.studies.ledger.verdicts import GATE, NOT_APPLICABLE, NOT_TESTABLE, VERDICTS
from tvlens.subjects import OFFERS, subject
from tvlens.tasks import Splits
from tvlens.tasks.text import TextTasks, builtin_tasks
from tvlens.vectors import vanilla_task_vector

from ..hf_models import build

#: The offline tiny families the ledger runs on (GPT-2, GPT-NeoX, Llama with grouped K/V heads).
FAMILIES = ("gpt2", "neox", "llama_gqa")
TASKS = ("antonyms", "country_capital", "english_french")
#: A ledger small enough for the fast suite: every claim, one seed, few prompts, a short learning budget.
SMALL = LedgerConfig(seeds=(0,), n_prompts=8, epochs=2, dynamics_prompts=4)


@pytest.fixture(scope="module")
def saved(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("ledger-hf")
    # directories named without the family (TL 3.9 infers an architecture from a name)
    return {family: str(build(family, root / f"m{i}", tokenizer, d_model=32)) for i, family in enumerate(FAMILIES)}


def test_every_claim_declares_a_known_need():
    assert {c.needs for c in CLAIMS.values()} <= set(NEEDS)
    assert set(OFFERS) < set(NEEDS)
    # the claims over several trained models need the zoo's recipes, the others one model
    for c in CLAIMS.values():
        assert (c.needs in OFFERS) == (not (c.contrast or c.replicated)), c.name


@pytest.mark.parametrize("family", [FAMILIES[0], *(pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES[1:])])
def test_ledger_runs_on_each_family_with_a_row_for_every_claim(saved, family):
    """(GPT-2 in the fast suite; GPT-NeoX and Llama-GQA, ~10 s each, with the slow tests.)"""
    ledger = claims_ledger(SMALL, models=[saved[family]], tasks=TASKS)
    assert [r.claim for r in ledger.rows] == list(CLAIMS)  # one row per claim, in the table's order
    for row in ledger.rows:
        assert row.verdict in VERDICTS and row.model == saved[family]
        claim = CLAIMS[row.claim]
        if claim.needs == "labels":  # measured: finite numbers over the three word-pair tasks
            assert row.verdict != NOT_APPLICABLE and row.n_tasks == len(TASKS), row
            assert math.isfinite(row.mean) and math.isfinite(row.control)
            assert row.values[saved[family]].shape == (len(TASKS), 1)
        else:  # not applicable, saying what it needs
            assert row.verdict == NOT_APPLICABLE and row.reason == f"needs {NEEDS[claim.needs]}" + (
                f"; this model is measured on {OFFERS['labels']}" if claim.needs in OFFERS else "")
            assert math.isnan(row.mean) and row.values == {}
    table = ledger.to_markdown()
    elsewhere = sum(c.needs != "labels" for c in CLAIMS.values())  # regression, training and complexity claims
    assert elsewhere == 6 and table.count("**not applicable**") == elsewhere
    assert f"{elsewhere} rows are not applicable" in table
    untested = [r for r in ledger.rows if r.verdict == NOT_TESTABLE]  # each for its claim's gate, and said so
    assert all(CLAIMS[r.claim].gate is not None and r.reason for r in untested)
    primary = sum(r.primary and r.verdict != NOT_TESTABLE for r in ledger.rows)  # the primaries' Holm family
    assert f"the {primary} primary rows are one Holm family" in table
    # Hendel's reading is position-matched (GPT-2's learned positions: its padded word-pair prompts moved one by one)
    # and, like every mechanism claim, decided only where the site gate passes
    hendel = ledger.row("hendel_most_of_icl")
    assert math.isfinite(hendel.mean) and (hendel.verdict == NOT_TESTABLE) == (hendel.gate < GATE)


def _task1_by_hand(saved):
    """Word-pair task 1 on the saved GPT-2 as the ledger's unit (seed 0) sees it, made with the public functions: the
    model, the task, its vanilla TV (layer chosen on dev word pairs) and its 12 held-out test prompts."""
    model = HookedModel.from_pretrained(saved["gpt2"], device="cpu")
    task = TextTasks(TASKS, tokenizer=model.tokenizer, template="todd").single(1)
    shots = TextTasks.default_n_shots
    tv, _ = vanilla_task_vector(model, task, n_shots=shots, seed=0)
    return model, task, tv, Splits(0).sample(task, "test", 12, shots)


def test_a_text_row_is_the_effect_recomputed_by_hand(saved):
    """``vanilla_beats_zero_shot`` on word-pair task 1: the vanilla TV (layer chosen on dev word pairs) injected into
    held-out test prompts minus zero-shot on the same prompts, computed here with the public functions."""
    config = LedgerConfig(seeds=(0,), n_prompts=12, claims=("vanilla_beats_zero_shot",))
    ledger = claims_ledger(config, models=[saved["gpt2"]], tasks=TASKS, template="todd")
    model, task, tv, test = _task1_by_hand(saved)
    expected = (evaluate(model, task, "injected", tv, batch=test, progress=False).mean
                - evaluate(model, task, "zero_shot", batch=test, progress=False).mean)
    value = ledger.row("vanilla_beats_zero_shot").values[saved["gpt2"]][1, 0]
    assert value.item() == pytest.approx(expected, abs=1e-9)
    # held out: the scored queries are word pairs no train or dev prompt used
    words = {x for pairs in test.examples for x, _ in pairs}
    for split in ("train", "dev"):
        other = Splits(0).sample(task, split, 64, test.n_shots)
        assert not words & {x for pairs in other.examples for x, _ in pairs}


def test_the_regression_claim_applies_to_a_regression_model_file_only():
    """A tvlens model file records its family: the zoo's linear-regression weights, loaded by path, offer regression
    (the labels claims say so); the claims over several trained models never apply to given models."""
    path = str(zoo.weights_path("linear-regression"))
    s = subject(path)
    assert s.offers == "regression" and s.task_family.kind == "regression" and s.zoo_name is None
    config = LedgerConfig(seeds=(0,), claims=("vanilla_beats_zero_shot", "tvp_loss", "depth_vs_complexity"))
    ledger = claims_ledger(config, models=[path])
    assert [r.verdict for r in ledger.rows] == [NOT_APPLICABLE] * 3
    assert ledger.rows[0].reason == f"needs {NEEDS['labels']}; this model is measured on {OFFERS['regression']}"


def test_subject_errors_are_one_line_before_any_load(saved, tmp_path, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(HookedModel, "from_pretrained", no_load)
    (tmp_path / "empty").mkdir()
    cases = [
        (lambda: subject(str(tmp_path / "empty"), TASKS), FileNotFoundError, "without config.json"),
        (lambda: subject(saved["gpt2"]), ValueError, "needs word-pair tasks"),
        (lambda: subject(saved["gpt2"], ("antonyms", "antonymz")), ValueError, "'antonymz' is not a built-in"),
        (lambda: subject(saved["gpt2"], ("antonyms", "antonyms")), ValueError, "['antonyms'] named twice"),
        (lambda: subject(saved["gpt2"], (str(tmp_path / "gone.csv"),)), FileNotFoundError, "no such CSV file"),
        (lambda: subject("perm-mix", ("antonyms",)), ValueError, "zoo model 'perm-mix' has its own task family"),
        (lambda: subject(str(tmp_path / "nothing")), FileNotFoundError, "is not a zoo model"),
        (lambda: subject(saved["gpt2"], TASKS, template="{y} {x}"), ValueError, "template='{y} {x}'"),
        (lambda: subject(3.5), TypeError, "got float"),
        (lambda: claims_ledger(SMALL, models=[saved["gpt2"], saved["gpt2"]], tasks=TASKS), ValueError,
         "given twice"),
        (lambda: claims_ledger(SMALL, tasks=TASKS), ValueError, "pass models"),
        (lambda: claims_ledger(SMALL, models=[], tasks=TASKS), ValueError, "models=[]"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as caught:
            call()
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_directory_loads_in_the_dtype_asked_for(saved):
    """``dtype`` reaches the loaded model (a worker loads its own copy in it); the command line offers the same."""
    import argparse

    from tvlens.cli import build_parser
    from tvlens.subjects import DTYPES

    s = subject(saved["llama_gqa"], TASKS, dtype="bfloat16")
    model = s.load()
    assert s.dtype == "bfloat16" and model.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    # the analyses read a bfloat16 model in float32 (the OV decomposition used to mix the two and fail)
    row = claims_ledger(LedgerConfig(seeds=(0,), n_prompts=8, epochs=2, claims=("theta_ov",)),
                        models=[saved["llama_gqa"]], tasks=TASKS, dtype="bfloat16").rows[0]
    assert row.n_tasks == len(TASKS) and math.isfinite(row.mean) and math.isfinite(row.control)
    with pytest.raises(ValueError, match=r"dtype='half': expected one of \['float32', 'bfloat16'"):
        subject(saved["llama_gqa"], TASKS, dtype="half")
    claims = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["claims"]
    assert tuple(next(a for a in claims._actions if a.dest == "dtype").choices) == DTYPES


def test_csv_tasks_and_loaded_models(saved, tmp_path):
    """A CSV is one task named after its file; a loaded model is measured in-process but refused by an executor."""
    pairs = builtin_tasks()["antonyms"].pairs[:60]
    csv = tmp_path / "my_antonyms.csv"
    csv.write_text("input,answer\n" + "".join(f"{x},{y}\n" for x, y in pairs), encoding="utf-8")
    s = subject(saved["neox"], ("country_capital", str(csv)))
    assert [w.name for w in s.words] == ["country_capital", "my_antonyms"] and s.words[1].pairs == pairs
    model = HookedModel.from_pretrained(saved["neox"], device="cpu")
    config = LedgerConfig(seeds=(0,), n_prompts=8, claims=("vanilla_beats_zero_shot",))
    ledger = claims_ledger(config, models=[model], tasks=("country_capital", str(csv)))
    assert ledger.rows[0].model == "model 0" and ledger.rows[0].n_tasks == 2
    with pytest.raises(ValueError, match=r"\['model 0'\] are loaded models"):
        with ProcessPoolExecutor(1) as pool:
            claims_ledger(config, models=[model], tasks=TASKS, executor=pool)


@pytest.mark.slow
def test_a_process_pool_gives_the_in_process_table(saved):
    """The units run in two spawned worker processes (each loads its model once) give the same rows and per-unit
    values as one after the other in this process."""
    config = LedgerConfig(seeds=(0, 1), n_prompts=8, epochs=2, claims=("ltv_beats_vanilla", "vanilla_beats_zero_shot",
                                                                       "linear_propagation", "head_weighted_beats_fv"))
    models = [saved["gpt2"], saved["llama_gqa"]]
    here = claims_ledger(config, models=models, tasks=TASKS)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = claims_ledger(config, models=models, tasks=TASKS, executor=pool)
    assert [r.verdict for r in there.rows] == [r.verdict for r in here.rows]
    for a, b in zip(here.rows, there.rows):
        assert (a.claim, a.model, a.reason, a.n_tasks) == (b.claim, b.model, b.reason, b.n_tasks)
        assert a.values.keys() == b.values.keys()
        for key in a.values:
            torch.testing.assert_close(b.values[key], a.values[key], rtol=0, atol=1e-6)
            torch.testing.assert_close(b.controls[key], a.controls[key], rtol=0, atol=1e-6)


def test_a_text_row_scores_whole_answers_when_asked(saved, monkeypatch):
    """With whole_answers, ``vanilla_beats_zero_shot`` on word-pair task 1 is the exact match of the generated answers
    with the vanilla TV minus without it (evaluate(..., whole_answers=True), computed here); the caption says so.
    The zoo, whose answers are single tokens, refuses the flag in the CLI."""
    config = LedgerConfig(seeds=(0,), n_prompts=12, claims=("vanilla_beats_zero_shot",), whole_answers=True)
    ledger = claims_ledger(config, models=[saved["gpt2"]], tasks=TASKS, template="todd")
    model, task, tv, test = _task1_by_hand(saved)
    injected = evaluate(model, task, "injected", tv, batch=test, progress=False, whole_answers=True)
    zero = evaluate(model, task, "zero_shot", batch=test, progress=False, whole_answers=True)
    value = ledger.row("vanilla_beats_zero_shot").values[saved["gpt2"]][1, 0]
    assert value.item() == pytest.approx(injected.exact_match - zero.exact_match, abs=1e-9)
    assert "Word-pair rows score the exact match of the whole generated answer" in ledger.to_markdown()
    # the row reads the whole-answer scores (a random tiny model matches no answer, so read them through a stand-in)
    from tvlens.studies.ledger import unit

    def stand_in(model, tokenizer, prompts, interventions, path="auto", generated=None):
        return {"exact_match": torch.full((len(prompts),), 0.75 if interventions else 0.25, dtype=torch.float64)}

    monkeypatch.setattr(unit, "whole_answer_scores", stand_in)
    again = claims_ledger(config, models=[saved["gpt2"]], tasks=TASKS, template="todd")
    assert again.row("vanilla_beats_zero_shot").values[saved["gpt2"]][1, 0].item() == pytest.approx(0.5)
