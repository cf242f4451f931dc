"""Worker processes (tvlens._parallel): the pool's size and threads, its refusals, the default count."""

from __future__ import annotations

import contextlib
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


def _descendants(pid: int) -> set[int]:
    """The live processes below ``pid`` (read from /proc; a zombie counts as gone)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_no_worker_outlives_its_run(signal_name):
    """``tvlens claims --workers 2`` killed by SIGKILL (no cleanup of its own), ended by SIGTERM or interrupted by
    SIGINT (sent to the parent alone): none of its processes (the workers, multiprocessing's resource tracker) is
    alive 10 s later."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "tvlens.cli", "claims", "--model", "perm-mix", "--model",
                             "token-offset", "--workers", "2", "--tasks", "2", "--seeds", "0", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline, seen = time.monotonic() + 120, set()
        while time.monotonic() < deadline and len(seen) < 3:  # two workers and the resource tracker
            seen |= _descendants(proc.pid)
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        assert len(seen) >= 3, seen
        time.sleep(1.0)  # the workers are measuring
        seen |= _descendants(proc.pid)
        os.kill(proc.pid, getattr(signal, signal_name))
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(seen), f"alive 10 s after {signal_name}: {_alive(seen)}"
        if signal_name != "SIGKILL":  # ended by tvlens itself: one line, the interruption's exit code
            assert proc.returncode == 130 and proc.stderr.read().decode().strip() == "tvlens: interrupted"
    finally:
        for pid in _alive(_descendants(proc.pid)) | {proc.pid}:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        proc.wait()
