"""The report's stages: each one result (computed or read from the cache), its figures and summary entries.

:data:`STAGES` is the one list: a stage runs once first (``"ledger"``), for every model it applies to
(``"model"``) or once across models (``"studies"``). A stage that reads an earlier one's result declares it in
``needs``; the list is checked at import (a need must be an earlier stage of the same scope), and a group runs
a stage only after what it needs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import plotly.graph_objects as go
import torch
from tqdm.auto import tqdm

from tvlens import zoo
from tvlens._parallel import process_pool
from tvlens.analysis import injection_layer_maps, key_head_analysis, linear_dynamics, ov_decomposition
from tvlens.analysis.dynamics import DynamicsResult, InjectionLayerMaps
from tvlens.analysis.heads import KeyHeadResult
from tvlens.analysis.ov import OVResult
from tvlens.models.hooked import HookedModel
from tvlens.plot import (
    attention_figure,
    dynamics_figure,
    formation_heatmap,
    head_heatmap,
    injection_layers_figure,
    key_vs_random_figure,
    layer_histogram_figure,
    ledger_figure,
    logit_lens_figure,
    method_layers_figure,
    method_table_figure,
    paths_figure,
    profile_figure,
    regression_figure,
    reinjection_figure,
)
from tvlens.report.cache import StageCache
from tvlens.report.config import HF_TASKS, ReportConfig, is_hf_dir
from tvlens.studies import (
    CLAIMS,
    ClaimsLedger,
    LedgerConfig,
    claims_ledger,
    depth_vs_complexity,
    formation_over_training,
    method_table,
    regression_fidelity,
    tvp_by_layer,
    tvp_loss_comparison,
)
from tvlens.studies.formation import ComplexityResult, LayerProfile, TVPLossComparison
from tvlens.studies.ledger import GATES, MIN_DISTINCT_ANSWERS, NOT_TESTABLE_MEANS, zoo_models_read
from tvlens.studies.ledger.verdicts import NO_EFFECT, NOT_APPLICABLE, NOT_TESTABLE
from tvlens.studies.table import StudyTable
from tvlens.subjects import subject
from tvlens.tasks.splits import Splits
from tvlens.vectors import LearnConfig, compare, function_vector
from tvlens.vectors.bench import METHODS
from tvlens.vectors.compare import Comparison
from tvlens.vectors.function import FunctionVectorResult, default_top_k

#: The learned vectors of the report: the settings of the science tests (Yang et al. 2025a on the zoo).
LTV_CONFIG = LearnConfig()  # trained until the dev loss stops improving


@dataclass
class Section:
    """One figure with its heading and explanation."""

    title: str
    figure: go.Figure
    explanation: str


def _token_names(task: Any, d_vocab: int) -> list[str]:
    if hasattr(task, "tokenizer"):
        return [task.tokenizer.decode([i]) for i in range(d_vocab)]
    return task.decode(torch.arange(d_vocab)).split(" ")


# ----------------------------------------------------------------------------- stages
@dataclass
class Run:
    """What the stages of one report group share: the model, its task and settings, and the results of the
    stages before (a stage reads an earlier one's result from :attr:`results` by name)."""

    group: str
    config: ReportConfig
    model: HookedModel | None = None
    family: Any = None
    shots: int | None = None
    history: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    progress: bool = False  # inner progress bars of the long stages
    #: the ledger group's: the researcher's models it asks (their directory → loaded model); empty: the zoo's
    ledger_models: dict[str, HookedModel] = field(default_factory=dict)
    #: zoo models loaded for this report, shared by its groups (each loaded and fingerprinted once)
    loaded: dict[str, HookedModel] = field(default_factory=dict)

    def zoo_model(self, name: str) -> HookedModel:
        """The zoo model ``name``, loaded once per report."""
        if name not in self.loaded:
            self.loaded[name] = zoo.load(name)
        return self.loaded[name]

    @property
    def task(self) -> Any:
        return self.family.single(0)

    @property
    def tokens(self) -> bool:
        """A token model (regression models read vectors)."""
        return self.model is not None and self.model.d_input is None

    @property
    def analysis_layer(self) -> int:
        """The layer of the learned vector the report's analyses follow (its OV image, key heads and dynamics):
        layer 1, early enough for the vector to cross most blocks (layer 0 on a model of two layers or fewer)."""
        return 1 if self.model.n_layers > 2 else 0

    @property
    def ltv(self) -> Any:
        """The learned vector at :attr:`analysis_layer` (from the ``compare`` stage)."""
        return self.results["compare"].vectors[("learned", self.analysis_layer)]

    def key(self, **params: Any) -> dict[str, Any]:
        """A stage's cache parameters: the group, the settings every stage shares, and its own."""
        return {"name": self.group, "n": self.config.n_prompts, "seed": self.config.seed, **params}


#: The report's parts, in order: the claims ledger, one group per model, the cross-model studies.
SCOPES = ("ledger", "model", "studies")


@dataclass(frozen=True)
class Stage:
    """One step of the report: a result computed (or read from the cache) and the figures drawn from it.

    Attributes:
        name: the cache entry's stage name and the results key later stages read.
        label: what the progress bar shows.
        applies: whether the stage runs for a group.
        params: the parameters its cache entry is keyed by (with the model's fingerprint and tvlens' version).
        compute: the result; ``None`` for a stage that only draws from earlier results.
        expect: the type a cached result must have.
        draw: the sections (figures with their explanations).
        summary: its entries in the summary table.
        owner: the model whose fingerprint keys the cache entry (default: the group's model).
        weight: its share of the progress bar (its cost, roughly).
        scope: ``"ledger"`` (runs once, first: the claims ledger), ``"model"`` (runs for every model it
            applies to) or ``"studies"`` (runs once, across models, last).
        needs: the earlier stages (of the same scope) whose results it reads from :attr:`Run.results`.
    """

    name: str
    label: str
    applies: Callable[[Run], bool]
    draw: Callable[[Run, Any], list[Section]]
    params: Callable[[Run], dict[str, Any]] = lambda run: run.key()
    compute: Callable[[Run], Any] | None = None
    expect: type = object
    summary: Callable[[Run, Any], dict[str, Any]] = lambda run, result: {}
    owner: Callable[[Run], HookedModel | None] = lambda run: run.model
    weight: int = 1
    scope: str = "model"
    needs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"Stage.scope={self.scope!r}: expected one of {SCOPES}")

    def run(self, run: Run, cache: StageCache) -> Any:
        missing = [name for name in self.needs if name not in run.results]
        if missing:
            raise RuntimeError(f"stage {self.name!r} of {run.group!r} needs {missing}, which did not run before it")
        if self.compute is None:
            return None
        return cache.get(self.name, self.params(run), self.owner(run), lambda: self.compute(run), expect=self.expect)


