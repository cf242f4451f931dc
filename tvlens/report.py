"""``tvlens report``: the whole pipeline on zoo models, written as one self-contained HTML file.

It opens with the claims ledger: the papers' testable claims measured over tasks × seeds beside their
controls, with a Holm-adjusted interval and
verdict. Then, for every token model: task vectors by layer (vanilla, function, learned), the OV
decomposition of a learned vector, its attention and MLP paths and Yang et al. 2025a's re-injection
test, saliency and exact ablation of every head with key heads vs random heads, the attention
pattern of the top key head, linear dynamics with the logit lens, rotation vs scaling of vectors
injected at each layer, and where the vector forms (by layer and over training). Across models: the
TVP-loss comparison, depth vs complexity, and — for regression models — fidelity by prompt length.
Each figure has a short explanation under it; a summary table is on top.

The report is one list of declared stages, :data:`STAGES` (each runs per model or once across
models): each names its cache key, progress weight, computation, figures and summary entries, so
adding a figure touches that list only; the progress total and the summary table come from it.

The file embeds plotly.js once and works offline. Every stage's result is cached on disk, keyed by
the model's fingerprint, the stage, its parameters and the tvlens version, so a second run only
redraws. The HTML records JavaScript errors in ``#tvlens-js-errors`` (the browser test reads it).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import torch
from plotly.offline import get_plotlyjs
from tqdm.auto import tqdm

from tvlens import zoo
from tvlens._config import Config
from tvlens._io import atomic_write, atomic_write_text, first_line, safe_torch_load
from tvlens._version import __version__
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
from tvlens.studies.subjects import subject
from tvlens.studies.table import StudyTable
from tvlens.studies.verdicts import NOT_APPLICABLE
from tvlens.tasks.splits import Splits
from tvlens.vectors import LearnConfig, compare, function_vector
from tvlens.vectors.compare import Comparison
from tvlens.vectors.function import FunctionVectorResult, default_top_k

DEFAULT_MODELS = ("perm-mix", "token-offset", "linear-regression-long")
#: The learned vectors of the report: the settings of the science tests (Yang et al. 2025a on the zoo).
LTV_CONFIG = LearnConfig()  # trained until the dev loss stops improving


@dataclass
class ReportConfig(Config):
    """What ``tvlens report`` runs.

    Attributes:
        models: zoo model names (token and regression models), or directories of Hugging Face causal
            LMs (``save_pretrained``), reported on :data:`HF_TASKS` word-pair tasks.
        quick: fewer prompts and copies (for tests and previews).
        seed: seed of every stage's prompts.
        cache_dir: where stage results are cached (``None``: no cache).
        studies: also run the claims ledger (first) and the cross-model studies (TVP-loss, depth vs complexity,
            the Yang et al. 2025a table).
    """

    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    quick: bool = False
    seed: int = 0
    cache_dir: str | None = None
    studies: bool = True

    def __post_init__(self) -> None:
        for name in self.models:
            if not _is_hf_dir(name):
                zoo.spec(name)  # a clear KeyError for an unknown name before any work

    @property
    def n_prompts(self) -> int:
        return 64 if self.quick else 200


@dataclass
class Section:
    """One figure with its heading and explanation."""

    title: str
    figure: go.Figure
    explanation: str


@dataclass
class Report:
    """The sections of a report and its summary rows."""

    config: ReportConfig
    sections: list[tuple[str, list[Section]]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    cache_hits: int = 0


class CacheWarning(UserWarning):
    """A cached stage result could not be used (unreadable, damaged, or made for other inputs)."""


def cacheable_types() -> list[type]:
    """The allow-list of classes a cache entry may hold: tvlens' own plain-data result classes (the
    dataclasses of every loaded ``tvlens`` module). Nothing else in an entry is ever constructed or called
    (see :func:`tvlens._io.safe_torch_load`)."""
    import dataclasses
    import sys

    types = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "tvlens" or name.startswith("tvlens.")):
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == name and dataclasses.is_dataclass(obj):
                types.append(obj)
    return types


class _Cache:
    """Stage results on disk, keyed by content: (stage, parameters, model fingerprint, tvlens version).

    Each file stores its full key next to the value and is read with ``weights_only=True`` and the
    allow-list :func:`cacheable_types`: a planted file that would run code is refused, never executed. A
    file that cannot be read, holds another key (another model's result under the same name) or a value
    of the wrong type is not trusted: the stage is recomputed with a one-line :class:`CacheWarning` naming
    the file, and the file replaced. Something that is not a regular file under an entry's name (a
    directory) is moved aside with a warning; if it cannot be, the result is used without being cached.
    """

    def __init__(self, directory: str | None) -> None:
        self.directory = Path(directory) if directory else None
        if self.directory is not None and self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"cache_dir={directory!r}: is a file; expected a directory")
        self.hits = 0
        # A fingerprint hashes every weight: once per model, not once per stage. The model is kept with
        # its fingerprint so that its id cannot be reused by another model while the cache lives.
        self._fingerprints: dict[int, tuple[HookedModel, dict[str, Any]]] = {}

    def _fingerprint(self, model: HookedModel) -> dict[str, Any]:
        if id(model) not in self._fingerprints:
            self._fingerprints[id(model)] = (model, model.fingerprint())
        return self._fingerprints[id(model)][1]

    @staticmethod
    def _read(path: Path, key: str, expect: type) -> Any:
        """The cached value, or ``None`` (with a warning naming the file) when it cannot be trusted."""
        try:
            entry = safe_torch_load(path, cacheable_types())
        except Exception as error:  # truncated, empty, random bytes, a planted pickle: all recomputed
            reason = f"unreadable: {first_line(error, 120)}"
        else:
            if not isinstance(entry, dict) or set(entry) != {"key", "value"}:
                reason = "not a tvlens cache entry"
            elif entry["key"] != key:
                reason = "made for another model, setting or tvlens version"
            elif not isinstance(entry["value"], expect):
                reason = f"holds a {type(entry['value']).__name__}, expected a {expect.__name__}"
            else:
                return entry["value"]
        warnings.warn(f"ignoring the cache file {str(path)!r} ({reason}); recomputing it", CacheWarning, stacklevel=4)
        return None

    @staticmethod
    def _move_aside(path: Path) -> bool:
        """Rename a non-file under an entry's name out of the way; whether the name is free now."""
        aside = path.with_name(f"{path.name}.not-a-cache-entry-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            path.rename(aside)
        except OSError as error:
            warnings.warn(f"the cache entry {str(path)!r} is not a regular file and cannot be moved aside "
                          f"({error.strerror or error}); the stage is not cached", CacheWarning, stacklevel=4)
            return False
        warnings.warn(f"the cache entry {str(path)!r} is not a regular file; moved it to {str(aside)!r}",
                      CacheWarning, stacklevel=4)
        return True

    def get(self, stage: str, params: dict[str, Any], model: HookedModel | None, compute: Callable[[], Any],
            expect: type = object) -> Any:
        """``compute()``, or its cached value for the same key (checked to be a ``expect``)."""
        if self.directory is None:
            return compute()
        key = json.dumps({"stage": stage, "params": params, "version": __version__,
                          "model": None if model is None else self._fingerprint(model)}, sort_keys=True, default=str)
        path = self.directory / f"{stage}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
        writable = True
        if path.is_symlink() or (path.exists() and not path.is_file()):
            writable = self._move_aside(path)
        elif path.exists():
            value = self._read(path, key, expect)
            if value is not None:
                self.hits += 1
                return value
        value = compute()
        if writable:
            buffer = io.BytesIO()
            torch.save({"key": key, "value": value}, buffer)
            try:
                atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()), "cache entry")
            except (OSError, ValueError) as error:  # a full disk loses the cache entry, not the report
                warnings.warn(f"could not cache the stage {stage!r} ({first_line(error, 200)})", CacheWarning,
                              stacklevel=3)
        return value


