"""Progress bars: one rule for every long call in tvlens.

Every public function that can take seconds has ``progress: bool = True`` and draws its bar through
:func:`progress_bar`:

* a bar appears only after half a second (quick calls stay silent) and, for a step inside a larger job,
  vanishes when done (``keep=False``); the jobs a user starts and waits for — training, the report — keep
  theirs as a record (``keep=True``);
* a tvlens function that calls another passes ``progress=False`` (or its own ``progress`` where the inner call
  *is* the work), so a job shows one bar per level a user cares about, never a bar per inner step;
* the command line passes ``progress=not --quiet``; ``TQDM_DISABLE=1`` silences every bar.

``tqdm.auto`` draws a widget in Jupyter and text in a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

#: Seconds before a bar appears.
DELAY = 0.5


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str, progress: bool, total: int | None = None,
                 keep: bool = False, **options: Any) -> tqdm:
    """A tqdm bar drawn by the one rule above (``options``: tqdm's own, e.g. ``initial``)."""
    return tqdm(iterable, total=total, desc=desc, disable=not progress, leave=keep, delay=0.0 if keep else DELAY,
                dynamic_ncols=True, **options)


__all__ = ["DELAY", "progress_bar"]
