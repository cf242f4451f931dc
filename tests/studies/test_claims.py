"""The claims ledger: its statistics against hand arithmetic, one row against an independent rerun, and (slow) the
verdicts it reaches on the zoo."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import zlib

import pytest
import torch

from tvlens import evaluate, zoo
from tvlens.studies.ledger import (
    CLAIMS,
    MIN_DISTINCT_ANSWERS,
    NOT_MEASURED,
    LedgerConfig,
    ModelsFailed,
    claims_ledger,
)
from tvlens.studies.ledger.run import UnitResult
from tvlens.studies.ledger.verdicts import (
    NO_EFFECT,
    NOT_TESTABLE,
    contrast_estimate,
    contrast_interval,
    holm_adjusted,
    holm_levels,
    t_quantile,
    task_estimate,
    task_interval,
    verdict,
)
from tvlens.tasks import Splits
from tvlens.vectors import vanilla_task_vector


def _t_cdf(x: float, df: float) -> float:
    """Student's t CDF by Simpson's rule on the density (pure Python: independent of scipy)."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    n, h = 20_000, x / 20_000
    total = sum((1 if i in (0, n) else 4 if i % 2 else 2) * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2)
                for i in range(n + 1))
    return 0.5 + c * h / 3 * total


@pytest.mark.parametrize(("df", "table"), [(1, 12.7062), (2, 4.3027), (4, 2.7764), (30, 2.0423)])
def test_t_quantile_matches_printed_tables(df, table):
    assert t_quantile(df) == pytest.approx(table, abs=1e-4)


def test_t_quantile_at_fractional_df_is_exact():
    """Welch's df are fractional: the quantile is the t distribution's own at that df (here checked by integrating
    its density), not a table entry rounded or interpolated (at 1.5 df linear interpolation is 40 % too wide)."""
    q = t_quantile(1.5)
    assert _t_cdf(q, 1.5) == pytest.approx(0.975, abs=1e-6)
    assert 4.3027 < q < 12.7062 and (12.7062 + 4.3027) / 2 > 1.4 * q  # interpolation: 41 % too wide
    with pytest.raises(ValueError, match="df=0"):
        t_quantile(0)


def test_task_interval_averages_seeds_within_a_task():
    values = torch.tensor([[1.0, 3.0], [2.0, 2.0], [4.0, 6.0]])  # task means 2, 2, 5
    mean, low, high = task_interval(values)
    half = 4.302653 * math.sqrt(3.0) / math.sqrt(3)  # t(2) · sd / √n, sd of (2, 2, 5) is √3
    assert mean == pytest.approx(3.0)
    assert (low, high) == (pytest.approx(3.0 - half, abs=1e-5), pytest.approx(3.0 + half, abs=1e-5))
    assert task_interval(torch.tensor([[1.0, 2.0]]))[1:] == (float("-inf"), float("inf"))


def test_contrast_interval_is_welch():
    a = torch.tensor([[1.0], [2.0], [3.0]])  # mean 2, var 1
    b = torch.tensor([[0.0], [0.0], [0.0], [2.0]])  # mean 0.5, var 1
    diff, low, high = contrast_interval(a, b)
    va, vb = 1 / 3, 1 / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)  # Welch–Satterthwaite: 4.45…, used as it is
    assert 4.4 < df < 4.5
    estimate = contrast_estimate(a, b)
    assert estimate.df == pytest.approx(df) and estimate.se == pytest.approx(math.sqrt(va + vb))
    assert _t_cdf((high - diff) / math.sqrt(va + vb), df) == pytest.approx(0.975, abs=1e-6)
    assert diff == pytest.approx(1.5) and low == pytest.approx(2 * diff - high)
    assert contrast_interval(torch.ones(3, 2), torch.ones(2, 2)) == (0.0, 0.0, 0.0)


def test_holm_levels_are_the_textbook_step_down():
    # sorted: .005 (α/4, rejected), .01 (α/3, rejected), .03 (α/2 = .025: not rejected, stop), .04 keeps α/2
    assert holm_levels([0.01, 0.04, 0.03, 0.005], 0.05) == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])
    assert holm_levels([0.001, 0.002], 0.05) == pytest.approx([0.025, 0.05])
    assert holm_levels([], 0.05) == []


def test_p_value_and_interval_agree():
    """A row's interval at its Holm level excludes the margin exactly when its p-value is below that level."""
    estimate = task_estimate(torch.tensor([[0.30], [0.10], [0.25], [0.20], [0.15]]))
    for margin in (0.0, 0.05, 0.1, 0.3):
        for level in (0.05, 0.01, 0.05 / 17):
            low, high = estimate.interval(level)
            assert (not low <= margin <= high) == (estimate.p_value(margin) < level), (margin, level)


def test_verdicts_say_why_they_are_inconclusive():
    assert verdict(0.1, 0.3, 0.0) == ("holds", "")
    assert verdict(-0.3, -0.1, 0.0) == ("does not hold", "")
    assert verdict(0.2, 0.4, 0.5) == ("does not hold", "")
    assert verdict(-0.1, 0.3, 0.0) == ("inconclusive", "the interval straddles the margin")
    assert verdict(0.2, 0.2, 0.0)[0] == "inconclusive" and "zero-width" in verdict(0.2, 0.2, 0.0)[1]
    assert verdict(0.2, 0.9, 0.0, n_tasks=2) == ("inconclusive", "fewer than 3 tasks (2)")
    with pytest.raises(ValueError, match="NaN"):
        verdict(float("nan"), 1.0, 0.0)