#: The word-pair tasks a Hugging Face model is reported on (task 0 is the one vectors are made for).
HF_TASKS = ("antonyms", "country_capital", "english_french", "present_past")


def _is_hf_dir(name: str) -> bool:
    return (Path(name) / "config.json").is_file()


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

    @property
    def task(self) -> Any:
        return self.family.single(0)

    @property
    def tokens(self) -> bool:
        """A token model (regression models read vectors)."""
        return self.model is not None and self.model.d_input is None

    @property
    def layer(self) -> int:
        """The layer of the learned vector the analyses follow."""
        return 1 if self.model.n_layers > 2 else 0

    @property
    def ltv(self) -> Any:
        return self.results["compare"].vectors[("learned", self.layer)]

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

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"Stage.scope={self.scope!r}: expected one of {SCOPES}")

    def run(self, run: Run, cache: _Cache) -> Any:
        if self.compute is None:
            return None
        return cache.get(self.name, self.params(run), self.owner(run), lambda: self.compute(run), expect=self.expect)


def _tokens(run: Run) -> bool:
    return run.tokens


def _vectors(run: Run) -> bool:
    return not run.tokens


def _compare_summary(run: Run, comparison: Comparison) -> dict[str, Any]:
    ref = {r["method"]: r[comparison.metric] for r in comparison.records if r["layer"] is None}
    best = {m: comparison.best(m)[comparison.metric] for m in ("vanilla", "function", "learned")}
    return {"ICL": ref["icl"], "zero-shot": ref["zero_shot"], "vanilla TV (best layer)": best["vanilla"],
            "function vector (best layer)": best["function"], "learned TV (best layer)": best["learned"]}


