"""Worker processes (tvlens._parallel): the pool's size and threads, its refusals, the default count."""

from __future__ import annotations

import os

import pytest
import torch

from tvlens._parallel import MAX_WORKERS, default_workers, process_pool


def test_one_worker_is_this_process():
    with process_pool(1) as pool:
        assert pool is None


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_a_bad_count_is_refused_before_any_process_starts(bad):
    with pytest.raises(ValueError, match=rf"^--workers={bad!r}: expected an int >= 1$"):
        with process_pool(bad, "--workers"):
            pytest.fail("a pool was made")


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 2), (3, 3), (16, MAX_WORKERS)])
def test_the_default_is_one_worker_per_usable_core_up_to_the_cap(monkeypatch, cores, workers):
    """The cores this process may run on (its affinity, not the machine's count), at most the cap."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a machine with more cores than this process may use
    assert default_workers() == workers


@pytest.mark.slow
def test_each_worker_gets_its_share_of_the_threads():
    """Two spawned workers of a process with 2 threads run 1 thread each (4 → 2 each)."""
    saved = torch.get_num_threads()
    try:
        for threads, each in ((2, 1), (4, 2)):
            torch.set_num_threads(threads)
            with process_pool(2) as pool:
                assert {pool.submit(torch.get_num_threads).result() for _ in range(4)} == {each}
    finally:
        torch.set_num_threads(saved)