def _tokens(run: Run) -> bool:
    return run.tokens


def _vectors(run: Run) -> bool:
    return not run.tokens


def _compare_summary(run: Run, comparison: Comparison) -> dict[str, Any]:
    ref = {r["method"]: r[comparison.metric] for r in comparison.records if r["layer"] is None}
    methods = dict.fromkeys(r["method"] for r in comparison.records if r["method"] in METHODS)
    return {"ICL": ref["icl"], "zero-shot": ref["zero_shot"],
            **{_best_label(m): comparison.best(m)[comparison.metric] for m in methods}}


def _best_label(method: str) -> str:
    """A method's registered label, with "(best layer)" for a method made at one layer."""
    return METHODS[method].label + (" (best layer)" if METHODS[method].per_layer else "")


def _attention_sections(run: Run, _: Any) -> list[Section]:
    heads = run.results["heads"]
    top_layer, top_head = heads.key_heads[0]
    prompt = Splits(run.config.seed).sample(run.task, "aside", 1, 4)
    name_pattern = run.model.hook_name(top_layer, "attn.hook_pattern")
    with torch.no_grad():
        cache_act = run.model.activations(prompt.inputs, [name_pattern])
    vocab = _token_names(run.task, run.model.d_vocab)
    return [Section("Attention of the top key head",
                    attention_figure(cache_act[name_pattern][0, top_head], [vocab[int(t)] for t in prompt.inputs[0]],
                                     f"{run.group}: attention of L{top_layer}H{top_head} on a 4-shot prompt"),
                    "Where the top key head looks on an ordinary ICL prompt (no vector).")]


