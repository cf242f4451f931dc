"""The README's time figures, from a timed run of ``.ci/run``.

``.ci/run`` times the README's two commands' main work — the fast test suite and ``tvlens report``
on the default zoo models with an empty cache — and writes the seconds to ``ci-times.json``::

    {"fast-suite": 171.2, "report": 41.0}

Then::

    python docs/make_times.py ci-times.json           # rewrite the README's time blocks from them
    python docs/make_times.py --check ci-times.json   # exit 1 if a stated time does not hold

``--check`` fails when a measured time is more than twice the README's stated figure (a loaded
machine is slower; a suite that more than doubled is a regression), and prints both.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _blocks import replace_blocks  # noqa: E402

README = Path(__file__).parents[1] / "README.md"
#: block name → key in ci-times.json
BLOCKS = {"times-tests": "fast-suite", "times-report": "report"}
STATED = re.compile(r"about (\d+) (min|s) on 2 cores")
#: a measured time may exceed the stated one by this factor before --check fails
TOLERANCE = 2.0


def stated_seconds(name: str, text: str) -> float:
    """The seconds the README states in block ``name``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"README.md: block {name!r} is missing")
    match = STATED.search(text[start:stop])
    if match is None:
        raise ValueError(f"README.md: block {name!r} states no time ('about N min|s on 2 cores')")
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def render(name: str, seconds: float) -> str:
    """How block ``name`` states ``seconds``: in seconds (a multiple of 5) under two minutes, else in minutes;
    rounded up, because a stated time is a promise."""
    if name not in BLOCKS:
        raise KeyError(f"name={name!r}: expected one of {list(BLOCKS)}")
    if seconds < 120:
        return f"about {max(5, 5 * math.ceil(seconds / 5))} s on 2 cores"
    return f"about {math.ceil(seconds / 60)} min on 2 cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("times", help="ci-times.json written by .ci/run")
    parser.add_argument("--check", action="store_true", help="check the README instead of rewriting it")
    args = parser.parse_args(argv)
    measured = json.loads(Path(args.times).read_text())
    if not args.check:
        replace_blocks(README, {name: render(name, measured[key]) for name, key in BLOCKS.items() if key in measured})
        return 0
    text, failed = README.read_text(), False
    for name, key in BLOCKS.items():
        if key not in measured:
            continue
        stated = stated_seconds(name, text)
        ok = measured[key] <= TOLERANCE * stated
        failed |= not ok
        print(f"time {key} {measured[key]:.0f}s (README states {stated:.0f}s){'' if ok else ' — does not hold'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