def test_a_nan_effect_is_an_error_naming_the_unit(monkeypatch):
    import dataclasses

    from tvlens.studies.ledger import catalog as module

    nan = dataclasses.replace(CLAIMS["vanilla_beats_zero_shot"], models=("perm-mix",),
                              measure=lambda unit: (float("nan"), 0.0))
    monkeypatch.setitem(module.CLAIMS, "vanilla_beats_zero_shot", nan)
    with pytest.warns(RuntimeWarning, match=r"model 'perm-mix' failed: claim 'vanilla_beats_zero_shot'"):
        with pytest.raises(ModelsFailed, match=r"^models: 'perm-mix' failed: claim 'vanilla_beats_zero_shot' on "
                                               rf"perm-mix, task {Splits(0).tasks(8, 1)[0]}, seed 0: the effect is nan"):
            claims_ledger(LedgerConfig(n_tasks=1, seeds=(0,), n_prompts=8, claims=("vanilla_beats_zero_shot",),
                                       family_models=1))


def test_every_claim_has_a_control_and_the_ledger_has_at_least_sixteen():
    assert len(CLAIMS) >= 16
    assert all(c.control and c.control_rule in ("subtract", "must_fail", "shown") for c in CLAIMS.values())


def test_a_training_claim_is_measured_over_independently_trained_pairs():
    """The TVP-loss rows, one per recipe: per step-matched pair, TVP mode as the paper reads it (each prompt's own
    state) at the layer the loss pins, of the model trained with the loss against its partner's (accuracy gained, or
    regression error lost), recomputed by hand; the control is the same difference where the state cannot hold the
    scored answer; the interval is Student's t over the pairs (not over prompts of one training run), checked with
    scipy's t directly."""
    from scipy import stats

    from tvlens.studies import tvp_by_layer
    from tvlens.studies.formation import blind_reading
    from tvlens.zoo.specs import ARM_LAYERS, ARM_REPLICATES, arm_names

    config = LedgerConfig(n_tasks=1, seeds=(0,), n_prompts=32, claims=("tvp_loss",))
    rows = claims_ledger(config).rows
    assert [r.model for r in rows] == [f"{f}-tvp-arm-s0…s{n - 1} vs {f}-arm-s0…s{n - 1}"
                                       for f, n in ARM_REPLICATES.items()]
    assert ARM_REPLICATES["perm-mix"] >= 5 and "linear-regression" in ARM_REPLICATES
    for row, (family, n) in zip(rows, ARM_REPLICATES.items()):
        assert row.n_models == n >= 3 and (row.n_tasks, row.n_seeds) == (1, 1)
        assert row.sample == f"{n} models × 1 × 1"
        task, layer = zoo.task(family), ARM_LAYERS[family]
        # the family's task drawn by seed 0 (Splits.tasks); a regression family's one group of 32 prompts
        task = task.single(Splits(0).tasks(task.n_tasks, 1)[0]) if task.n_tasks else task
        sign = 1 if task.metric.higher_is_better else -1
        per_pair = []
        for i in range(n):
            (with_loss, without), (blind_with, blind_without) = (
                [tvp_by_layer(zoo.load(name), task, n_prompts=32, n_shots=zoo.spec(name).train.n_shots, seed=0,
                              split="test", source=source).tvp[layer] for name in arm_names(i, family)]
                for source in ("prompt", blind_reading(task)))
            per_pair.append(sign * float(with_loss - without))
            assert row.values[arm_names(i, family)[0]].item() == pytest.approx(per_pair[-1])
            assert row.controls[arm_names(i, family)[0]].item() == pytest.approx(
                sign * float(blind_with - blind_without))
        values = torch.tensor(per_pair, dtype=torch.float64)
        assert row.mean == pytest.approx(float(values.mean()))
        if float(values.std()) > 0:
            half = stats.t.ppf(1 - config.alpha / 2, n - 1) * float(values.std()) / math.sqrt(n)  # unadjusted
            assert (row.low, row.high) == pytest.approx((row.mean - half, row.mean + half))
        else:
            assert row.verdict == "inconclusive" and row.reason == "zero-width interval: every model gave the same value"


def test_a_family_row_is_over_its_trained_models_means():
    """A mechanism claim's zoo row reads every trained model of its family (tasks nested in models): its mean is the
    mean of the model means and its interval Student's t over them with n − 1 = 2 degrees of freedom (scipy), not over
    the 3 × 4 task values; a preview on each family's first model (``family_models=1``) is over its task means."""
    from scipy import stats

    from tvlens.zoo.specs import FAMILY_MODELS

    config = LedgerConfig(n_tasks=4, seeds=(0,), claims=_CLAIM)
    effects = {m: [0.1 * (i + 1) + 0.02 * t for t in range(4)] for models in FAMILY_MODELS.values()
               for i, m in enumerate(models)}
    ledger = claims_ledger(config, progress=False, executor=_Scripted(  # a family's k-th task drawn (one seed)
        lambda job: [UnitResult([(effects[job.subject.name][k], -1.0, 0)]) for k, _ in enumerate(job.units)]))
    claim = CLAIMS["vanilla_beats_zero_shot"]
    assert [r.model for r in ledger.rows] == list(claim.models)
    for row in ledger.rows:
        models = FAMILY_MODELS[row.model]
        assert list(row.values) == list(models) and row.n_models == 3 and row.sample == "3 models × 4 × 1"
        means = [sum(effects[m]) / 4 for m in models]
        assert row.mean == pytest.approx(sum(means) / 3) and row.control == pytest.approx(-1.0)
        low, high = stats.t.interval(1 - config.alpha, 2, loc=sum(means) / 3, scale=stats.sem(means))
        assert (row.low, row.high) == pytest.approx((low, high))
        assert row.p_value == pytest.approx(stats.ttest_1samp(means, claim.margin).pvalue)
    # two models could not decide it, and the reason counts models, not tasks
    assert verdict(0.1, 0.2, 0.0, n_tasks=2, unit="model") == ("inconclusive", "fewer than 3 models (2)")
    # a preview on each family's first model: its rows are over that model's task means
    submitted = _Scripted(lambda job: [UnitResult([(effects[job.subject.name][k], -1.0, 0)])
                                       for k, _ in enumerate(job.units)])
    preview = claims_ledger(LedgerConfig(n_tasks=4, seeds=(0,), claims=_CLAIM, family_models=1), progress=False,
                            executor=submitted)
    assert len(submitted.submitted) == len(claim.models)
    for row in preview.rows:
        first = FAMILY_MODELS[row.model][0]
        assert list(row.values) == [first] and row.n_models == 1 and row.sample == "4 × 1"
        low, high = stats.t.interval(1 - config.alpha, 3, loc=sum(effects[first]) / 4, scale=stats.sem(effects[first]))
        assert (row.low, row.high) == pytest.approx((low, high))
    with pytest.raises(ValueError, match=r"family_models=0"):
        LedgerConfig(family_models=0)