def _ov_sections(run: Run, ov: OVResult) -> list[Section]:
    name, layer = run.group, run.analysis_layer
    return [
        Section("OV transport of θ per head", head_heatmap(ov.contribution_norm, f"{name}: ‖A·θ̂ W_V W_O‖ per head "
                                                           f"(θ = LTV at layer {layer})", "norm"),
                "The part of each later head's output at the query that comes from θ through its value path: the "
                "attention weight on θ's position times θ (LayerNorm folded in) carried by the head's OV circuit. "
                "Heads before θ's layer never read it (blank)."),
        Section("Direct logit effect per head", head_heatmap(ov.logit_effect, f"{name}: direct effect of each head's "
                                                             "θ-term on the answer logit", "logit margin",
                                                             diverging=True),
                "That θ-term read through ln_final and the unembedding: the target label's logit minus the mean label "
                "logit. Positive heads push the answer directly."),
        Section("Re-injection of the OV and MLP paths", reinjection_figure(ov),
                "Yang et al. 2025a's test: θ_OV = Σ θ W_V W_O over every later head, injected in place of θ. Beside "
                "it, what the later blocks actually wrote at the query (injected minus clean run), put back where "
                "it was written: the attention terms and the MLP terms, averaged over prompts (θ_MLP) or each "
                "prompt's own. Yang et al. 2025a recover 52 % of 83 %. The θ_OV share is (θ_OV − zero-shot) / "
                f"(θ − zero-shot); here {ov.ov_share:.0%}"
                + (": negative, because θ_OV alone does worse than the zero-shot query — the OV path by itself does "
                   "not carry the task, it moves the stream away from the answer." if ov.ov_share < 0 else ".")),
        Section("Attention path vs MLP path", paths_figure(ov),
                "The change θ causes in the final stream at the query is exactly θ itself (at the query) plus the "
                "later attention outputs' changes plus the later MLP outputs' changes. Read through ln_final (its "
                "scale frozen) and the unembedding, each part's effect on the answer margin, per prompt; the "
                "legend gives each path's share of the mean effect."),
    ]


def _heads_sections(run: Run, heads: KeyHeadResult) -> list[Section]:
    name = run.group
    return [
        Section("Saliency", head_heatmap(heads.saliency, f"{name}: saliency |a·∂log p/∂a| (key heads boxed)",
                                         "saliency", marked=heads.key_heads),
                "Yang et al. 2025a's first-order saliency of each head's output at the query, from one backward "
                "pass, averaged "
                "over prompts. The boxed heads are the top 10 %: the key heads."),
        Section("Exact ablation", head_heatmap(heads.scans["zero"].delta, f"{name}: Δ log p(answer) when one head is "
                                               "zero-ablated", "Δ log p", diverging=True, marked=heads.key_heads),
                f"The exact effect of zero-ablating each head alone at the query (heads run as batch rows on the "
                f"cached path). Spearman correlation with the saliency: {heads.saliency_agreement:.2f}."),
        Section("Key heads vs random heads", key_vs_random_figure(heads),
                "Ablating the key heads against ablating as many random heads (20 draws; dots are the draws, "
                "hover for their heads). Yang et al. 2025a: 83 → 51 % for key heads vs 78 % for random heads."),
        Section("Key heads per layer", layer_histogram_figure(heads),
                "Where the key heads sit (Yang et al. 2025a find a U-shape on large models)."),
    ]


