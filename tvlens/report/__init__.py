"""``tvlens report``: the whole pipeline on zoo models, written as one self-contained HTML file.

It opens with the claims ledger: the papers' testable claims measured over tasks × seeds beside their
controls, with a Holm-adjusted interval and verdict — on the zoo, or on the Hugging Face models given (on
word-pair tasks). Then, for every token model: task vectors by layer (vanilla, function, learned), the OV
decomposition of a learned vector, its attention and MLP paths and Yang et al. 2025a's re-injection
test, saliency and exact ablation of every head with key heads vs random heads, the attention
pattern of the top key head, linear dynamics with the logit lens, rotation vs scaling of vectors
injected at each layer, and where the vector forms (by layer and over training). Across models: the
TVP-loss comparison, depth vs complexity, and — for regression models — fidelity by prompt length.
Each figure has a short explanation under it; a summary table is on top.

The report is one list of declared stages, :data:`STAGES` (each runs per model or once across
models): each names its cache key, progress weight, computation, figures, summary entries and the earlier
results it needs, so
adding a figure touches that list only; the progress total and the summary table come from it.

The file embeds plotly.js once and works offline. Every stage's result is cached on disk, keyed by
the model's fingerprint, the stage, its parameters and the tvlens version, so a second run only
redraws. The HTML records JavaScript errors in ``#tvlens-js-errors`` (the browser test reads it).

Its parts: :mod:`~tvlens.report.config` (what runs), :mod:`~tvlens.report.stages` (the stages and their
figures), :mod:`~tvlens.report.cache` (the stage cache), :mod:`~tvlens.report.html` (the page) and
:mod:`~tvlens.report.build` (running them).
"""

from tvlens.report.build import Report, build_report, make_report
from tvlens.report.cache import CacheWarning, StageCache, cacheable_types
from tvlens.report.config import DEFAULT_MODELS, HF_TASKS, ReportConfig, is_hf_dir
from tvlens.report.html import render_html, write_report
from tvlens.report.stages import STAGES, Run, Section, Stage

__all__ = ["DEFAULT_MODELS", "HF_TASKS", "STAGES", "CacheWarning", "Report", "ReportConfig", "Run", "Section",
           "Stage", "StageCache", "build_report", "cacheable_types", "is_hf_dir", "make_report", "render_html",
           "write_report"]