def test_config_errors():
    import dataclasses

    with pytest.raises(ValueError, match="contrast and replicated are exclusive"):
        dataclasses.replace(CLAIMS["tvp_loss"], contrast=True)
    depth = CLAIMS["depth_vs_complexity"]
    assert depth.contrast_pairs[-1] == ("sinusoid-regression", "linear-regression")
    with pytest.raises(ValueError, match=r"pairs must pair a contrast's models, each in some pair"):
        dataclasses.replace(depth, pairs=depth.pairs[:2])
    with pytest.raises(ValueError, match=r"replicates must split a replicated claim's models, each once"):
        dataclasses.replace(CLAIMS["tvp_loss"], replicates=CLAIMS["tvp_loss"].replicates[:1])
    with pytest.raises(ValueError, match=r"claims: unknown \['magic'\]"):
        LedgerConfig(claims=("magic",))
    with pytest.raises(ValueError, match="seeds=\\(1, 1\\)"):
        LedgerConfig(seeds=(1, 1))
    with pytest.raises(ValueError, match="n_tasks=0"):
        LedgerConfig(n_tasks=0)
    assert LedgerConfig.from_dict(LedgerConfig(seeds=(3, 4)).to_dict()) == LedgerConfig(seeds=(3, 4))


def test_a_row_is_its_units_rerun_by_hand():
    """The vanilla-vs-zero-shot row on perm-mix, measured on one trained model of each family: each unit's effect is
    the vanilla TV (layer chosen on dev prompts) scored on the test split minus zero-shot on the same prompts; the
    interval is over the tasks (seeds averaged within a task)."""
    config = LedgerConfig(n_tasks=2, seeds=(0, 1), n_prompts=64, claims=("vanilla_beats_zero_shot",), family_models=1)
    ledger = claims_ledger(config)
    assert [r.model for r in ledger.rows] == list(CLAIMS["vanilla_beats_zero_shot"].models)
    row = ledger.row("vanilla_beats_zero_shot", "perm-mix")
    model, family = zoo.load("perm-mix"), zoo.task("perm-mix")
    expected = torch.empty(2, 2, dtype=torch.float64)
    for k, t in enumerate(Splits(0).tasks(family.n_tasks, 2)):  # 2 of perm-mix's 8 tasks, drawn by the first seed
        for j, seed in enumerate((0, 1)):
            task = family.single(t)
            test = Splits(seed).sample(task, "test", 64, 16)
            tv, result = vanilla_task_vector(model, task, n_shots=16, seed=seed)
            assert result.sweep.best_layer is not None
            expected[k, j] = (evaluate(model, task, "injected", tv, batch=test, progress=False).mean
                              - evaluate(model, task, "zero_shot", batch=test, progress=False).mean)
    torch.testing.assert_close(row.values["perm-mix"], expected)
    assert (row.mean, row.low, row.high) == pytest.approx(task_interval(expected, config.alpha))  # unadjusted
    # an exploratory claim: Holm within its own rows (its three models)
    p_values = [r.p_value for r in ledger.rows]
    assert row.level == pytest.approx(holm_levels(p_values)[ledger.rows.index(row)])
    assert row.p_adjusted == pytest.approx(holm_adjusted(p_values)[ledger.rows.index(row)]) and not row.primary
    assert (row.verdict, row.reason) == ("inconclusive", "fewer than 3 tasks (2)")
    assert (row.n_models, row.n_tasks, row.n_seeds) == (1, 2, 2) and list(row.values) == ["perm-mix"]
    records = ledger.to_records()
    assert len(records) == 3 and "values" not in records[0] and "control" in records[0]
    markdown = ledger.to_markdown()
    assert ("| The vanilla task vector beats the zero-shot query | Yang et al. 2025a (on LLMs) | exploratory | perm-mix |"
            in markdown)
    # where it was measured, from the zoo's own recipes (perm-mix, perm-mix-32, token-offset: 4 layers, d_model 64)
    assert markdown.startswith("Rows on zoo models were measured on small synthetic transformers trained by tvlens "
                               "(4 layers, d_model 64; the tvlens zoo), not on the models the papers used")
    with pytest.raises(KeyError, match="claim='key_heads'"):
        ledger.row("key_heads")


