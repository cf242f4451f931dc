"""The one integer check: every count, size and index an argument or config field takes.

``isinstance(True, int)`` holds in Python, so a bare ``isinstance(x, int)`` lets ``n_prompts=True``
through as 1; :func:`check_int` refuses bools and names the argument, the value and what it expected in
one line, before any work.
"""

from __future__ import annotations

import numbers


def check_int(name: str, value: object, minimum: int = 0, why: str = "") -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``; else a one-line ``ValueError``
    ``"{name}={value!r}: expected an int >= {minimum}"`` (with ``why`` in parentheses)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an int >= {minimum}" + (f" ({why})" if why else ""))
    return int(value)
