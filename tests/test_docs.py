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