# The verdicts the ledger reaches on the shipped zoo (3 models × 8 tasks × 1 seed, the docs' setting: held-out queries,
# controls, Holm over the primaries and within each exploratory claim). The test pins the finding, not the paper: a
# claim that does not hold on a model is asserted not to hold there, one whose effect is within ±δ of zero is
# asserted to have no effect, and one the zoo cannot decide is asserted inconclusive.
ARMS = "perm-mix-tvp-arm-s0…s4 vs perm-mix-arm-s0…s4"
OFFSET_ARMS = "token-offset-tvp-arm-s0…s2 vs token-offset-arm-s0…s2"
LINEAR_ARMS = "linear-regression-tvp-arm-s0…s2 vs linear-regression-arm-s0…s2"
EXPECTED: dict[tuple[str, str], str] = {
    ("ltv_beats_vanilla", "perm-mix"): NOT_TESTABLE,
    ("ltv_beats_vanilla", "perm-mix-32"): NOT_TESTABLE,
    ("ltv_beats_vanilla", "token-offset"): NOT_TESTABLE,
    ("ltv_near_icl", "perm-mix"): "does not hold",
    ("ltv_near_icl", "perm-mix-32"): "does not hold",
    ("ltv_near_icl", "token-offset"): "does not hold",
    ("ltv_beats_fv", "perm-mix"): NOT_TESTABLE,
    ("ltv_beats_fv", "perm-mix-32"): NOT_TESTABLE,
    ("ltv_beats_fv", "token-offset"): NOT_TESTABLE,
    ("vanilla_beats_zero_shot", "perm-mix"): "inconclusive",
    ("vanilla_beats_zero_shot", "perm-mix-32"): "inconclusive",
    ("vanilla_beats_zero_shot", "token-offset"): "inconclusive",
    ("hendel_most_of_icl", "perm-mix"): NOT_TESTABLE,
    ("hendel_most_of_icl", "perm-mix-32"): NOT_TESTABLE,
    ("hendel_most_of_icl", "token-offset"): NOT_TESTABLE,
    ("fv_beats_zero_shot", "perm-mix"): "inconclusive",
    ("fv_beats_zero_shot", "perm-mix-32"): "inconclusive",
    ("fv_beats_zero_shot", "token-offset"): "inconclusive",
    ("ltv_early_position", "perm-mix"): NOT_TESTABLE,
    ("ltv_early_position", "perm-mix-32"): NOT_TESTABLE,
    ("ltv_early_position", "token-offset"): NOT_TESTABLE,
    ("ltv_on_icl_prompts", "perm-mix"): NO_EFFECT,
    ("ltv_on_icl_prompts", "perm-mix-32"): NO_EFFECT,
    ("ltv_on_icl_prompts", "token-offset"): NO_EFFECT,
    ("key_heads", "perm-mix"): NOT_TESTABLE,
    ("key_heads", "perm-mix-32"): NOT_TESTABLE,
    ("key_heads", "token-offset"): NOT_TESTABLE,
    ("theta_ov", "perm-mix"): NOT_TESTABLE,
    ("theta_ov", "perm-mix-32"): NOT_TESTABLE,
    ("theta_ov", "token-offset"): NOT_TESTABLE,
    ("linear_propagation", "perm-mix"): NOT_TESTABLE,
    ("linear_propagation", "perm-mix-32"): NOT_TESTABLE,
    ("linear_propagation", "token-offset"): NOT_TESTABLE,
    ("linear_through_origin", "perm-mix"): NOT_TESTABLE,
    ("linear_through_origin", "perm-mix-32"): NOT_TESTABLE,
    ("linear_through_origin", "token-offset"): NOT_TESTABLE,
    ("rotation_then_scaling", "perm-mix"): NOT_TESTABLE,
    ("rotation_then_scaling", "perm-mix-32"): NOT_TESTABLE,
    ("rotation_then_scaling", "token-offset"): NOT_TESTABLE,
    ("rotation_toward_labels", "perm-mix"): NOT_TESTABLE,
    ("rotation_toward_labels", "perm-mix-32"): NOT_TESTABLE,
    ("rotation_toward_labels", "token-offset"): NOT_TESTABLE,
    ("head_weighted_beats_fv", "linear-regression"): "does not hold",
    ("head_weighted_beats_fv", "sparse-linear-regression"): "does not hold",
    ("head_weighted_beats_fv", "sinusoid-regression"): "does not hold",
    ("head_weighted_long_prompts", "linear-regression-long"): "inconclusive",
    ("tvp_loss", ARMS): "holds",
    ("tvp_loss", OFFSET_ARMS): "holds",
    ("tvp_loss", LINEAR_ARMS): "inconclusive",
    ("tvp_loss_keeps_icl", ARMS): NO_EFFECT,
    ("tvp_loss_keeps_icl", OFFSET_ARMS): "holds",
    ("tvp_loss_keeps_icl", LINEAR_ARMS): NO_EFFECT,
    ("tvp_loss_ood", ARMS): "does not hold",
    ("tvp_loss_ood", OFFSET_ARMS): NO_EFFECT,
    ("depth_vs_complexity", "perm-mix-32 vs perm-mix"): "inconclusive",
    ("depth_vs_complexity", "perm-mix-32 vs perm-mix-2"): "inconclusive",
    ("depth_vs_complexity", "token-offset vs token-offset-2"): "inconclusive",
    ("depth_vs_complexity", "sinusoid-regression vs linear-regression"): "inconclusive",
}