def _dynamics_sections(run: Run, dynamics: DynamicsResult) -> list[Section]:
    tokens = _token_names(run.task, run.model.d_vocab)
    return [
        Section("Linear dynamics", dynamics_figure(dynamics),
                "Per prompt, a ridge-fitted linear map carries small changes of θ from one layer to the next and "
                "to the final stream; its polar split W = QΣ gives a rotation Q and a scaling Σ. Shown: held-out "
                "fit, cos(θ, Qθ), Σ's spectrum, and the share of θ and Qθ in the span of the label unembeddings."),
        Section("Logit lens", logit_lens_figure(dynamics, tokens), "Top tokens of θ and of its rotation Qθ read "
                "through ln_final and the unembedding, per map."),
    ]


def _profile_sections(run: Run, profile: LayerProfile) -> list[Section]:
    explanation = ("The zero-shot query with its stream at one layer replaced by its own ICL prompt's state there "
                   "(Yang et al. 2025b's task-vector prompting): where the task fits in one vector." if run.tokens
                   else "The query with its stream replaced by its own prompt's state at one layer (lower is better).")
    return [Section("TVP mode by layer", profile_figure(profile, f"{run.group}: TVP mode by layer"), explanation)]


def _fidelity_shifts(run: Run) -> list[str]:
    return ["none", "skewed"] if run.config.quick else ["none", "skewed", "noisy", "orthogonal"]


def _fidelity_sections(run: Run, table: StudyTable) -> list[Section]:
    shifts = _fidelity_shifts(run)
    return [Section("Regression fidelity", regression_figure(table),
                    "Squared error / D of the query by number of demonstrations: ICL, zero-shot, and each vector read "
                    "from the same prompt and injected into the query alone (Saglam et al. 2025's benchmark). The "
                    "head-weighted "
                    "LTV weights every head's output of the prompt with weights learned once."
                    + (" The orthogonal panel is short on purpose: a query orthogonal to every demonstration exists "
                       "only with fewer demonstrations than input dimensions." if "orthogonal" in shifts else ""))]


def _fidelity_summary(run: Run, table: StudyTable) -> dict[str, Any]:
    row = {r["method"]: r["mse_per_dim"] for r in table.select(shift="none", n_shots=table.settings["train_shots"])}
    return {"ICL": row["icl"], "zero-shot": row["zero_shot"],
            **{_best_label(m): value for m, value in row.items() if m in METHODS}}


