"""``tvlens report``: the stages, the cache, the HTML — and the HTML opened in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tvlens.report import ReportConfig, build_report, render_html, write_report

from .planted import Payload


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    config = ReportConfig(models=["perm-mix", "linear-regression"], quick=True, cache_dir=str(cache))
    return build_report(config, progress=False), config


def test_sections_and_summary(quick_report):
    report, _ = quick_report
    groups = [group for group, _ in report.sections]
    assert groups == ["Paper claims on the zoo", "perm-mix", "linear-regression", "Studies across models"]
    assert [len(sections) for _, sections in report.sections] == [1, 16, 2, 3]
    assert report.sections[0][1][0].title == "Claims ledger"  # the report opens with the ledger
    # a preview measures each family's first trained model only, and says so
    assert "each family on its first trained model, 2 tasks each" in report.sections[0][1][0].explanation
    assert all(s.explanation for _, sections in report.sections for s in sections)
    perm = report.summary[0]
    assert perm["model"] == "perm-mix" and perm["ICL"] > 0.9
    # held out, perm-mix's last-position vectors carry nothing to new queries (docs/vectors.md): no θ_OV share then
    assert perm["learned TV (best layer)"] >= perm["zero-shot"] - 0.1
    assert isinstance(perm["θ_OV share"], float) or perm["θ_OV share"] == "n/a (no gain)"


def test_second_run_reads_every_stage_from_the_cache(quick_report):
    report, config = quick_report
    again = build_report(config, progress=False)
    assert report.cache_hits == 0 and again.cache_hits == 1 + 7 + 2 + 3  # ledger, perm-mix, linear-regression, studies
    assert again.summary == report.summary


def test_html_is_self_contained(quick_report, tmp_path):
    report, _ = quick_report
    text = render_html(report)
    assert "https://" not in re.sub(r"<script type=\"text/javascript\">.*?</script>", "", text, flags=re.S)
    assert text.count("<section class=\"figure\">") == 22
    path = write_report(report, tmp_path / "r.html")
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left


def test_a_declared_stage_is_all_a_new_figure_takes(quick_report, monkeypatch):
    """Adding a stage to STAGES adds its figure, its summary entry and its progress weight; nothing else
    changes (the progress total and the summary come from the list)."""
    import plotly.graph_objects as go

    import tvlens.report.build as build_module
    from tvlens import zoo
    from tvlens.report import STAGES, Section, Stage
    from tvlens.report.stages import check_stages

    _, config = quick_report
    extra = Stage("norms", "stream norms", lambda run: run.tokens, weight=2,
                  compute=lambda run: float(run.model.W_E.norm()),
                  draw=lambda run, value: [Section("Embedding norm", go.Figure(), f"‖W_E‖ = {value:.2f}")],
                  summary=lambda run, value: {"‖W_E‖": value})
    monkeypatch.setattr(build_module, "STAGES", (*STAGES, extra))
    totals = []
    monkeypatch.setattr(build_module, "progress_bar", lambda total, **kwargs: totals.append(total) or _Bar())
    report = build_report(ReportConfig(models=["perm-mix"], quick=True, cache_dir=config.cache_dir, studies=False))
    assert totals == [7 + 2]
    assert report.sections[0][1][-1].title == "Embedding norm"
    assert report.summary[0]["‖W_E‖"] == pytest.approx(float(zoo.load("perm-mix").W_E.norm()))
    with pytest.raises(ValueError, match=r"Stage.scope='global': expected one of \('ledger', 'model', 'studies'\)"):
        Stage("x", "x", lambda run: True, draw=lambda run, value: [], scope="global")
    # a stage reads only the earlier results it declares: a need that runs later, or in another scope, is refused
    late = Stage("late", "late", lambda run: True, draw=lambda run, value: [], needs=("compare",))
    with pytest.raises(ValueError, match="stage 'late' needs 'compare'; expected an earlier stage of scope 'model'"):
        check_stages((late, *STAGES))
    with pytest.raises(ValueError, match="'compare' twice"):
        check_stages((*STAGES, STAGES[1]))


class _Bar:
    disable = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_description(self, text):
        pass

    def update(self, n):
        pass


def test_unknown_model_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"^models: 'gpt-7' is neither a zoo model \(perm-mix, .*\), nor a Hugging "
                                         r"Face model directory \(save_pretrained, with config.json\)"):
        ReportConfig(models=["gpt-7"])
    with pytest.raises(ValueError, match=r"^workers=0: expected an int >= 1$"):
        ReportConfig(workers=0)


def test_the_ledger_runs_on_a_worker_per_core_unless_told_or_quick():
    from tvlens._parallel import default_workers

    assert ReportConfig().ledger_workers == default_workers()
    assert ReportConfig(quick=True).ledger_workers == 1  # a preview: starting processes would cost more than it saves
    assert ReportConfig(quick=True, workers=3).ledger_workers == 3
    assert ReportConfig(workers=1).ledger_workers == 1


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None and not os.environ.get("CI"),
                    reason="no Chromium here (CI installs Debian's chromium and runs this test)")
def test_report_renders_in_a_headless_browser(quick_report, tmp_path):
    """Every figure has drawn its SVG and no JavaScript error was raised (Chromium, headless)."""
    browser = _chromium()
    assert browser is not None, "CI must install chromium (apt-get install -y chromium)"
    report, _ = quick_report
    path = write_report(report, tmp_path / "report.html")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000",
                          "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    figures = re.search(r'data-figures="(\d+)"', dom)
    assert figures is not None, "the page's load handler did not run"
    assert int(figures.group(1)) == 22
    assert 'data-missing=""' in dom
    assert '<div id="tvlens-js-errors" hidden="">[]</div>' in dom
    assert ">new text<" not in dom  # plotly's drawn placeholder for an empty annotation


def test_report_on_a_hugging_face_model(tmp_path):
    """A save_pretrained directory is reported like a zoo model, on word-pair tasks (no training history)."""
    from .hf_models import build, train_tokenizer

    directory = build("gpt2", tmp_path / "tiny", train_tokenizer(), d_model=32)
    report = build_report(ReportConfig(models=[str(directory)], quick=True, studies=False), progress=False)
    (group, sections), = report.sections
    assert group == str(directory) and len(sections) == 15
    assert "Formation over training" not in [s.title for s in sections]
    assert report.summary[0]["model"] == str(directory)
    with pytest.raises(ValueError, match=r"is a directory without config.json, nor a Hugging Face model directory"):
        ReportConfig(models=[str(tmp_path)])  # a directory without config.json is not a model


@pytest.mark.slow
def test_report_on_a_hugging_face_model_opens_with_the_ledger_on_it(tmp_path, tokenizer):
    """With a save_pretrained directory among the models, the report's first section is the claims ledger on that
    model (its word-pair tasks), naming the claims that do not apply and why."""
    from tvlens.report.stages import QUICK_CLAIMS
    from tvlens.studies.ledger import CLAIMS, NEEDS
    from tvlens.studies.ledger.verdicts import NOT_APPLICABLE

    from .hf_models import build

    directory = str(build("llama_gqa", tmp_path / "tiny", tokenizer, d_model=32))
    report = build_report(ReportConfig(models=[directory], quick=True, cache_dir=str(tmp_path / "cache")),
                          progress=False)
    group, (section,) = report.sections[0]
    assert group == "Paper claims on your models" and section.title == "Claims ledger"
    drawn = {label for trace in section.figure.data[:-2] for label in trace.y}  # the verdict traces
    assert drawn == {f"{name} · {directory}" for name in QUICK_CLAIMS}  # a preview: the cheap claims
    skipped = [c.name for c in CLAIMS.values() if c.needs != "labels"]
    by_need: dict[str, list[str]] = {}  # the claims that share a reason are named together, before it
    for c in CLAIMS.values():
        if c.needs != "labels":
            by_need.setdefault(c.needs, []).append(c.name)
    need, names = next(iter(by_need.items()))
    assert f"Not applicable here (not drawn): {', '.join(names)}: needs {NEEDS[need]}" in section.explanation
    assert all(name in section.explanation for name in skipped)
    assert "antonyms, country_capital, english_french, present_past × 1 seeds" in section.explanation
    again = build_report(ReportConfig(models=[directory], quick=True, cache_dir=str(tmp_path / "cache")),
                         progress=False)
    assert again.cache_hits >= 1 and again.sections[0][1][0].explanation == section.explanation
    assert f"({len(skipped)} claim rows {NOT_APPLICABLE} to these models" in section.figure.layout.title.text


def test_cache_recomputes_every_entry_it_cannot_trust(tmp_path):
    """Truncated, empty, random, wrong-type and other-key files: one warning naming the file, then a recompute."""
    import io

    import torch

    from tvlens.report import CacheWarning, StageCache

    cache = StageCache(str(tmp_path))
    calls = []

    def compute(value):
        return lambda: calls.append(value) or {"value": value}

    assert cache.get("stage", {"a": 1}, None, compute(1), expect=dict) == {"value": 1}
    assert cache.get("stage", {"a": 1}, None, compute(1), expect=dict) == {"value": 1} and cache.hits == 1
    cache.get("stage", {"a": 2}, None, compute(2), expect=dict)
    path, other = sorted(tmp_path.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    good = path.read_bytes()
    wrong_type = io.BytesIO()
    torch.save({"key": torch.load(io.BytesIO(good), weights_only=False)["key"], "value": [1, 2]}, wrong_type)
    damaged = {
        "truncated": (good[: len(good) // 2], "unreadable"),
        "empty": (b"", "unreadable"),
        "random": (bytes(range(256)) * 4, "unreadable"),
        "wrong type": (wrong_type.getvalue(), "holds a list, expected a dict"),
        "another entry": (other.read_bytes(), "made for another model, setting or tvlens version"),
    }
    for label, (content, reason) in damaged.items():
        path.write_bytes(content)
        calls.clear()
        with pytest.warns(CacheWarning, match=re.escape(f"ignoring the cache file {str(path)!r} ({reason}")):
            assert cache.get("stage", {"a": 1}, None, compute(1), expect=dict) == {"value": 1}, label
        assert calls == [1], label  # recomputed
        assert cache.get("stage", {"a": 1}, None, compute(1), expect=dict) == {"value": 1} and calls == [1]
    with pytest.raises(ValueError, match="cache_dir=.*is a file"):
        StageCache(str(path))


def test_report_html_has_no_placeholder_or_stray_box(quick_report):
    report, _ = quick_report
    text = render_html(report)
    assert '<div id="tvlens-js-errors" hidden>' in text
    for _, sections in report.sections:  # plotly draws "new text" for an annotation without text
        for section in sections:
            texts = [a.text for a in section.figure.layout.annotations]
            assert all(isinstance(t, str) and t.strip() for t in texts), (section.title, texts)


def _entry_path(cache, stage, params):
    """Where the cache keeps (stage, params) for no model: computed once through the cache itself."""
    cache.get(stage, params, None, lambda: {"v": 0}, expect=dict)
    (path,) = [p for p in cache.directory.iterdir() if p.name.startswith(stage)]
    return path


def test_a_planted_pickle_in_the_cache_runs_nothing(tmp_path):
    import torch

    from tvlens.report import CacheWarning, StageCache

    cache = StageCache(str(tmp_path / "cache"))
    path = _entry_path(cache, "profile", {"a": 1})
    key = torch.load(path, weights_only=True)["key"]
    marker = tmp_path / "ran"
    torch.save({"key": key, "value": Payload(marker)}, path)  # the right name and key, a payload inside
    with pytest.warns(CacheWarning, match="unreadable"):
        assert cache.get("profile", {"a": 1}, None, lambda: {"v": 1}, expect=dict) == {"v": 1}
    assert not marker.exists()


def test_a_directory_under_an_entry_name_is_moved_aside_and_the_report_written(tmp_path):
    from tvlens.report import CacheWarning, StageCache

    cache = StageCache(str(tmp_path / "cache"))
    path = _entry_path(cache, "stage", {"a": 1})
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("kept")
    with pytest.warns(CacheWarning, match="not a regular file; moved it to"):
        assert cache.get("stage", {"a": 1}, None, lambda: {"v": 2}, expect=dict) == {"v": 2}
    (aside,) = [p for p in path.parent.iterdir() if ".not-a-cache-entry-" in p.name]
    assert (aside / "inside").read_text() == "kept"  # nothing of the user's is deleted
    assert cache.get("stage", {"a": 1}, None, lambda: {"v": 3}, expect=dict) == {"v": 2}  # cached again


def test_a_cache_write_that_fails_loses_the_entry_not_the_result(tmp_path, monkeypatch):
    import tvlens.report.cache as cache_module
    from tvlens.report import CacheWarning, StageCache

    def full(path, write, argument="path"):
        raise OSError(f"{argument}={str(path)!r}: cannot write it (No space left on device)")

    monkeypatch.setattr(cache_module, "atomic_write", full)
    cache = StageCache(str(tmp_path / "cache"))
    with pytest.warns(CacheWarning, match="could not cache the stage 'stage'.*No space left"):
        assert cache.get("stage", {"a": 1}, None, lambda: {"v": 4}, expect=dict) == {"v": 4}


def test_the_ov_and_key_head_sections_of_one_model_score_the_same_prompts():
    """One user seed, one meaning: the report's OV section and its key-head section score the vector on the same
    held-out prompts (the ``shared`` split), so their zero-shot and injected per-prompt scores agree."""
    from types import SimpleNamespace

    import torch

    from tvlens import zoo
    from tvlens.report import STAGES, Run
    from tvlens.vectors import TaskVector

    config = ReportConfig(models=["perm-mix"], quick=True, seed=5)
    run = Run("perm-mix", config, model=zoo.load("perm-mix"), family=zoo.task("perm-mix"))
    theta = torch.randn(run.model.d_model, generator=torch.Generator().manual_seed(0)) * 2
    run.results["compare"] = SimpleNamespace(vectors={("learned", run.analysis_layer): TaskVector.single(theta, run.analysis_layer)})
    stages = {stage.name: stage for stage in STAGES}
    ov, heads = stages["ov"].compute(run), stages["heads"].compute(run)
    torch.testing.assert_close(ov.reinjection["zero_shot"].values.double(), heads.zero_shot.double())
    torch.testing.assert_close(ov.reinjection["vector"].values.double(), heads.injected.double())
    assert heads.scoring.startswith("shared split")