@pytest.mark.slow
def test_the_zoo_ledger_on_worker_processes_is_the_in_process_one():
    """Each worker runs all the units of a model (their LTVs learned side by side, a TVP-loss arm's partner loaded
    there too): the rows and per-unit values equal the in-process ledger's."""
    from tvlens._parallel import process_pool

    config = LedgerConfig(n_tasks=2, seeds=(0,), n_prompts=16, epochs=3,
                          claims=("ltv_beats_vanilla", "ltv_near_icl", "tvp_loss", "head_weighted_beats_fv"))
    here = claims_ledger(config, progress=False)
    with process_pool(2) as pool:
        there = claims_ledger(config, progress=False, executor=pool)
    assert [(r.claim, r.model, r.verdict, r.unconverged) for r in there.rows] == \
        [(r.claim, r.model, r.verdict, r.unconverged) for r in here.rows]
    for a, b in zip(here.rows, there.rows):
        assert a.values.keys() == b.values.keys()
        for key in a.values:
            torch.testing.assert_close(b.values[key], a.values[key], rtol=0, atol=1e-6)
            torch.testing.assert_close(b.controls[key], a.controls[key], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_the_ledger_verdicts_on_the_zoo():
    ledger = claims_ledger(LedgerConfig())
    found = {(r.claim, r.model): r.verdict for r in ledger.rows}
    assert {claim for claim, _ in found} == set(CLAIMS)
    # every family row reads at least 3 trained models × 8 tasks; a contrast reads one model a side (the 2-task rungs
    # of the complexity ladders, perm-mix-2 and token-offset-2, have 2 tasks)
    for r in ledger.rows:
        assert r.n_tasks >= (2 if r.model.endswith("-2") else 8), r
        assert r.n_models >= 3 or CLAIMS[r.claim].contrast, r
    assert found == EXPECTED
    # converged: the learned vectors behind the rows stopped because their dev loss stopped improving (>= 90 %)
    n_units = sum(r.n_models * r.n_tasks * r.n_seeds for r in ledger.rows)
    assert sum(r.unconverged for r in ledger.rows) <= 0.1 * n_units


def test_an_executor_gets_the_models_with_the_most_work_first():
    """Jobs are submitted by units × the claims' declared costs, largest first (a head-weighted regression unit
    costs 3 typical ones, a TVP-loss arm's 2 claims 2): the order only, the table is assembled in model order."""
    import concurrent.futures
    import dataclasses

    class Recording(concurrent.futures.Executor):
        def __init__(self):
            self.order = []

        def submit(self, fn, job, *args, **kwargs):
            self.order.append(job.subject.name)
            future = concurrent.futures.Future()
            future.set_result([UnitResult([(0.0, 0.0, 0)] * len(job.claims)) for _ in job.units])  # the order is tested
            return future

    pool = Recording()
    ledger = claims_ledger(LedgerConfig(n_tasks=1, seeds=(0,), claims=("tvp_loss", "tvp_loss_keeps_icl",
                                                                      "head_weighted_beats_fv")), executor=pool)
    regression, arms = CLAIMS["head_weighted_beats_fv"].measured_models, CLAIMS["tvp_loss"].models
    assert len(regression) == 3 * len(CLAIMS["head_weighted_beats_fv"].models)  # each family's three models
    assert pool.order == [*regression, *arms]
    # one row per family, in the claim's order
    assert [r.model for r in ledger.rows if r.claim == "head_weighted_beats_fv"] == \
        list(CLAIMS["head_weighted_beats_fv"].models)
    with pytest.raises(ValueError, match=r"Claim 'tvp_loss': cost=0; expected a positive finite number"):
        dataclasses.replace(CLAIMS["tvp_loss"], cost=0)


class _Scripted(concurrent.futures.Executor):
    """An executor that runs nothing: each model's job gets the outcome ``outcome(job)`` gives (a list of
    :class:`UnitResult`, or an exception), so the ledger's handling of results is tested without any model work."""

    def __init__(self, outcome):
        self.outcome, self.submitted = outcome, []

    def submit(self, fn, job, *args, **kwargs):
        result = self.outcome(job)  # may raise, as a failed submit does
        future = concurrent.futures.Future()
        self.submitted.append(future)
        if isinstance(result, BaseException):
            future.set_exception(result)
        elif result is not None:
            future.set_result(result)
        return future


def _spread(job) -> float:
    """A spread over a family's trained models (a fixed function of the model's name), so that an interval over
    their model means has a width."""
    return 0.01 * (zlib.crc32(job.subject.name.encode()) % 7)


def _measured(job, distinct=None):
    """Effects that clear every margin with room (0.5 + a spread over the tasks and models), controls at zero."""
    return [UnitResult([(0.5 + 0.01 * task + _spread(job), 0.0, 0)] * len(job.claims), distinct)
            for task, _ in job.units]


_CLAIM = ("vanilla_beats_zero_shot",)


def test_a_failing_model_is_reported_at_once_and_the_others_are_kept():
    config = LedgerConfig(n_tasks=5, seeds=(0,), claims=_CLAIM)
    broken = CLAIMS["vanilla_beats_zero_shot"].models[0]

    def outcome(job):
        return ValueError("weights\n   are  NaN") if job.subject.name == broken else _measured(job)

    with pytest.warns(RuntimeWarning, match=rf"model '{broken}' failed: weights are NaN; its rows read 'not measured'"):
        ledger = claims_ledger(config, progress=False, executor=_Scripted(outcome))
    assert ledger.errors == {broken: "weights are NaN"}
    rows = {r.model: r for r in ledger.rows}
    assert list(rows) == list(CLAIMS["vanilla_beats_zero_shot"].models)  # the claim's order, the failed one in place
    assert rows[broken].verdict == NOT_MEASURED and rows[broken].reason == f"{broken} failed: weights are NaN"
    assert all(r.verdict == "holds" for m, r in rows.items() if m != broken)
    assert "1 model(s) failed" in ledger.to_markdown() and "**not measured** (" in ledger.to_markdown()


def test_a_dead_worker_and_a_ledger_where_every_model_failed_are_one_line():
    from concurrent.futures.process import BrokenProcessPool

    config = LedgerConfig(n_tasks=5, seeds=(0,), claims=_CLAIM)
    with pytest.warns(RuntimeWarning, match="its worker process died"):
        with pytest.raises(ModelsFailed, match=r"^models: '.*' failed: its worker process died \(killed, or out of "
                                                r"memory\) \(and \d+ other models\)$"):
            claims_ledger(config, progress=False, executor=_Scripted(lambda job: BrokenProcessPool("A child died")))


def test_a_task_whose_answers_are_all_alike_never_holds():
    """Test prompts with fewer than MIN_DISTINCT_ANSWERS distinct answers (a tokenizer whose every answer starts with
    one token) make the row inconclusive whatever its interval; with enough answers the same numbers hold."""
    config = LedgerConfig(n_tasks=5, seeds=(0,), claims=_CLAIM)
    model = CLAIMS["vanilla_beats_zero_shot"].models[0]
    for distinct, verdict_ in ((1, "inconclusive"), (MIN_DISTINCT_ANSWERS - 1, "inconclusive"),
                               (MIN_DISTINCT_ANSWERS, "holds"), (None, "holds")):
        ledger = claims_ledger(config, progress=False, executor=_Scripted(
            lambda job, d=distinct: _measured(job, d if job.subject.name == model else None)))
        row = ledger.row("vanilla_beats_zero_shot", model)
        assert row.verdict == verdict_ and row.mean > 0.5, (distinct, row)
        if verdict_ == "inconclusive":
            assert row.reason.startswith("degenerate targets: the test prompts of task(s) 0 (")
            assert row.reason.endswith(f"a constant answer scores on {model}")


def test_the_distinct_answers_are_read_from_the_test_prompts():
    from tvlens.studies.ledger.run import _distinct_answers
    from tvlens.studies.ledger.unit import Workbench

    unit = Workbench("perm-mix", 0, 0, LedgerConfig(n_prompts=64))
    assert _distinct_answers(unit) == unit.test.targets.unique().numel() >= MIN_DISTINCT_ANSWERS
    assert _distinct_answers(Workbench("linear-regression", 0, 0, LedgerConfig(n_prompts=8))) is None


def test_a_thread_executor_is_refused_and_a_failed_submit_cancels_the_rest():
    config = LedgerConfig(n_tasks=1, seeds=(0,), claims=_CLAIM)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match=r"^executor: a ThreadPoolExecutor runs the models in this process's "
                                             r"threads.*expected a ProcessPoolExecutor"):
            claims_ledger(config, progress=False, executor=pool)
    calls = []

    def outcome(job):
        calls.append(job)
        if len(calls) == 2:
            raise OSError("cannot start a worker")
        return None  # left pending: a job still running

    scripted = _Scripted(outcome)
    with pytest.raises(OSError, match="cannot start a worker"):
        claims_ledger(config, progress=False, executor=scripted)
    assert len(scripted.submitted) == 1 and scripted.submitted[0].cancelled()