_MODEL_STAGES: tuple[Stage, ...] = (
    Stage("compare", "methods by layer", _tokens, weight=1, expect=Comparison,
          params=lambda run: run.key(ltv=asdict(LTV_CONFIG)),
          compute=lambda run: compare(run.model, run.task, ["vanilla", "function", "learned"], seed=run.config.seed,
                                      n_test=run.config.n_prompts, n_shots=run.shots, progress=False,
                                      learn_config=LTV_CONFIG),
          draw=lambda run, c: [Section(
              "Task vectors by layer",
              method_layers_figure(c.records, f"{run.group}: task vectors by layer (task 0, zero-shot queries)"),
              "Accuracy of the zero-shot query with each method's vector added at one layer (last "
              "position), on the same test prompts; ICL and zero-shot as reference lines. Bands: ±1 "
              "standard error. The learned vector is trained by gradient descent against the frozen "
              "model (Yang et al. 2025a); the vanilla vector is the mean ICL state minus the mean "
              "zero-shot state; the "
              "function vector sums the mean outputs of the heads with the largest causal effect.")],
          summary=_compare_summary),
    Stage("aie", "function-vector heads", _tokens, expect=FunctionVectorResult,
          compute=lambda run: function_vector(run.model, run.task, 0,
                                              top_k=default_top_k(run.model),
                                              n_shots=run.shots, seed=run.config.seed, progress=False)[1],
          draw=lambda run, fv: [Section(
              "Average indirect effect per head",
              head_heatmap(fv.aie, f"{run.group}: average indirect effect of each head (function-vector heads boxed)",
                           "AIE", marked=fv.top_heads),
              "Todd et al.'s causal score: the gain in the answer's probability when one head's mean output over "
              "clean prompts is patched into prompts whose labels were shuffled. The boxed heads make the function "
              "vector.")]),
    Stage("ov", "OV decomposition", _tokens, expect=OVResult, needs=("compare",),
          params=lambda run: run.key(layer=run.analysis_layer, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: ov_decomposition(run.model, run.task, run.ltv, n_prompts=run.config.n_prompts,
                                               seed=run.config.seed),
          # no share where the vector gains nothing over zero-shot (it is 0/0 there)
          draw=_ov_sections, summary=lambda run, ov: {"θ_OV share": ov.ov_share if math.isfinite(ov.ov_share)
                                                      else "n/a (no gain)"}),
    Stage("heads", "key heads", _tokens, expect=KeyHeadResult, needs=("compare",),
          params=lambda run: run.key(layer=run.analysis_layer, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: key_head_analysis(run.model, run.task, run.ltv, n_prompts=run.config.n_prompts,
                                                seed=run.config.seed),
          draw=_heads_sections,
          summary=lambda run, heads: {"key heads ablated": heads.summary()["key_ablated"],
                                      "random heads ablated": heads.summary()["random_ablated"]}),
    Stage("attention", "attention of the top key head", _tokens, draw=_attention_sections, weight=0,
          needs=("heads",)),
    Stage("dynamics", "linear dynamics", _tokens, expect=DynamicsResult, needs=("compare",),
          params=lambda run: run.key(layer=run.analysis_layer, quick=run.config.quick, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: linear_dynamics(run.model, run.task, run.ltv, n_prompts=8 if run.config.quick else 32,
                                              n_shots=run.shots,
                                              seed=run.config.seed, progress=run.progress),
          draw=_dynamics_sections,
          summary=lambda run, dynamics: {"dynamics R² (direct)": float(dynamics.direct.r2.mean())}),
    Stage("injection-layers", "maps by injection layer", _tokens, expect=InjectionLayerMaps, needs=("compare",),
          params=lambda run: run.key(quick=run.config.quick, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: injection_layer_maps(
              run.model, run.task, vectors={k: run.results["compare"].vectors[("learned", k)]
                                            for k in range(run.model.n_layers)},
              n_prompts=4 if run.config.quick else 8, n_shots=run.shots,
              seed=run.config.seed, progress=False),
          draw=lambda run, maps: [Section(
              "Rotation vs scaling by injection layer", injection_layers_figure(maps, f"{run.group}: direct maps of "
                                                                                   "the vector learned at each layer"),
              "Yang et al. 2025a's contrast: the learned vector of each layer, its direct map to the final stream "
              "(one per prompt) split into a rotation Q and a scaling Σ. Early injections are rotated more (lower "
              "cos(θ, Qθ), larger principal angles), late ones mostly scaled. The label share of Qθ is drawn with a "
              "random vector's share (the baseline: about labels / d_model); the answer-margin gain is how much "
              "the rotation raises the true answer's logit-lens margin.")],
          summary=lambda run, maps: {"cos(θ, Qθ) late − early": maps.trend("cos_rotation")}),
    Stage("fidelity", "regression fidelity", _vectors, expect=StudyTable,
          params=lambda run: run.key(shifts=_fidelity_shifts(run)),
          compute=lambda run: regression_fidelity(run.group, shifts=_fidelity_shifts(run),
                                                  n_prompts=run.config.n_prompts, seed=run.config.seed,
                                                  progress=False),
          draw=_fidelity_sections, summary=_fidelity_summary),
    Stage("profile", "formation", lambda run: True, expect=LayerProfile,
          compute=lambda run: tvp_by_layer(run.model, run.family, n_prompts=run.config.n_prompts, n_shots=run.shots,
                                           seed=run.config.seed, label=run.group),
          draw=_profile_sections, summary=lambda run, profile: {"TVP best layer": profile.best_layer}),
    Stage("history", "formation over training", lambda run: run.history is not None, weight=0,
          draw=lambda run, _: [Section("Formation over training", formation_heatmap(run.history),
                                       "The same TVP-mode accuracy at every evaluation during training (from the "
                                       "training history shipped with the model).")]),
)


def _tvp_loss_sections(run: Run, tvp: TVPLossComparison) -> list[Section]:
    return [Section("TVP-loss", profile_figure(tvp.profiles, "perm-mix vs perm-mix-tvp: TVP mode by layer",
                                               mark_layer=tvp.tvp_layer),
                    f"Yang et al. 2025b's TVP-loss trains the model so that its own ICL state at layer {tvp.tvp_layer} "
                    "(marked) works as a task vector. Readings: the prompt's own state (the paper's TVP mode and the "
                    "loss's objective, where a late state may hold the query's answer); the same demonstrations asking "
                    "about another input, or about two inputs neither demonstrated nor the query with their states "
                    "averaged (Hendel et al.'s dummy queries: both below zero-shot when the state holds those queries' "
                    "answers); and the state at the end of the demonstrations, which cannot see the query. The claims "
                    "ledger compares step-matched pairs of models, on perm-mix, token-offset and linear regression.")]


def _depth_sections(run: Run, depth: ComplexityResult) -> list[Section]:
    formed = ", ".join(f"{label}: {'never' if layer is None else f'layer {layer}'}"
                       for label, layer in depth.formation_layers.items())
    return [Section("Depth vs task complexity", profile_figure(depth.profiles, "Mixtures of 2, 8 and 32 permutations: "
                                                                               "TVP mode by layer"),
                    "Same-shaped models on tasks of rising complexity, TVP mode read as the paper reads it (each "
                    "prompt's own state, which at late layers can hold the query's answer). Where the vector forms "
                    f"(half of ICL's gain): {formed}.")]


#: The claims a ``--quick`` preview's ledger measures: the cheap ones (its intervals are too wide for verdicts).
QUICK_CLAIMS = ("ltv_beats_vanilla", "vanilla_beats_zero_shot", "key_heads", "theta_ov")


def _ledger_config(run: Run) -> LedgerConfig:
    if run.config.quick and run.ledger_models:  # a preview on your models: one seed, short learning; the claims
        # they cannot answer stay in (rows that say why cost nothing)
        unanswerable = tuple(name for name, c in CLAIMS.items() if c.needs != "labels")
        return LedgerConfig(seeds=(run.config.seed,), n_prompts=run.config.n_prompts, epochs=5,
                            claims=QUICK_CLAIMS + unanswerable)
    if run.config.quick:  # a preview: two tasks of each family's first trained model, one seed
        return LedgerConfig(n_tasks=2, seeds=(run.config.seed,), n_prompts=run.config.n_prompts, epochs=5,
                            claims=QUICK_CLAIMS, family_models=1)
    return LedgerConfig(seeds=(run.config.seed,), n_prompts=run.config.n_prompts)


def _ledger_weights(run: Run) -> dict[str, str]:
    """The weights of every model the ledger reads (its cache entry is stale when any of them changes)."""
    if run.ledger_models:
        return {name: model.fingerprint()["weights_sha256"] for name, model in run.ledger_models.items()}
    names = sorted(zoo_models_read(_ledger_config(run)))  # a --quick preview: each family's first model only
    # the zoo's files, hashed without loading them (the ledger's workers load the models themselves)
    return {name: "file:" + hashlib.sha256(zoo.weights_path(name).read_bytes()).hexdigest() for name in names}


def _ledger_rules() -> dict[str, Any]:
    """What decides the ledger's verdicts besides its numbers (a cached ledger made under other rules is stale):
    each claim's gate and margin, the gates' thresholds, the fewest distinct answers a task needs."""
    return {"gates": {c.name: c.gate for c in CLAIMS.values()}, "margins": {c.name: c.margin for c in CLAIMS.values()},
            "thresholds": {g.name: g.threshold for g in GATES.values()}, "min_distinct_answers": MIN_DISTINCT_ANSWERS}


def _ledger(run: Run) -> ClaimsLedger:
    """The zoo's ledger (its models spread over :attr:`ReportConfig.ledger_workers` processes), or with Hugging Face
    models in the report the ledger on them (on :data:`HF_TASKS`, in this process: they are loaded here)."""
    if not run.ledger_models:
        with process_pool(run.config.ledger_workers) as executor:
            return claims_ledger(_ledger_config(run), progress=run.progress, executor=executor)
    models = [subject(model, HF_TASKS, name=name) for name, model in run.ledger_models.items()]
    return claims_ledger(_ledger_config(run), progress=run.progress, models=models)


def _ledger_sections(run: Run, ledger: ClaimsLedger) -> list[Section]:
    counts = {v: sum(r.verdict == v for r in ledger.rows) for v in ("holds", "inconclusive", "does not hold",
                                                                    NO_EFFECT, NOT_TESTABLE)}
    c = ledger.config
    if run.ledger_models:
        reasons: dict[str, list[str]] = {}
        for r in ledger.rows:
            if r.verdict == NOT_APPLICABLE and r.claim not in reasons.get(r.reason, []):
                reasons.setdefault(r.reason, []).append(r.claim)
        skipped = "; ".join(f"{', '.join(names)}: {why}" for why, names in reasons.items())
        where = (f"on your models ({', '.join(run.ledger_models)}): the word-pair tasks {', '.join(HF_TASKS)} × "
                 f"{len(c.seeds)} seeds, {c.n_prompts} prompts of held-out word pairs each")
        table = (f"Not applicable here (not drawn): {skipped or 'none'}. `tvlens claims --model DIR --tasks "
                 f"{','.join(HF_TASKS)}` prints the table.")
    else:
        trained = ("its independently trained models of one recipe" if c.family_models is None else
                   "its first trained model" if c.family_models == 1 else
                   f"the first {c.family_models} of its trained models")
        where = (f"on the zoo where they apply: each family on {trained}, {c.n_tasks} tasks each × "
                 f"{len(c.seeds)} seed(s), {c.n_prompts} held-out test prompts each")
        table = "docs/studies.md has the table."
    title = "Paper claims on your models" if run.ledger_models else "Paper claims on the zoo"
    return [Section("Claims ledger", ledger_figure(ledger, title),
                    f"The paper claims tvlens tests, {where}. The effect is positive when the "
                    "claim holds; the bar is its unadjusted 95 % interval, over the model means where a row reads "
                    "several trained models (tasks nested in models), else over one model's tasks (seeds averaged "
                    "within a task), the hollow circle its control (e.g. a random vector of the same norm), the "
                    "black tick what the claim needs. Verdicts read Holm-adjusted p-values: over the papers' "
                    "primary hypotheses (one per paper, declared in the code), and within each exploratory claim "
                    "across models. Verdict: "
                    "holds (the test rejects above the tick and the control does not clear it), does not hold "
                    "(rejects below), no effect (within ±δ of zero by two one-sided tests), inconclusive (neither "
                    "rejects, fewer than 3 tasks or models, zero width, or the control shows it too; hover for the "
                    "reason), "
                    f"{NOT_TESTABLE} (grey: {NOT_TESTABLE_MEANS}). "
                    "Training claims are measured on "
                    "independently trained pairs of models, their interval over the pairs. Here: "
                    f"{counts['holds']} hold, {counts['inconclusive']} inconclusive, {counts['does not hold']} do not "
                    f"hold, {counts[NO_EFFECT]} no effect, {counts[NOT_TESTABLE]} not testable here. {table}")]


_LEDGER_STAGES: tuple[Stage, ...] = (
    Stage("ledger", "claims ledger", lambda run: True, scope="ledger", expect=ClaimsLedger, weight=8,
          params=lambda run: {**_ledger_config(run).to_dict(), "weights": _ledger_weights(run),
                              "tasks": list(HF_TASKS) if run.ledger_models else None, "rules": _ledger_rules()},
          owner=lambda run: None,
          compute=_ledger,
          draw=_ledger_sections,
          summary=lambda run, ledger: {}),
)


def _table_models(run: Run) -> list[str]:
    return ["perm-mix"] if run.config.quick else ["perm-mix", "token-offset"]


_STUDY_STAGES: tuple[Stage, ...] = (
    Stage("tvp-loss", "TVP-loss", lambda run: True, scope="studies", expect=TVPLossComparison,
          params=lambda run: {"n": run.config.n_prompts, "seed": run.config.seed},
          owner=lambda run: run.zoo_model("perm-mix-tvp"),
          compute=lambda run: tvp_loss_comparison(n_prompts=run.config.n_prompts, seed=run.config.seed),
          draw=_tvp_loss_sections),
    Stage("depth", "depth vs complexity", lambda run: True, scope="studies", expect=ComplexityResult,
          params=lambda run: {"n": run.config.n_prompts, "seed": run.config.seed},
          owner=lambda run: run.zoo_model("perm-mix-32"),
          compute=lambda run: depth_vs_complexity(n_prompts=run.config.n_prompts, seed=run.config.seed),
          draw=_depth_sections),
    Stage("method-table", "Yang et al. 2025a table", lambda run: True, scope="studies", expect=StudyTable,
          params=lambda run: {"n": run.config.n_prompts, "seed": run.config.seed, "models": _table_models(run)},
          owner=lambda run: run.zoo_model("perm-mix"),
          compute=lambda run: method_table(_table_models(run), n_test=run.config.n_prompts, seed=run.config.seed,
                                           progress=run.progress),
          draw=lambda run, table: [Section(
              "Learned vs extracted vectors (Yang et al. 2025a)", method_table_figure(table),
              "The learned vector against the vanilla TV and the FV at the last position, at an early "
              "position (the query token, where extracted vectors collapse to zero-shot) and added to "
              "a 2-shot prompt.")]),
)

#: Every stage of the report, in order: adding a figure touches this list only.
STAGES: tuple[Stage, ...] = (*_LEDGER_STAGES, *_MODEL_STAGES, *_STUDY_STAGES)


def check_stages(stages: Sequence[Stage]) -> None:
    """Refuse a stage list with a repeated name or a need that is not an earlier stage of the same scope."""
    seen: dict[str, Stage] = {}
    for stage in stages:
        if stage.name in seen:
            raise ValueError(f"stages: {stage.name!r} twice; expected unique stage names (they key the cache)")
        for need in stage.needs:
            if need not in seen or seen[need].scope != stage.scope:
                raise ValueError(f"stage {stage.name!r} needs {need!r}; expected an earlier stage of scope "
                                 f"{stage.scope!r}")
        seen[stage.name] = stage


check_stages(STAGES)


def model_run(name: str, config: ReportConfig, loaded: dict[str, HookedModel] | None = None) -> Run:
    """The group of one model: a Hugging Face directory on :data:`HF_TASKS`, or a zoo model on its family (loaded
    into ``loaded``, the report's shared zoo models)."""
    loaded = {} if loaded is None else loaded
    source = subject(name, HF_TASKS if is_hf_dir(name) else None, argument="--models")
    run = Run(name, config, loaded=loaded)
    run.model = run.zoo_model(name) if source.kind == "zoo" else source.load()
    run.family = source.family(run.model)
    if run.tokens:  # the prompts' demonstrations: the one rule (a zoo model's training prompts, word pairs' 5)
        run.shots = source.n_shots(run.family, None)
    if run.tokens and source.kind == "zoo":
        run.history = formation_over_training(name)
    return run


def run_stages(run: Run, stages: Sequence[Stage], cache: StageCache, bar: tqdm) -> tuple[list[Section], dict[str, Any]]:
    sections: list[Section] = []
    summary: dict[str, Any] = {"model": run.group}
    for stage in stages:
        if not stage.applies(run):
            continue
        bar.set_description(f"{run.group}: {stage.label}")
        result = run.results[stage.name] = stage.run(run, cache)
        sections += stage.draw(run, result)
        summary.update(stage.summary(run, result))
        bar.update(stage.weight)
    return sections, summary


__all__ = ["LTV_CONFIG", "SCOPES", "STAGES", "Run", "Section", "Stage", "model_run", "run_stages"]
