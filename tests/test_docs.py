"""The docs' generated blocks are filled and paired, and every one has a script that writes it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- ([\w-]+):(begin|end) -->")


def test_generated_blocks_are_paired_filled_and_written_by_a_script():
    scripts = "\n".join(p.read_text() for p in (ROOT / "docs").glob("make_*.py"))
    found = []
    for page in PAGES:
        text = page.read_text()
        markers = [(m.group(1), m.group(2), m.start(), m.end()) for m in MARKER.finditer(text)]
        assert len(markers) % 2 == 0, f"{page.name}: unpaired generated-block markers"
        for (name, kind, _, stop), (name2, kind2, start2, _) in zip(markers[::2], markers[1::2]):
            assert (kind, kind2, name2) == ("begin", "end", name), f"{page.name}: block {name!r} is not closed"
            body = text[stop:start2].strip()
            assert body and not MARKER.search(body), f"{page.name}: block {name!r} is empty or nested"
            assert f'"{name}"' in scripts, f"{page.name}: no docs/make_*.py writes block {name!r}"
            found.append(name)
    assert {"zoo-table", "measured-001", "measured-propagation", "measured-dynamics"} <= set(found)


def _make_times():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_times", ROOT / "docs" / "make_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_time_check_fails_a_time_the_readme_does_not_state(tmp_path, monkeypatch, capsys):
    """docs/make_times.py --check on a README of known figures (4 min, 90 s): a measured time up to TOLERANCE × the
    stated one passes, one above it fails and names it; without --check the blocks are rewritten from the measured
    seconds, rounded up."""
    import json

    make_times = _make_times()
    readme = tmp_path / "README.md"
    readme.write_text("Tests: <!-- times-tests:begin -->about 4 min on 2 cores<!-- times-tests:end -->.\n"
                      "Report: <!-- times-report:begin -->about 90 s on 2 cores<!-- times-report:end -->.\n")
    monkeypatch.setattr(make_times, "README", readme)
    times = tmp_path / "ci-times.json"
    for measured, code in (({"fast-suite": 2 * 240, "report": 2 * 90}, 0), ({"fast-suite": 2 * 240 + 1}, 1),
                           ({"fast-suite": 10, "report": 2 * 90 + 1}, 1), ({}, 0)):
        times.write_text(json.dumps(measured))
        assert make_times.main([str(times), "--check"]) == code, measured
        out = capsys.readouterr().out
        assert ("does not hold" in out) == bool(code), out
    times.write_text(json.dumps({"fast-suite": 301.0, "report": 61.0}))
    assert make_times.main([str(times)]) == 0
    text = readme.read_text()
    assert (make_times.stated_seconds("times-tests", text), make_times.stated_seconds("times-report", text)) == (360, 65)
    assert make_times.render("times-tests", 61) == "about 65 s on 2 cores"


def test_ci_checks_the_readmes_stated_times():
    """`.ci/run` times the README's two commands' work, writes every key the check reads, and runs the check under
    `set -e` (its failure fails CI); the README states both times in the form the check reads."""
    make_times = _make_times()
    run = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in run
    written = run[run.index("> ci-times.json") - 200:run.index("> ci-times.json")]
    assert all(f'\\"{key}\\"' in written for key in make_times.BLOCKS.values()), written
    assert "python docs/make_times.py --check ci-times.json" in run
    text = (ROOT / "README.md").read_text()
    assert make_times.stated_seconds("times-tests", text) <= 300  # the README's test command in minutes, not hours
    assert make_times.stated_seconds("times-report", text) > 0


def _blocks(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"<!-- ([\w-]+):begin -->(.*?)<!-- \1:end -->", text,
                                                                 flags=re.S)}


def test_generated_numbers_are_current(monkeypatch):
    """docs/make_measured.py's zoo blocks, re-run here (seconds), reproduce docs/zoo.md exactly: the measured
    numbers on the page are the code's today, not a stale copy."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "docs"))
    spec = importlib.util.spec_from_file_location("make_measured", ROOT / "docs" / "make_measured.py")
    make_measured = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_measured)
    fresh = make_measured.zoo_blocks(make_measured.measure_zoo())
    page = _blocks((ROOT / "docs" / "zoo.md").read_text())
    assert set(fresh) <= set(page)
    for name, text in fresh.items():
        assert page[name] == text.strip(), f"docs/zoo.md block {name!r} is stale: run docs/make_measured.py"
    ledger = _blocks((ROOT / "docs" / "studies.md").read_text())[make_measured.LEDGER_BLOCK]
    # the caption, a blank line, the header, the rule, then one row per claim and model (a contrast: one per pair; a
    # training claim: one row per recipe, over its replicates)
    assert ledger.count("\n") + 1 == 4 + sum(len(c.replicate_rows) if c.replicated else len(c.contrast_pairs)
                                             if c.contrast else len(c.models) for c in make_measured.CLAIMS.values())