def test_a_mechanism_row_where_no_task_vector_is_is_not_testable():
    """A gated claim whose units' learned vectors recover less than GATE of ICL's gain reads 'not testable here' with
    the gate (never 'does not hold'), and leaves its Holm family."""
    from tvlens.studies.ledger.verdicts import GATE

    names = ("key_heads", "vanilla_beats_zero_shot")
    assert CLAIMS["key_heads"].gate == "site" and CLAIMS["vanilla_beats_zero_shot"].gate is None
    config = LedgerConfig(n_tasks=5, seeds=(0,), claims=names)

    def scripted(gate):
        def outcome(job):  # key_heads clearly below its margin: it would read "does not hold" if it were decided
            return [UnitResult([(-0.5 + 0.01 * t + _spread(job), 0.0, 0), (0.5 + 0.01 * t + _spread(job), 0.0, 0)],
                               None, [gate, None]) for t, _ in job.units]
        return _Scripted(outcome)

    passing = claims_ledger(config, progress=False, executor=scripted(GATE + 0.1))
    failing = claims_ledger(config, progress=False, executor=scripted(GATE - 0.1))
    for model in CLAIMS["key_heads"].models:
        open_, shut = passing.row("key_heads", model), failing.row("key_heads", model)
        assert open_.verdict == "does not hold" and open_.gate == pytest.approx(GATE + 0.1)
        assert shut.verdict == NOT_TESTABLE and shut.reason.startswith(f"gate {GATE - 0.1:.2f}: the learned vector")
        assert shut.mean == open_.mean and shut.level == config.alpha  # shown, unadjusted
        assert math.isnan(passing.row("vanilla_beats_zero_shot", model).gate)
    for ledger in (passing, failing):  # each exploratory claim its own family; a shut row in none
        for claim in names:
            rows = [r for r in ledger.rows if r.claim == claim and r.verdict != NOT_TESTABLE]
            assert [r.p_adjusted for r in rows] == pytest.approx(holm_adjusted([r.p_value for r in rows]))
    assert "0 of the 6 decided rows could detect" in passing.caption()  # 3 models: df 2, MDE 0.05–0.09 > δ
    assert "0 of the 3 decided rows could detect" in failing.caption()
    assert f"3 rows are {NOT_TESTABLE}: a negative could not show" in failing.to_markdown()
    assert f"; site gate {GATE + 0.1:.2f} |" in passing.to_markdown()
    models = CLAIMS["key_heads"].models
    assert passing.site_gates() == pytest.approx({m: GATE + 0.1 for m in models})
    listed = ", ".join(f"{m} ({GATE + 0.1:.2f})" for m in models)
    assert f"of ICL's gain on held-out queries): {listed}; below the gate: none." in passing.caption()
    assert f"queries): none; below the gate: {listed.replace(f'{GATE + 0.1:.2f}', f'{GATE - 0.1:.2f}')}." in \
        failing.caption()


def test_the_gate_is_the_share_of_icls_gain_the_learned_vector_recovers():
    """Workbench.site_gate against the same scores computed independently with evaluate on the unit's test prompts."""
    from tvlens.studies.ledger import Workbench

    unit = Workbench("token-offset", 0, 0, LedgerConfig(n_prompts=32, epochs=3))
    layer = unit.vanilla()[1]
    ltv = unit.learned(layer)
    zero, icl, injected = (evaluate(unit.model, unit.task, mode, vector, batch=unit.test, path="full").mean
                           for mode, vector in (("zero_shot", None), ("icl", None), ("injected", ltv)))
    assert unit.site_gate() == pytest.approx((injected - zero) / (icl - zero), abs=1e-6)
    unit.touched.clear()
    unit.site_gate()
    assert not unit.touched  # the gate's vector is not counted as the claim's


def test_hendels_reading_is_position_matched_and_gated_like_every_mechanism_claim():
    """The hendel row moves the zero-shot prompt (and its baseline) to the ICL query's position, where the patched
    state was computed: its zero-shot term is the moved prompts' score (checked with evaluate), which on perm-mix
    differs from the unmoved one; and it is decided only where a task vector can exist at its site."""
    from tvlens.studies.ledger import GATES, Workbench
    from tvlens.vectors.vanilla import source_position

    assert CLAIMS["hendel_most_of_icl"].gate == "site" and set(GATES) == {"site", "ood_room", "long_room"}
    unit = Workbench("perm-mix", 0, 0, LedgerConfig(n_prompts=64))
    effect, control = CLAIMS["hendel_most_of_icl"].measure(unit)
    tv = unit.vanilla(mode="replace")[0]
    at = source_position(unit.test)
    moved, icl, injected = (evaluate(unit.model, unit.task, mode, vector, batch=unit.test, query_at=q).mean
                            for mode, vector, q in (("zero_shot", None, at), ("icl", None, None), ("injected", tv, at)))
    assert effect == pytest.approx(injected - moved - 0.5 * (icl - moved), abs=1e-6)
    assert moved != pytest.approx(unit.score("zero_shot"), abs=0.02)  # learned absolute positions: the move matters



