"""Building a report: every stage run (or read from the cache) for its groups, under one progress bar."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvlens._progress import progress_bar
from tvlens.report.cache import StageCache
from tvlens.report.config import DEFAULT_MODELS, ReportConfig, is_hf_dir
from tvlens.report.html import write_report
from tvlens.report.stages import SCOPES, STAGES, Run, Section, model_run, run_stages


@dataclass
class Report:
    """The sections of a report and its summary rows."""

    config: ReportConfig
    sections: list[tuple[str, list[Section]]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    cache_hits: int = 0


def build_report(config: ReportConfig | None = None, progress: bool = True) -> Report:
    """Run every stage (or read it from the cache) and collect the figures.

    The stages are :data:`STAGES`: those of scope ``"model"`` for every model, those of scope
    ``"studies"`` once; the progress total and the summary table come from them."""
    config = config or ReportConfig()
    start = time.perf_counter()
    cache = StageCache(config.cache_dir)
    report = Report(config=config)
    loaded: dict[str, Any] = {}  # each zoo model loaded (and fingerprinted) once for the whole report
    runs = [model_run(name, config, loaded) for name in config.models]
    studies = Run("Studies across models", config, loaded=loaded) if config.studies else None
    # with Hugging Face models in the report, the ledger asks them (the zoo's own claims stay in `tvlens claims`)
    asked = {run.group: run.model for run in runs if is_hf_dir(run.group)}
    ledger = Run("Paper claims on your models" if asked else "Paper claims on the zoo", config,
                 ledger_models=asked, loaded=loaded) if config.studies else None
    for run in [*runs, *([studies, ledger] if studies else [])]:
        run.progress = progress
    scoped = {scope: [stage for stage in STAGES if stage.scope == scope] for scope in SCOPES}
    total = sum(stage.weight for run in runs for stage in scoped["model"] if stage.applies(run))
    for once, scope in ((ledger, "ledger"), (studies, "studies")):
        total += sum(stage.weight for stage in scoped[scope] if stage.applies(once)) if once is not None else 0
    with progress_bar(total=total, desc="report", progress=progress, keep=True) as bar:
        if ledger is not None:
            report.sections.append((ledger.group, run_stages(ledger, scoped["ledger"], cache, bar)[0]))
        for run in runs:
            sections, summary = run_stages(run, scoped["model"], cache, bar)
            report.sections.append((run.group, sections))
            report.summary.append(summary)
        if studies is not None:
            report.sections.append((studies.group, run_stages(studies, scoped["studies"], cache, bar)[0]))
    report.seconds, report.cache_hits = time.perf_counter() - start, cache.hits
    return report


def make_report(models: Sequence[str] = DEFAULT_MODELS, out: str | os.PathLike = "report.html", *, quick: bool = False,
                cache_dir: str | None = None, studies: bool = True, progress: bool = True) -> Path:
    """Build the report for ``models`` and write it to ``out``."""
    config = ReportConfig(models=list(models), quick=quick, cache_dir=cache_dir, studies=studies)
    return write_report(build_report(config, progress=progress), out)


__all__ = ["Report", "build_report", "make_report"]
