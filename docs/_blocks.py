"""Rewrite generated blocks inside hand-written pages.

A page keeps its prose by hand and marks each generated part with a pair of HTML comments,
``<!-- NAME:begin -->`` … ``<!-- NAME:end -->``; the scripts in ``docs/`` rewrite only the text
between them, so every measured number on a page comes from a script.
"""

from __future__ import annotations

from pathlib import Path

from tvlens._io import atomic_write_text


def replace_blocks(path: Path, blocks: dict[str, str]) -> None:
    """Replace the text between each block's markers in ``path`` (one atomic write for all of them).

    Raises:
        ValueError: a block's markers are missing from the page, or out of order.
    """
    text = path.read_text()
    for name, content in blocks.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"{path}: block {name!r} needs the markers {begin!r} … {end!r}, in that order")
        # a block inside a sentence stays inline; a block of its own keeps its lines
        edge = "" if "\n" not in text[start + len(begin):stop] else "\n"
        text = text[:start + len(begin)] + edge + content.strip("\n") + edge + text[stop:]
    atomic_write_text(path, text)
