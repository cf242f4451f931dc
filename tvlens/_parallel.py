"""Worker processes: one rule for how tvlens spreads independent work over this machine's cores.

The zoo's models are small: one step of a learned vector or one forward of a few hundred prompts is tens of
small matrix products, and torch's intra-op threads share such a product poorly (the claims ledger on 2 cores
runs only ~1.25× faster with 2 threads than with 1). Independent pieces of work (the ledger's models) therefore
run in **processes**, each with its share of the threads, not in one process with all of them:

* :func:`default_workers` — how many processes a job a user waits for starts when not told (one per core the
  process may use, at most :data:`MAX_WORKERS`);
* :func:`process_pool` — a ``spawn`` :class:`~concurrent.futures.ProcessPoolExecutor` whose workers each set
  torch to ``threads // workers`` threads (``None`` for one worker: the work runs in this process). ``spawn``,
  not ``fork``: a forked child of a process whose OpenMP pool already ran may hang in its first parallel
  region.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import torch

from tvlens._checks import check_int

#: The most worker processes started by default (each holds its own torch and models: ~0.5 GiB).
MAX_WORKERS = 4


def set_threads(threads: int | None = None) -> None:
    """torch's intra-op threads: ``threads``, or by default the current count capped at 4 (more only adds
    synchronisation on models this small)."""
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)) if threads is None else threads)


def default_workers() -> int:
    """One worker per core this process may run on, at most :data:`MAX_WORKERS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_WORKERS))


@contextlib.contextmanager
def process_pool(workers: int, argument: str = "workers") -> Iterator[ProcessPoolExecutor | None]:
    """A pool of ``workers`` spawned processes, each with ``max(1, threads // workers)`` torch threads (this
    process's count), shut down on exit (pending work cancelled); ``None`` for one worker."""
    check_int(argument, workers, 1)
    if workers == 1:
        yield None
        return
    threads = max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=set_threads,
                               initargs=(threads,))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


__all__ = ["MAX_WORKERS", "default_workers", "process_pool", "set_threads"]