def test_holm_adjusted_p_values_are_the_textbook_ones_and_statsmodels():
    from statsmodels.stats.multitest import multipletests

    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    ps = torch.rand(17, generator=torch.Generator().manual_seed(3)).pow(3).tolist()
    assert holm_adjusted(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))
    # rejected by the step-down levels exactly when the adjusted p-value is below alpha
    assert [p < level for p, level in zip(ps, holm_levels(ps))] == [q < 0.05 for q in holm_adjusted(ps)]


def test_equivalence_and_power_against_scipy_and_statsmodels():
    """The TOST p-value is the larger of two one-sided one-sample t-tests at ±δ (scipy); the minimum detectable
    effect is statsmodels' power solution for the same test; a decision reads them."""
    from scipy import stats
    from statsmodels.stats.power import TTestPower

    from tvlens.studies.ledger.verdicts import NO_EFFECT, decide

    means = torch.tensor([0.01, -0.02, 0.015, 0.0, 0.005, -0.01], dtype=torch.float64)
    estimate = task_estimate(means[:, None])
    delta = 0.05
    by_scipy = max(stats.ttest_1samp(means.numpy(), -delta, alternative="greater").pvalue,
                   stats.ttest_1samp(means.numpy(), delta, alternative="less").pvalue)
    assert estimate.p_equivalence(delta) == pytest.approx(by_scipy, rel=1e-9)
    for level in (0.05, 0.01):
        expected = TTestPower().solve_power(nobs=len(means), alpha=level, power=0.8) * float(means.std())
        assert estimate.mde(level) == pytest.approx(expected, rel=1e-5)
    p_adjusted, p_equivalent = estimate.p_value(0.0), estimate.p_equivalence(delta)
    assert decide(estimate, 0.0, delta, p_adjusted, p_equivalent)[0] == NO_EFFECT
    assert decide(estimate, 0.0, None, p_adjusted, p_equivalent) == (
        "inconclusive", "neither the test against the margin nor the equivalence test rejects")
    shifted = task_estimate((means + 0.5)[:, None])
    assert decide(shifted, 0.0, delta, shifted.p_value(0.0), 1.0)[0] == "holds"
    assert decide(shifted, 0.6, delta, shifted.p_value(0.6), 1.0)[0] == "does not hold"
    assert decide(task_estimate(means[:2, None]), 0.0, delta, 0.0, 0.0) == ("inconclusive", "fewer than 3 tasks (2)")


def test_every_claim_says_where_its_paper_made_it():
    """Each claim's paper is in MADE_ON (the catalog refuses one that is not); tvlens' own hypothesis names no paper."""
    from tvlens.studies.ledger.catalog import MADE_ON, TVLENS, catalog

    assert {c.paper for c in CLAIMS.values()} <= set(MADE_ON)
    assert CLAIMS["linear_through_origin"].paper == TVLENS and MADE_ON[TVLENS] == ""
    stray = dataclasses.replace(CLAIMS["key_heads"], name="stray", paper="Someone 2031")
    with pytest.raises(ValueError, match=r"^claim 'stray': paper='Someone 2031' is not in MADE_ON"):
        catalog([stray])


def test_one_primary_hypothesis_per_paper_and_its_own_holm_family():
    """CLAIMS declares at most one primary per paper (the catalog refuses a second); the primaries' rows are one
    Holm family, each exploratory claim's rows another."""
    import dataclasses

    from tvlens.studies.ledger.catalog import catalog

    papers = [c.paper for c in CLAIMS.values() if c.primary]
    assert len(papers) == len(set(papers)) == 5
    second = dataclasses.replace(CLAIMS["ltv_near_icl"], primary=True)
    with pytest.raises(ValueError, match=r"^claim 'ltv_near_icl': Yang et al. 2025a already has a primary hypothesis "
                                         r"\('ltv_beats_vanilla'\); expected at most one per paper$"):
        catalog([CLAIMS["ltv_beats_vanilla"], second])
    with pytest.raises(ValueError, match="given twice"):
        catalog([CLAIMS["ltv_near_icl"]] * 2)
    from tvlens.studies.ledger.verdicts import GATE

    names = ("fv_beats_zero_shot", "hendel_most_of_icl", "vanilla_beats_zero_shot")
    ledger = claims_ledger(LedgerConfig(n_tasks=5, seeds=(0,), claims=names), progress=False, executor=_Scripted(
        lambda job: [UnitResult([(0.02 + 0.03 * t + _spread(job), 0.0, 0), (0.01 + 0.02 * t + _spread(job), 0.0, 0),
                                 (0.1 + 0.01 * t + _spread(job), 0.0, 0)], None, [None, GATE + 0.1, None])
                     for t, _ in job.units]))
    primary = [r for r in ledger.rows if r.primary]
    assert {r.claim for r in primary} == {"fv_beats_zero_shot", "hendel_most_of_icl"} and len(primary) == 6
    assert [r.p_adjusted for r in primary] == pytest.approx(holm_adjusted([r.p_value for r in primary]))
    exploratory = [r for r in ledger.rows if r.claim == "vanilla_beats_zero_shot"]
    assert [r.p_adjusted for r in exploratory] == pytest.approx(holm_adjusted([r.p_value for r in exploratory]))
    assert "| Todd et al. 2024 (on LLMs) | primary |" in ledger.to_markdown()