def _attention_sections(run: Run, _: Any) -> list[Section]:
    heads = run.results["heads"]
    top_layer, top_head = heads.key_heads[0]
    prompt = Splits(run.config.seed).sample(run.task, "aside", 1, 4)
    name_pattern = run.model.hook_name(top_layer, "attn.hook_pattern")
    with torch.no_grad():
        _, cache_act = run.model.run_with_cache(prompt.inputs, [name_pattern])
    vocab = _token_names(run.task, run.model.d_vocab)
    return [Section("Attention of the top key head",
                    attention_figure(cache_act[name_pattern][0, top_head], [vocab[int(t)] for t in prompt.inputs[0]],
                                     f"{run.group}: attention of L{top_layer}H{top_head} on a 4-shot prompt"),
                    "Where the top key head looks on an ordinary ICL prompt (no vector).")]


def _ov_sections(run: Run, ov: OVResult) -> list[Section]:
    name, layer = run.group, run.layer
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
    return {"ICL": row["icl"], "zero-shot": row["zero_shot"], "vanilla TV (best layer)": row["vanilla"],
            "function vector (best layer)": row["function"], "learned TV (best layer)": row["learned"],
            "head-weighted LTV": row["head_weighted"]}


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
                                              n_shots=run.shots, seed=run.config.seed)[1],
          draw=lambda run, fv: [Section(
              "Average indirect effect per head",
              head_heatmap(fv.aie, f"{run.group}: average indirect effect of each head (function-vector heads boxed)",
                           "AIE", marked=fv.top_heads),
              "Todd et al.'s causal score: the gain in the answer's probability when one head's mean output over "
              "clean prompts is patched into prompts whose labels were shuffled. The boxed heads make the function "
              "vector.")]),
    Stage("ov", "OV decomposition", _tokens, expect=OVResult,
          params=lambda run: run.key(layer=run.layer, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: ov_decomposition(run.model, run.task, run.ltv, n_prompts=run.config.n_prompts,
                                               seed=run.config.seed),
          # no share where the vector gains nothing over zero-shot (it is 0/0 there)
          draw=_ov_sections, summary=lambda run, ov: {"θ_OV share": ov.ov_share if math.isfinite(ov.ov_share)
                                                      else "n/a (no gain)"}),
    Stage("heads", "key heads", _tokens, expect=KeyHeadResult,
          params=lambda run: run.key(layer=run.layer, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: key_head_analysis(run.model, run.task, run.ltv, n_prompts=run.config.n_prompts,
                                                seed=run.config.seed),
          draw=_heads_sections,
          summary=lambda run, heads: {"key heads ablated": heads.summary()["key_ablated"],
                                      "random heads ablated": heads.summary()["random_ablated"]}),
    Stage("attention", "attention of the top key head", _tokens, draw=_attention_sections, weight=0),
    Stage("dynamics", "linear dynamics", _tokens, expect=DynamicsResult,
          params=lambda run: run.key(layer=run.layer, quick=run.config.quick, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: linear_dynamics(run.model, run.task, run.ltv, n_prompts=8 if run.config.quick else 32,
                                              n_shots=run.shots,
                                              seed=run.config.seed, progress=run.progress),
          draw=_dynamics_sections,
          summary=lambda run, dynamics: {"dynamics R² (direct)": float(dynamics.direct.r2.mean())}),
    Stage("injection-layers", "maps by injection layer", _tokens, expect=InjectionLayerMaps,
          params=lambda run: run.key(quick=run.config.quick, ltv=asdict(LTV_CONFIG)),
          compute=lambda run: injection_layer_maps(
              run.model, run.task, vectors={k: run.results["compare"].vectors[("learned", k)]
                                            for k in range(run.model.n_layers)},
              n_prompts=4 if run.config.quick else 8, n_shots=run.shots,
              seed=run.config.seed),
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
                                                  n_prompts=run.config.n_prompts, seed=run.config.seed),
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
                    "(marked) works as a task vector. Two readings: the prompt's own state (the loss's objective, met "
                    "by construction, and where a late state may hold the query's answer) and the state of the same "
                    "demonstrations asking about another input (answer-free: below zero-shot when the state holds the "
                    "other query's answer). The claims ledger compares step-matched pairs of models.")]


def _depth_sections(run: Run, depth: ComplexityResult) -> list[Section]:
    formed = ", ".join(f"{label}: {'never' if layer is None else f'layer {layer}'}"
                       for label, layer in depth.formation_layers.items())
    return [Section("Depth vs task complexity", profile_figure(depth.profiles, "Mixtures of 2, 8 and 32 permutations: "
                                                                               "TVP mode by layer"),
                    "Same-shaped models on tasks of rising complexity, TVP read from the same demonstrations asking "
                    f"about another input (answer-free). Where the vector forms (half of ICL's gain): {formed}.")]


def _ledger_config(run: Run) -> LedgerConfig:
    if run.config.quick and run.ledger_models:  # a preview on your models: one seed, short learning
        return LedgerConfig(seeds=(run.config.seed,), n_prompts=run.config.n_prompts, epochs=5)
    if run.config.quick:  # a preview: two tasks, one seed, the cheap claims (intervals too wide for verdicts)
        return LedgerConfig(n_tasks=2, seeds=(run.config.seed,), n_prompts=run.config.n_prompts, epochs=5,
                            claims=("ltv_beats_vanilla", "vanilla_beats_zero_shot", "key_heads", "theta_ov"))
    return LedgerConfig(seeds=tuple(run.config.seed + k for k in range(3)), n_prompts=run.config.n_prompts)


def _ledger_weights(run: Run) -> dict[str, str]:
    """The weights of every model the ledger reads (its cache entry is stale when any of them changes)."""
    if run.ledger_models:
        return {name: model.fingerprint()["weights_sha256"] for name, model in run.ledger_models.items()}
    config = _ledger_config(run)
    names = sorted({m for name in (config.claims or CLAIMS) for m in CLAIMS[name].zoo_models})
    return {name: zoo.load(name).fingerprint()["weights_sha256"] for name in names}


def _ledger(run: Run) -> ClaimsLedger:
    """The zoo's ledger, or with Hugging Face models in the report the ledger on them (on :data:`HF_TASKS`)."""
    if not run.ledger_models:
        return claims_ledger(_ledger_config(run), progress=run.progress)
    models = [subject(model, HF_TASKS, name=name) for name, model in run.ledger_models.items()]
    return claims_ledger(_ledger_config(run), progress=run.progress, models=models)


def _ledger_sections(run: Run, ledger: ClaimsLedger) -> list[Section]:
    counts = {v: sum(r.verdict == v for r in ledger.rows) for v in ("holds", "inconclusive", "does not hold")}
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
        where = (f"on each zoo model where they apply: {c.n_tasks} tasks × {len(c.seeds)} seeds, {c.n_prompts} "
                 "held-out test prompts each")
        table = "docs/studies.md has the table."
    title = "Paper claims on your models" if run.ledger_models else "Paper claims on the zoo"
    return [Section("Claims ledger", ledger_figure(ledger, title),
                    f"The paper claims tvlens tests, {where}. The effect is positive when the "
                    "claim holds; the bar is its interval over the tasks (seeds averaged within a task), adjusted "
                    "for the number of rows (Holm), the hollow circle its control (e.g. a random vector of the same "
                    "norm), the black tick what the claim needs. Verdict: holds (interval above the tick and the "
                    "control not), does not hold (below), inconclusive (straddles, fewer than 3 tasks, zero width, "
                    "or the control shows it too; hover for the reason). Training claims are measured on "
                    "independently trained pairs of models, their interval over the pairs. Here: "
                    f"{counts['holds']} hold, {counts['inconclusive']} inconclusive, {counts['does not hold']} do not "
                    f"hold. {table}")]


_LEDGER_STAGES: tuple[Stage, ...] = (
    Stage("ledger", "claims ledger", lambda run: True, scope="ledger", expect=ClaimsLedger, weight=8,
          params=lambda run: {**_ledger_config(run).to_dict(), "weights": _ledger_weights(run),
                              "tasks": list(HF_TASKS) if run.ledger_models else None},
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
          owner=lambda run: zoo.load("perm-mix-tvp"),
          compute=lambda run: tvp_loss_comparison(n_prompts=run.config.n_prompts, seed=run.config.seed),
          draw=_tvp_loss_sections),
    Stage("depth", "depth vs complexity", lambda run: True, scope="studies", expect=ComplexityResult,
          params=lambda run: {"n": run.config.n_prompts, "seed": run.config.seed},
          owner=lambda run: zoo.load("perm-mix-32"),
          compute=lambda run: depth_vs_complexity(n_prompts=run.config.n_prompts, seed=run.config.seed),
          draw=_depth_sections),
    Stage("method-table", "Yang et al. 2025a table", lambda run: True, scope="studies", expect=StudyTable,
          params=lambda run: {"n": run.config.n_prompts, "seed": run.config.seed, "models": _table_models(run)},
          owner=lambda run: zoo.load("perm-mix"),
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


def _model_run(name: str, config: ReportConfig) -> Run:
    if _is_hf_dir(name):
        from tvlens.tasks.text import TextTasks

        model = HookedModel.from_pretrained(name)
        return Run(name, config, model, TextTasks(HF_TASKS, tokenizer=model.tokenizer), shots=5)
    model = zoo.load(name)
    tokens = model.d_input is None
    return Run(name, config, model, zoo.task(name), shots=zoo.spec(name).train.n_shots if tokens else None,
               history=formation_over_training(name) if tokens else None)


def _run_stages(run: Run, stages: Sequence[Stage], cache: _Cache, bar: tqdm) -> tuple[list[Section], dict[str, Any]]:
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


def build_report(config: ReportConfig | None = None, progress: bool = True) -> Report:
    """Run every stage (or read it from the cache) and collect the figures.

    The stages are :data:`STAGES`: those of scope ``"model"`` for every model, those of scope
    ``"studies"`` once; the progress total and the summary table come from them."""
    config = config or ReportConfig()
    start = time.perf_counter()
    cache = _Cache(config.cache_dir)
    report = Report(config=config)
    runs = [_model_run(name, config) for name in config.models]
    studies = Run("Studies across models", config) if config.studies else None
    # with Hugging Face models in the report, the ledger asks them (the zoo's own claims stay in `tvlens claims`)
    asked = {run.group: run.model for run in runs if _is_hf_dir(run.group)}
    ledger = Run("Paper claims on your models" if asked else "Paper claims on the zoo", config,
                 ledger_models=asked) if config.studies else None
    for run in [*runs, *([studies, ledger] if studies else [])]:
        run.progress = progress
    scoped = {scope: [stage for stage in STAGES if stage.scope == scope] for scope in SCOPES}
    total = sum(stage.weight for run in runs for stage in scoped["model"] if stage.applies(run))
    for once, scope in ((ledger, "ledger"), (studies, "studies")):
        total += sum(stage.weight for stage in scoped[scope] if stage.applies(once)) if once is not None else 0
    with tqdm(total=total, desc="report", disable=not progress, dynamic_ncols=True) as bar:
        if ledger is not None:
            report.sections.append((ledger.group, _run_stages(ledger, scoped["ledger"], cache, bar)[0]))
        for run in runs:
            sections, summary = _run_stages(run, scoped["model"], cache, bar)
            report.sections.append((run.group, sections))
            report.summary.append(summary)
        if studies is not None:
            report.sections.append((studies.group, _run_stages(studies, scoped["studies"], cache, bar)[0]))
    report.seconds, report.cache_hits = time.perf_counter() - start, cache.hits
    return report


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def render_html(report: Report) -> str:
    """The report as one HTML document with plotly.js embedded (works offline)."""
    columns = list(dict.fromkeys(key for row in report.summary for key in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_format(row.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for row in report.summary)
    body, toc, index = [], [], 0
    for group, sections in report.sections:
        anchor = f"group-{len(toc)}"
        toc.append(f'<li><a href="#{anchor}">{html.escape(group)}</a></li>')
        body.append(f'<h2 id="{anchor}">{html.escape(group)}</h2>')
        for section in sections:
            div = section.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{index}",
                                         config={"displaylogo": False, "responsive": True})
            body.append(f'<section class="figure"><h3>{html.escape(section.title)}</h3>{div}'
                        f'<p class="explanation">{html.escape(section.explanation)}</p></section>')
            index += 1
    settings = html.escape(json.dumps(report.config.to_dict()))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tvlens report</title>
<script>window.tvlensErrors = [];
window.addEventListener("error", function (e) {{ window.tvlensErrors.push(String(e.message)); }});</script>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table.summary {{ border-collapse: collapse; font-size: 0.9em; }}
table.summary td, table.summary th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
.explanation {{ color: #444; max-width: 900px; }} section.figure {{ margin-bottom: 2.5em; }}</style></head>
<body>
<h1>tvlens report</h1>
<p>Task vectors on the tvlens zoo: {len(report.config.models)} model(s), {sum(len(s) for _, s in report.sections)}
figures, made in {report.seconds:.0f} s by tvlens {__version__} ({report.cache_hits} stages from the cache).
Accuracy for token models; squared error / D for regression models (lower is better).</p>
<table class="summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<ul>{"".join(toc)}</ul>
{"".join(body)}
<p><small>settings: {settings}</small></p>
<div id="tvlens-js-errors" hidden></div>
<script>window.addEventListener("load", function () {{
  setTimeout(function () {{
    document.getElementById("tvlens-js-errors").textContent = JSON.stringify(window.tvlensErrors);
    var figures = document.querySelectorAll("div[id^='figure-']");
    var missing = [];
    figures.forEach(function (f) {{ if (!f.querySelector("svg.main-svg")) {{ missing.push(f.id); }} }});
    document.body.setAttribute("data-figures", String(figures.length));
    document.body.setAttribute("data-missing", missing.join(","));
  }}, 500);
}});</script>
</body></html>
"""


def write_report(report: Report, path: str | os.PathLike) -> Path:
    """Write :func:`render_html` to ``path`` atomically (``-``: standard output)."""
    return atomic_write_text(path, render_html(report))


def make_report(models: Sequence[str] = DEFAULT_MODELS, out: str | os.PathLike = "report.html", *, quick: bool = False,
                cache_dir: str | None = None, studies: bool = True, progress: bool = True) -> Path:
    """Build the report for ``models`` and write it to ``out``."""
    config = ReportConfig(models=list(models), quick=quick, cache_dir=cache_dir, studies=studies)
    return write_report(build_report(config, progress=progress), out)


__all__ = ["DEFAULT_MODELS", "Report", "ReportConfig", "Section", "build_report", "make_report", "render_html",
           "write_report"]
