"""Side-by-side timing helpers for the benchmarks: interleaved repeats, median seconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def compare(candidates: dict[str, Callable[[], object]], repeats: int = 30, warmup: int = 3) -> dict[str, float]:
    """Median wall time (seconds) of each callable, measured interleaved so drift hits all alike."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}