def test_the_long_prompt_claim_is_saglam_et_al_s_setting_computed_by_hand():
    """head_weighted_long_prompts on one unit: 40-demonstration prompts (the model's whole context, trained on 20),
    the head-weighted LTV of each prompt's 20-demonstration prefix added at every block's output at the query; the
    effect ``1 − error(ICL + vector) / error(ICL)`` recomputed with a plain hooked forward, and the control's vectors
    random with the same norm per layer and prompt."""
    import dataclasses

    from tvlens import inject
    from tvlens.studies.ledger import GATES, Workbench
    from tvlens.studies.regression import fidelity_vectors
    from tvlens.tasks import Splits

    config = LedgerConfig(n_tasks=2, seeds=(0,), n_prompts=24)
    unit = Workbench("linear-regression-long", 1, 0, config)
    effect, control = CLAIMS["head_weighted_long_prompts"].measure(unit)
    model, family = zoo.load("linear-regression-long"), zoo.task("linear-regression-long")
    made = fidelity_vectors(model, family, ("function", "head_weighted"), train_shots=20, n_prompts=24, seed=0,
                            progress=False)
    group = Splits(0).sample(family, "test", 48, 40).select(slice(24, 48))
    prefix = family.shorter(group, 20)
    assert torch.equal(prefix.inputs[:, -1], group.inputs[:, -1]) and prefix.n_shots == 20
    vector = dataclasses.replace(made["hw"], source_shots=20).interventions_for(model, group)
    assert [(iv.layer, iv.hook) for iv in vector] == [(k, "resid_post") for k in range(model.n_layers)]

    def error(*interventions):
        with torch.no_grad(), inject(model, *interventions):
            prediction = group.at_query(model(group.inputs))[:, 0]
        return float(((prediction - group.targets) ** 2).mean() / family.d_input)

    assert effect == pytest.approx(1 - error(*vector) / error(), rel=1e-4)
    random = unit.random_interventions(vector, "long prompts")
    for iv, rv in zip(vector, random, strict=True):
        torch.testing.assert_close(rv.vector.norm(dim=-1), iv.vector.norm(dim=-1))
        assert (rv.layer, rv.hook, rv.positions) == (iv.layer, iv.hook, iv.positions)
        assert float(torch.nn.functional.cosine_similarity(rv.vector, iv.vector).abs().max()) < 0.9
    assert control == pytest.approx(1 - error(*random) / error(), rel=1e-4)
    # its positive control: the share of the long prompts' ICL error their training-length prefixes do not have
    with torch.no_grad():
        short = float(((prefix.at_query(model(prefix.inputs))[:, 0] - prefix.targets) ** 2).mean() / family.d_input)
    assert CLAIMS["head_weighted_long_prompts"].gate == "long_room"
    assert GATES["long_room"].value(unit) == pytest.approx(1 - short / error(), rel=1e-4)


def test_the_benefit_claims_are_gated_on_room_for_the_benefit():
    """tvp_loss_ood's positive control, computed by hand: 1 − the plain partner's ICL accuracy on the unit's test
    prompts with a quarter of their demonstrations mislabelled (the most the TVP-loss could add there); a row whose
    partners leave less than ROOM reads not testable here, whatever its interval."""
    from tvlens.studies.ledger import GATES, Workbench
    from tvlens.studies.ledger.catalog import OOD_NOISE, ROOM

    assert CLAIMS["tvp_loss_ood"].gate == "ood_room" and GATES["ood_room"].threshold == ROOM
    for claim in ("tvp_loss_ood", "head_weighted_long_prompts"):  # the room each needs: its smallest effect of interest
        assert GATES[CLAIMS[claim].gate].threshold == pytest.approx(CLAIMS[claim].delta)
    unit = Workbench("perm-mix-tvp-arm-s0", 0, 0, LedgerConfig(n_prompts=48))
    noisy = unit.task.with_noisy_demonstrations(unit.test, OOD_NOISE, seed=0)
    plain = evaluate(zoo.load("perm-mix-arm-s0"), unit.task, "icl", batch=noisy, path="full").mean
    assert GATES["ood_room"].value(unit) == pytest.approx(1 - plain, abs=1e-9)
    config = LedgerConfig(n_tasks=5, seeds=(0,), claims=("tvp_loss_ood",))

    def scripted(room):  # the TVP-loss clearly lowers ICL under the shift: "does not hold" where it is decided
        return _Scripted(lambda job: [UnitResult([(-0.3 + 0.01 * t - 0.02 * int(job.subject.name[-1]), 0.0, 0)],
                                                 None, [room]) for t, _ in job.units])  # pair i: name ends in i

    for room, expected in ((ROOM + 0.05, "does not hold"), (ROOM - 0.04, NOT_TESTABLE)):
        rows = claims_ledger(config, progress=False, executor=scripted(room)).rows
        assert {r.verdict for r in rows} == {expected}, rows
    assert rows[0].reason.startswith(f"gate {ROOM - 0.04:.2f}: the plain partners' ICL on the shifted prompts")


def test_the_zoo_models_read_are_the_models_the_ledger_runs():
    """zoo_models_read (what the report hashes to know a cached ledger is stale) is every model claims_ledger submits
    plus the partners those models' claims read: a preview on each family's first model reads no replicate."""
    from tvlens.studies.ledger import zoo_models_read

    for config in (LedgerConfig(n_tasks=1, seeds=(0,)), LedgerConfig(n_tasks=1, seeds=(0,), family_models=1,
                                                                     claims=("vanilla_beats_zero_shot", "tvp_loss"))):
        ran = []
        with pytest.raises(ModelsFailed), pytest.warns(RuntimeWarning):  # every job recorded, then failed
            claims_ledger(config, progress=False, executor=_Scripted(
                lambda job, ran=ran: ran.append(job.subject.name) or RuntimeError("not run")))
        partners = {m for name in (config.claims or CLAIMS) for m in CLAIMS[name].partners}
        assert set(zoo_models_read(config)) == set(ran) | partners
        assert len(zoo_models_read(config)) == len(set(zoo_models_read(config)))
    assert "perm-mix-s1" in zoo_models_read(LedgerConfig())
    assert "perm-mix-s1" not in zoo_models_read(LedgerConfig(family_models=1))
