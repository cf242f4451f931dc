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

**No worker outlives its run.** Each worker watches the process that started it (a daemon thread that checks
its parent's pid every :data:`WATCH_SECONDS`) and exits at once when that parent is gone — killed by SIGKILL or
SIGTERM, which run no cleanup of the parent's. When the ``with`` block of :func:`process_pool` ends by an
exception (Ctrl-C included), the workers are terminated instead of being waited for; on a normal exit the
pool shuts down as usual.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import torch

from tvlens._checks import check_int

#: The most worker processes started by default (each holds its own torch and models: ~0.5 GiB).
MAX_WORKERS = 4

#: How often a worker checks that the process that started it is alive (seconds).
WATCH_SECONDS = 0.5


def set_threads(threads: int | None = None) -> None:
    """torch's intra-op threads: ``threads``, or by default the current count capped at 4 (more only adds
    synchronisation on models this small)."""
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)) if threads is None else threads)


def _watch_parent(parent: int) -> None:
    """Exit this process (no cleanup: its work belongs to a run that is gone) once ``parent`` is not its parent."""
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


def _start_worker(threads: int, parent: int) -> None:
    """A pool worker's initializer: its share of the threads, and a watch on the process that started it."""
    set_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent,), name="tvlens-parent-watch", daemon=True).start()


def terminate(pool: ProcessPoolExecutor) -> None:
    """End ``pool`` now: pending work cancelled, running workers terminated (SIGTERM, then SIGKILL after 2 s)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor keeps them by pid
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + 2.0
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)


def default_workers() -> int:
    """One worker per core this process may run on, at most :data:`MAX_WORKERS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_WORKERS))


@contextlib.contextmanager
def process_pool(workers: int, argument: str = "workers") -> Iterator[ProcessPoolExecutor | None]:
    """A pool of ``workers`` spawned processes, each with ``max(1, threads // workers)`` torch threads (this
    process's count) and a watch on this process; ``None`` for one worker. On a normal exit the pool shuts down
    (pending work cancelled); on an exception (``KeyboardInterrupt`` included) its workers are terminated."""
    check_int(argument, workers, 1)
    if workers == 1:
        yield None
        return
    threads = max(1, torch.get_num_threads() // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(threads, os.getpid()))
    try:
        yield pool
    except BaseException:
        terminate(pool)
        raise
    else:
        pool.shutdown(cancel_futures=True)


__all__ = ["MAX_WORKERS", "WATCH_SECONDS", "default_workers", "process_pool", "set_threads", "terminate"]