def test_the_ledger_needs_table_is_the_claims_own():
    """docs/real-models.md's table of which claim needs which model is rendered from the claims' declared needs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_ledger_cost", ROOT / "docs" / "make_ledger_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = _blocks((ROOT / "docs" / "real-models.md").read_text())
    assert page["ledger-needs"] == module.needs_table().strip(), "stale: run docs/make_ledger_cost.py --needs"


def test_every_verdict_in_the_prose_is_the_ledgers():
    """Numbers move prose: wherever a page states a claim's verdict (``claim `NAME` — model: verdict, …``, written
    by docs/make_measured.py), it is the verdict of that claim's row in the ledger table of docs/studies.md, and no
    page speaks of a verdict word the ledger does not use."""
    import re

    from tvlens.studies import CLAIMS

    ledger = _blocks((ROOT / "docs" / "studies.md").read_text())["claims-ledger"]
    table = {}
    for line in ledger.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) == 12 and cells[0] in {c.statement for c in CLAIMS.values()}:
            verdict = re.match(r"\*\*(holds|does not hold|no effect|inconclusive|not testable here)\*\*", cells[11])
            assert verdict, line
            assert cells[2] == ("primary" if next(c for c in CLAIMS.values() if c.statement == cells[0]).primary
                                else "exploratory"), line
            table[(cells[0], cells[3])] = verdict.group(1)
    assert table, "the ledger block holds no rows"
    found = 0
    for page in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        text = page.read_text()
        assert "**mixed**" not in text, f"{page.name}: 'mixed' is no longer a verdict (inconclusive, with a reason)"
        words = "holds|does not hold|no effect|inconclusive|not testable here"
        for claim, listing in re.findall(rf"claim `(\w+)` — ((?:[\w-]+(?: vs [\w-]+)?: (?:{words})(?:, )?)+)", text):
            for model, verdict in re.findall(rf"([\w-]+(?: vs [\w-]+)?): ({words})", listing):
                assert table[(CLAIMS[claim].statement, model)] == verdict, (page.name, claim, model, verdict)
                found += 1
    assert found >= 6, "the pages cite the ledger's verdicts"


def test_no_reading_is_called_answer_free():
    """The state read from the same demonstrations asking about another query can carry *that* query's answer (the
    prediction then equals its answer), so no page, docstring or notebook calls a reading answer-free, except to
    say it is not."""
    import re

    sources = [*PAGES, *sorted((ROOT / "tvlens").rglob("*.py")), *sorted((ROOT / "notebooks").glob("*.ipynb")),
               ROOT / "docs" / "make_measured.py"]
    for path in sources:
        text = " ".join(path.read_text(encoding="utf-8").split())
        for found in re.finditer(r"answer[- ]free", text, flags=re.IGNORECASE):
            before = text[max(0, found.start() - 8): found.start()]
            assert re.search(r"\bnot $", before), f"{path.name}: '…{text[max(0, found.start() - 60):found.end()]}'"
