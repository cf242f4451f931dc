"""``tvlens report``: the whole pipeline on zoo models, written as one self-contained HTML file.

For every token model: task vectors by layer (vanilla, function, learned), the OV decomposition of
a learned vector and Yang et al. 2025a's re-injection test, saliency and exact ablation of every head with key
heads vs random heads, the attention pattern of the top key head, linear dynamics with the logit
lens, and where the vector forms (by layer and over training). Across models: the TVP-loss
comparison, depth vs complexity, and — for regression models — fidelity by prompt length. Each
figure has a short explanation under it; a summary table is on top.

The file embeds plotly.js once and works offline. Every stage's result is cached on disk, keyed by
the model's fingerprint, the stage, its parameters and the tvlens version, so a second run only
redraws. The HTML records JavaScript errors in ``#tvlens-js-errors`` (the browser test reads it).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
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
from tvlens._io import atomic_write, atomic_write_text, first_line
from tvlens._version import __version__
from tvlens.analysis import key_head_analysis, linear_dynamics, ov_decomposition
from tvlens.analysis.dynamics import DynamicsResult
from tvlens.analysis.heads import KeyHeadResult
from tvlens.analysis.ov import OVResult
from tvlens.models.hooked import HookedModel
from tvlens.plot import (
    attention_figure,
    dynamics_figure,
    formation_heatmap,
    head_heatmap,
    key_vs_random_figure,
    layer_histogram_figure,
    logit_lens_figure,
    method_layers_figure,
    method_table_figure,
    profile_figure,
    regression_figure,
    reinjection_figure,
)
from tvlens.studies import (
    depth_vs_complexity,
    formation_over_training,
    method_table,
    regression_fidelity,
    tvp_by_layer,
    tvp_loss_comparison,
)
from tvlens.studies.formation import ComplexityResult, LayerProfile, TVPLossComparison
from tvlens.studies.table import StudyTable
from tvlens.tasks.splits import Splits
from tvlens.vectors import LearnConfig, compare, function_vector
from tvlens.vectors.compare import Comparison
from tvlens.vectors.function import FunctionVectorResult

DEFAULT_MODELS = ("perm-mix", "token-offset", "linear-regression-long")
#: The learned vectors of the report: the settings of the science tests (Yang et al. 2025a on the zoo).
LTV_CONFIG = LearnConfig(lr=0.05, epochs=15)


@dataclass
class ReportConfig:
    """What ``tvlens report`` runs.

    Attributes:
        models: zoo model names (token and regression models), or directories of Hugging Face causal
            LMs (``save_pretrained``), reported on :data:`HF_TASKS` word-pair tasks.
        quick: fewer prompts and copies (for tests and previews).
        seed: seed of every stage's prompts.
        cache_dir: where stage results are cached (``None``: no cache).
        studies: also run the cross-model studies (TVP-loss, depth vs complexity, the Yang et al. 2025a table).
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportConfig:
        return cls(**data)


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


