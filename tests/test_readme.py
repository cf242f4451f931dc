"""The README's Python snippets run as written (in a fresh interpreter, in a temporary directory)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_snippets_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 1
    script = tmp_path / "readme.py"
    script.write_text("\n".join(blocks) + "\nprint('README-OK', table[1]['accuracy'])\n")
    proc = subprocess.run([sys.executable, "-W", "ignore", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "README-OK 1.0" in proc.stdout  # the ICL row of the comparison on perm-mix
    assert (tmp_path / "perm0.safetensors").is_file()


def test_readme_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert lines[0] == "```bash"
    assert lines[1].startswith("python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && ")
    assert lines[1].endswith(".venv/bin/tvlens report")
    assert lines[2] == ".venv/bin/python -m pytest -q"
    assert lines[3] == "```"