class _Cache:
    """Stage results on disk, keyed by content: (stage, parameters, model fingerprint, tvlens version).

    Each file stores its full key next to the value. A file that cannot be read, holds another key
    (another model's result under the same name) or a value of the wrong type is not trusted: the
    stage is recomputed with a one-line :class:`CacheWarning` naming the file, and the file replaced.
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
            entry = torch.load(path, map_location="cpu", weights_only=False)  # tvlens' own cache files
        except Exception as error:  # truncated, empty, random bytes, a directory: all recomputed
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

    def get(self, stage: str, params: dict[str, Any], model: HookedModel | None, compute: Callable[[], Any],
            expect: type = object) -> Any:
        """``compute()``, or its cached value for the same key (checked to be a ``expect``)."""
        if self.directory is None:
            return compute()
        key = json.dumps({"stage": stage, "params": params, "version": __version__,
                          "model": None if model is None else self._fingerprint(model)}, sort_keys=True, default=str)
        path = self.directory / f"{stage}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
        if path.exists():
            value = self._read(path, key, expect)
            if value is not None:
                self.hits += 1
                return value
        value = compute()
        buffer = io.BytesIO()
        torch.save({"key": key, "value": value}, buffer)
        atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
        return value


#: The word-pair tasks a Hugging Face model is reported on (task 0 is the one vectors are made for).
HF_TASKS = ("antonyms", "country_capital", "english_french", "present_past")


def _is_hf_dir(name: str) -> bool:
    return (Path(name) / "config.json").is_file()


def _token_names(task: Any, d_vocab: int) -> list[str]:
    if hasattr(task, "tokenizer"):
        return [task.tokenizer.decode([i]) for i in range(d_vocab)]
    return task.decode(torch.arange(d_vocab)).split(" ")


def _token_model_sections(name: str, config: ReportConfig, cache: _Cache, bar: tqdm) -> tuple[list[Section],
                                                                                                 dict[str, Any]]:
    n, seed, quick = config.n_prompts, config.seed, config.quick
    history = None
    if _is_hf_dir(name):
        from tvlens.tasks.text import TextTasks

        model = HookedModel.from_pretrained(name)
        family, shots = TextTasks(HF_TASKS, tokenizer=model.tokenizer), 5
    else:
        model, family = zoo.load(name), zoo.task(name)
        shots, history = zoo.spec(name).train.n_shots, formation_over_training(name)
    task = family.single(0)
    ltv_params = asdict(LTV_CONFIG)  # every stage below depends on the learned vector
    sections: list[Section] = []

    bar.set_description(f"{name}: methods by layer")
    comparison = cache.get("compare", {"name": name, "n": n, "seed": seed, "ltv": ltv_params}, model,
                           lambda: compare(model, task, ["vanilla", "function", "learned"], seed=seed, n_test=n,
                                           n_shots=shots, progress=False, learn_config=LTV_CONFIG), expect=Comparison)
    bar.update(1)
    sections.append(Section("Task vectors by layer", method_layers_figure(comparison.records, f"{name}: task vectors "
                                                                          "by layer (task 0, zero-shot queries)"),
                            "Accuracy of the zero-shot query with each method's vector added at one layer (last "
                            "position), on the same test prompts; ICL and zero-shot as reference lines. Bands: ±1 "
                            "standard error. The learned vector is trained by gradient descent against the frozen "
                            "model (Yang et al. 2025a); the vanilla vector is the mean ICL state minus the mean "
                            "zero-shot state; the "
                            "function vector sums the mean outputs of the heads with the largest causal effect."))
    bar.set_description(f"{name}: function-vector heads")
    fv = cache.get("aie", {"name": name, "n": n, "seed": seed}, model,
                   lambda: function_vector(model, task, 0, top_k=max(2, model.n_layers * model.n_heads // 10),
                                           n_shots=shots, seed=seed)[1], expect=FunctionVectorResult)
    bar.update(1)
    sections.append(Section("Average indirect effect per head", head_heatmap(
        fv.aie, f"{name}: average indirect effect of each head (function-vector heads boxed)", "AIE",
        marked=fv.top_heads),
        "Todd et al.'s causal score: the gain in the answer's probability when one head's mean output over clean "
        "prompts is patched into prompts whose labels were shuffled. The boxed heads make the function vector."))
    layer = 1 if model.n_layers > 2 else 0
    ltv = comparison.vectors[("learned", layer)]

    bar.set_description(f"{name}: OV decomposition")
    ov = cache.get("ov", {"name": name, "n": n, "seed": seed, "layer": layer, "ltv": ltv_params}, model,
                   lambda: ov_decomposition(model, task, ltv, n_prompts=n, seed=Splits(seed).shared), expect=OVResult)
    bar.update(1)
    sections += [
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
                "Yang et al. 2025a's test: θ_OV = Σ θ W_V W_O over every later head, injected in place of θ (and "
                "θ_MLP, the summed change of the later MLP outputs). Yang et al. 2025a recover 52 % of 83 %. The "
                "θ_OV share is (θ_OV − zero-shot) / "
                f"(θ − zero-shot); here {ov.ov_share:.0%}"
                + (": negative, because θ_OV alone does worse than the zero-shot query — the OV path by itself does "
                   "not carry the task, it moves the stream away from the answer." if ov.ov_share < 0 else ".")),
    ]

    bar.set_description(f"{name}: key heads")
    heads = cache.get("heads", {"name": name, "n": n, "seed": seed, "layer": layer, "ltv": ltv_params}, model,
                      lambda: key_head_analysis(model, task, ltv, n_prompts=n, seed=Splits(seed).shared),
                      expect=KeyHeadResult)
    bar.update(1)
    sections += [
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
    top_layer, top_head = heads.key_heads[0]
    prompt = Splits(seed).sample(task, "aside", 1, 4)
    name_pattern = model.hook_name(top_layer, "attn.hook_pattern")
    with torch.no_grad():
        _, cache_act = model.run_with_cache(prompt.inputs, [name_pattern])
    vocab = _token_names(task, model.d_vocab)
    sections.append(Section("Attention of the top key head",
                            attention_figure(cache_act[name_pattern][0, top_head],
                                             [vocab[int(t)] for t in prompt.inputs[0]],
                                             f"{name}: attention of L{top_layer}H{top_head} on a 4-shot prompt"),
                            "Where the top key head looks on an ordinary ICL prompt (no vector)."))

    bar.set_description(f"{name}: linear dynamics")
    dyn_params = {"name": name, "seed": seed, "layer": layer, "quick": quick, "ltv": ltv_params}
    dynamics = cache.get("dynamics", dyn_params, model,
                         lambda: linear_dynamics(model, task, ltv, n_prompts=8 if quick else 32, n_shots=shots,
                                                 n_copies=2 * model.d_model + 64, seed=seed,
                                                 progress=not bar.disable), expect=DynamicsResult)
    bar.update(1)
    tokens = vocab
    sections += [
        Section("Linear dynamics", dynamics_figure(dynamics),
                "Per prompt, a ridge-fitted linear map carries small changes of θ from one layer to the next and "
                "to the final stream; its polar split W = QΣ gives a rotation Q and a scaling Σ. Shown: held-out "
                "fit, cos(θ, Qθ), Σ's spectrum, and the share of θ and Qθ in the span of the label unembeddings."),
        Section("Logit lens", logit_lens_figure(dynamics, tokens), "Top tokens of θ and of its rotation Qθ read "
                "through ln_final and the unembedding, per map."),
    ]

    bar.set_description(f"{name}: formation")
    profile = cache.get("profile", {"name": name, "n": n, "seed": seed}, model,
                        lambda: tvp_by_layer(model, family, n_prompts=n, n_shots=shots, seed=seed, label=name),
                        expect=LayerProfile)
    bar.update(1)
    sections.append(Section("TVP mode by layer", profile_figure(profile, f"{name}: TVP mode by layer"),
                            "The zero-shot query with its stream at one layer replaced by its own ICL prompt's state "
                            "there (Yang et al. 2025b's task-vector prompting): where the task fits in one vector."))
    if history is not None:
        sections.append(Section("Formation over training", formation_heatmap(history),
                                "The same TVP-mode accuracy at every evaluation during training (from the training "
                                "history shipped with the model)."))
    best = {m: max((r for r in comparison.records if r["method"] == m), key=lambda r: r["accuracy"])
            for m in ("vanilla", "function", "learned")}
    ref = {r["method"]: r["accuracy"] for r in comparison.records if r["layer"] is None}
    s = heads.summary()
    summary = {"model": name, "ICL": ref["icl"], "zero-shot": ref["zero_shot"],
               "vanilla TV (best layer)": best["vanilla"]["accuracy"],
               "function vector (best layer)": best["function"]["accuracy"],
               "learned TV (best layer)": best["learned"]["accuracy"],
               "key heads ablated": s["key_ablated"], "random heads ablated": s["random_ablated"],
               "θ_OV share": ov.ov_share, "dynamics R² (direct)": float(dynamics.direct.r2.mean()),
               "TVP best layer": profile.best_layer}
    return sections, summary


def _regression_sections(name: str, config: ReportConfig, cache: _Cache, bar: tqdm) -> tuple[list[Section],
                                                                                               dict[str, Any]]:
    model = zoo.load(name)
    bar.set_description(f"{name}: regression fidelity")
    shifts = ["none", "skewed"] if config.quick else ["none", "skewed", "noisy", "orthogonal"]
    table = cache.get("fidelity", {"name": name, "n": config.n_prompts, "seed": config.seed, "shifts": shifts}, model,
                      lambda: regression_fidelity(name, shifts=shifts, n_prompts=config.n_prompts, seed=config.seed),
                      expect=StudyTable)
    bar.update(1)
    bar.update(4)  # the token-model stages this model does not have
    bar.set_description(f"{name}: formation")
    profile = cache.get("profile", {"name": name, "n": config.n_prompts, "seed": config.seed}, model,
                        lambda: tvp_by_layer(model, zoo.task(name), n_prompts=config.n_prompts, seed=config.seed,
                                             label=name), expect=LayerProfile)
    bar.update(1)
    sections = [
        Section("Regression fidelity", regression_figure(table),
                "Squared error / D of the query by number of demonstrations: ICL, zero-shot, and each vector read "
                "from the same prompt and injected into the query alone (Saglam et al. 2025's benchmark). The "
                "head-weighted "
                "LTV weights every head's output of the prompt with weights learned once."
                + (" The orthogonal panel is short on purpose: a query orthogonal to every demonstration exists only "
                   "with fewer demonstrations than input dimensions." if "orthogonal" in shifts else "")),
        Section("TVP mode by layer", profile_figure(profile, f"{name}: TVP mode by layer"),
                "The query with its stream replaced by its own prompt's state at one layer (lower is better)."),
    ]
    train = table.settings["train_shots"]
    row = {r["method"]: r["mse_per_dim"] for r in table.select(shift="none", n_shots=train)}
    summary = {"model": name, "ICL": row["icl"], "zero-shot": row["zero_shot"],
               "vanilla TV (best layer)": row["vanilla"], "function vector (best layer)": row["function"],
               "learned TV (best layer)": row["learned"],
               "head-weighted LTV": row["head_weighted"], "TVP best layer": profile.best_layer}
    return sections, summary


def build_report(config: ReportConfig | None = None, progress: bool = True) -> Report:
    """Run every stage (or read it from the cache) and collect the figures."""
    config = config or ReportConfig()
    start = time.perf_counter()
    cache = _Cache(config.cache_dir)
    report = Report(config=config)
    study_stages = 3 if config.studies else 0
    with tqdm(total=6 * len(config.models) + study_stages, desc="report", disable=not progress,
              dynamic_ncols=True) as bar:
        for name in config.models:
            kind = "symbolic" if _is_hf_dir(name) else zoo.task(name).kind
            sections, summary = (_regression_sections if kind == "regression" else _token_model_sections)(
                name, config, cache, bar)
            report.sections.append((name, sections))
            report.summary.append(summary)
        if config.studies:
            report.sections.append(("Studies across models", _study_sections(config, cache, bar)))
    report.seconds, report.cache_hits = time.perf_counter() - start, cache.hits
    return report


def _study_sections(config: ReportConfig, cache: _Cache, bar: tqdm) -> list[Section]:
    n, seed = config.n_prompts, config.seed
    bar.set_description("studies: TVP-loss")
    tvp = cache.get("tvp-loss", {"n": n, "seed": seed}, zoo.load("perm-mix-tvp"),
                    lambda: tvp_loss_comparison(n_prompts=n, seed=seed), expect=TVPLossComparison)
    bar.update(1)
    bar.set_description("studies: depth vs complexity")
    depth = cache.get("depth", {"n": n, "seed": seed}, zoo.load("perm-mix-32"),
                      lambda: depth_vs_complexity(n_prompts=n, seed=seed), expect=ComplexityResult)
    bar.update(1)
    formed = ", ".join(f"{label}: layer {layer}" for label, layer in depth.formation_layers.items())
    sections = [
        Section("TVP-loss", profile_figure(tvp.profiles, "perm-mix vs perm-mix-tvp: TVP mode by layer",
                                           mark_layer=tvp.tvp_layer),
                f"Yang et al. 2025b's TVP-loss trains the model so that its own ICL state at layer {tvp.tvp_layer} "
                "(marked) "
                "works as a task vector; ICL stays intact."),
        Section("Depth vs task complexity", profile_figure(depth.profiles, "Mixtures of 2, 8 and 32 permutations: "
                                                                           "TVP mode by layer"),
                f"Same-shaped models on tasks of rising complexity. Where the vector forms (half of ICL's gain): "
                f"{formed}."),
    ]
    bar.set_description("studies: Yang et al. 2025a table")
    models = ["perm-mix"] if config.quick else ["perm-mix", "token-offset"]
    table = cache.get("method-table", {"n": n, "seed": seed, "models": models}, zoo.load("perm-mix"),
                      lambda: method_table(models, n_test=n, seed=seed, progress=not bar.disable), expect=StudyTable)
    bar.update(1)
    sections.append(Section("Learned vs extracted vectors (Yang et al. 2025a)", method_table_figure(table),
                            "The learned vector against the vanilla TV and the FV at the last position, at an early "
                            "position (the query token, where extracted vectors collapse to zero-shot) and added to "
                            "a 2-shot prompt."))
    return sections


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
    """Write :func:`render_html` to ``path`` atomically."""
    return atomic_write_text(path, render_html(report))


def make_report(models: Sequence[str] = DEFAULT_MODELS, out: str | os.PathLike = "report.html", *, quick: bool = False,
                cache_dir: str | None = None, studies: bool = True, progress: bool = True) -> Path:
    """Build the report for ``models`` and write it to ``out``."""
    config = ReportConfig(models=list(models), quick=quick, cache_dir=cache_dir, studies=studies)
    return write_report(build_report(config, progress=progress), out)


__all__ = ["DEFAULT_MODELS", "Report", "ReportConfig", "Section", "build_report", "make_report", "render_html",
           "write_report"]
