"""The claims ledger end to end: as it runs, against the same ledger with every vector learned and every score
made one call at a time.

* **as it runs** (``claims_ledger``, in-process): the LTVs of all of a model's units (tasks × seeds × layers) are
  learned side by side (``learn_task_vectors_many``: one prefix per split for all of them), and each unit's test
  prompts run once into a query engine on which every vector and control it scores is a suffix run;
* **one call at a time**, the ledger's earlier way, kept reachable here: each LTV is its own
  ``learn_task_vector`` call (its own train / dev / test prefixes), each score its own ``evaluate`` call (the
  unit's prompts run into a query engine of its own per vector), and a TVP profile's other-query prompts run as
  a forward of their own (not as a suffix on the prompts' engine).

* **on worker processes**, as ``tvlens report`` runs it: the same in-process ledger, its models spread over one
  spawned worker per core (``tvlens._parallel``), each worker with its share of the threads.

The rest (vanilla sweeps, function vectors, OV, key heads, the rest of the TVP profiles, maps) is the same code on
every side. Each runs once, every claim on every zoo model, and the effects and controls of the tables are compared
(the learned vectors agree to float tolerance; an accuracy at a near tie may still move by one prompt). Prints
``ratio ledger_vs_one_at_a_time X`` (both in this process) and ``ratio ledger_workers_vs_one_at_a_time X`` (the
report's way against the one-call-at-a-time ledger in this process), and, for the two in-process runs, the seconds
spent learning vectors, scoring and in the rest: the rest bounds the ratio that faster learning and scoring alone
could reach (``one call at a time / the rest``).

``--config reduced`` (the default, as CI runs it: 2 tasks × 1 seed per model) or ``--config default`` (the ledger
as ``tvlens report`` runs it, :class:`~tvlens.studies.LedgerConfig`'s defaults: 8 tasks × 1 seed on each of a
family's three trained models).

``--against-previous`` times the report's ledger against the design before families were replicated (one trained
model per family, 5 tasks × 3 seeds), both in this process, and prints ``ratio ledger_replicated_vs_previous X``
(> 1: the replicated ledger costs more; about 10 min on 2 cores, not run by CI).

    python benchmarks/bench_ledger.py [--config default | --against-previous]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare  # noqa: E402

from tvlens import zoo  # noqa: E402
from tvlens._parallel import default_workers, process_pool  # noqa: E402
from tvlens.scoring import evaluate  # noqa: E402
from tvlens.studies import LedgerConfig, claims_ledger  # noqa: E402
from tvlens.studies.ledger import catalog  # noqa: E402 - where a family's trained models are read
from tvlens.studies.ledger import unit as claims  # noqa: E402 - the workbench module: what the units call
from tvlens.vectors import learn_task_vector  # noqa: E402

CONFIGS = {"reduced": LedgerConfig(n_tasks=2, seeds=(0,)), "default": LedgerConfig()}
train_module = importlib.import_module("tvlens.training.train")  # the module (the package exports train())


@contextlib.contextmanager
def one_call_at_a_time() -> Iterator[None]:
    """The ledger's units learn each vector in its own ``learn_task_vector`` call and make each score with its own
    ``evaluate`` call, and the TVP profiles run the other-query prompts from their first column (restored on
    exit)."""
    unit = claims.Workbench
    saved = unit.__init__, unit.score, claims.learn_task_vectors, train_module._trailing_difference

    def init(self, *args, **kwargs) -> None:
        saved[0](self, *args, **kwargs)
        self.together = False  # no learning side by side with the model's other units

    def learn_each(model, task, layers, **options):
        return {layer: learn_task_vector(model, task, layer, **options) for layer in layers}

    def score(self, mode, vector=None, batch=None, base="zero_shot", query_at=None) -> float:
        return evaluate(self.model, self.task, mode, vector, batch=self.test if batch is None else batch, base=base,
                        query_at=query_at, progress=False).mean

    unit.__init__, unit.score, claims.learn_task_vectors = init, score, learn_each
    train_module._trailing_difference = lambda batch, source: None  # every source a forward of its own
    try:
        yield
    finally:
        unit.__init__, unit.score, claims.learn_task_vectors, train_module._trailing_difference = saved


@contextlib.contextmanager
def parts(seconds: Counter) -> Iterator[None]:
    """Adds to ``seconds`` the time spent learning vectors (``"learning"``) and scoring (``"scoring"``) by the
    ledger's units (the outermost call only; restored on exit)."""
    depth = [0]

    def timed(part: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    seconds[part] += time.perf_counter() - start

        return wrapper

    saved = claims.learn_task_vectors_many, claims.learn_task_vectors, claims.Workbench.score
    claims.learn_task_vectors_many = timed("learning", saved[0])
    claims.learn_task_vectors = timed("learning", saved[1])
    claims.Workbench.score = timed("scoring", saved[2])
    try:
        yield
    finally:
        claims.learn_task_vectors_many, claims.learn_task_vectors, claims.Workbench.score = saved


def _compared(a, b) -> tuple[float, int, int]:
    """The largest change of an effect or control between two tables, and on how many of the measured rows the
    verdicts are equal."""
    rows = [(x, y) for x, y in zip(a.rows, b.rows) if not math.isnan(x.mean)]
    assert [(x.claim, x.model) for x, _ in rows] == [(y.claim, y.model) for _, y in rows]
    moved = max(max(abs(x.mean - y.mean), abs(x.control - y.control)) for x, y in rows)
    return moved, sum(x.verdict == y.verdict for x, y in rows), len(rows)


#: The ledger as the report ran it before families were replicated: each family one trained model (its flagship;
#: linear regression's the shipped ``linear-regression``), 5 tasks × 3 seeds.
PREVIOUS = LedgerConfig(n_tasks=5, seeds=(0, 1, 2))


@contextlib.contextmanager
def one_model_per_family() -> Iterator[None]:
    """Every family measured on one trained model, the previous design (restored on exit)."""
    saved = catalog.FAMILY_MODELS
    catalog.FAMILY_MODELS = {}
    try:
        yield
    finally:
        catalog.FAMILY_MODELS = saved


def against_previous() -> None:
    """The report's ledger (every family on its three trained models, 8 tasks × 1 seed each) against the previous
    design (one model per family, 5 tasks × 3 seeds), both in this process: what the replicated ledger costs."""
    torch.set_num_threads(2)
    zoo.load("perm-mix")
    units = {}

    def run(name: str, config: LedgerConfig) -> Callable[[], None]:
        def go() -> None:
            table = claims_ledger(config, progress=False)
            units[name] = sum(r.n_models * r.n_tasks * r.n_seeds for r in table.rows if not math.isnan(r.mean))
        return go

    def previous() -> None:
        with one_model_per_family():
            run("previous", PREVIOUS)()

    times = compare({"previous": previous, "replicated": run("replicated", LedgerConfig())}, repeats=1, warmup=0)
    print(f"claims ledger in this process: previous design (one model per family, 5 tasks x 3 seeds) "
          f"{times['previous']:.1f} s over {units['previous']} row units, replicated (3 models per family, 8 tasks x "
          f"1 seed) {times['replicated']:.1f} s over {units['replicated']} row units")
    print(f"ratio ledger_replicated_vs_previous {times['replicated'] / times['previous']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="reduced",
                        help="reduced: 2 tasks x 1 seed per model (CI); default: the report's ledger (8 x 1)")
    parser.add_argument("--against-previous", action="store_true",
                        help="time the report's ledger against the previous one-model-per-family design instead")
    args = parser.parse_args()
    if args.against_previous:
        against_previous()
        return
    config = CONFIGS[args.config]
    torch.set_num_threads(2)
    tables = {}
    spent = {"ledger": Counter(), "apart": Counter()}
    workers = default_workers()

    def as_it_runs() -> None:
        with parts(spent["ledger"]):
            tables["ledger"] = claims_ledger(config, progress=False)

    def apart() -> None:
        with one_call_at_a_time(), parts(spent["apart"]):
            tables["apart"] = claims_ledger(config, progress=False)

    def on_workers() -> None:
        with process_pool(workers) as pool:
            tables["workers"] = claims_ledger(config, progress=False, executor=pool)

    zoo.load("perm-mix")  # TransformerLens' first model build imports its bridge (seconds): before any timing
    times = compare({"apart": apart, "ledger": as_it_runs, "workers": on_workers}, repeats=1, warmup=0)
    failed = {name: table.errors for name, table in tables.items() if table.errors}
    if failed:  # a side whose models failed measured less: its time says nothing
        raise SystemExit(f"bench_ledger: models failed, no ratio: {failed}")
    for name, label in (("ledger", "as it runs in this process"), ("workers", f"on {workers} worker processes")):
        moved, same, n = _compared(tables[name], tables["apart"])
        print(f"claims ledger, {len(config.seeds)} seeds x {config.n_tasks} tasks per model, every claim: one call "
              f"at a time {times['apart']:.1f} s, {label} {times[name]:.1f} s, {times['apart'] / times[name]:.2f}x; "
              f"largest change of an effect or control {moved:.2e}; verdicts equal on {same} of {n} rows")
    moved, same, n = _compared(tables["workers"], tables["ledger"])
    print(f"worker processes vs this process: largest change {moved:.2e}, verdicts equal on {same} of {n} rows")
    for side, label in (("apart", "one call at a time"), ("ledger", "as it runs")):
        rest = times[side] - spent[side]["learning"] - spent[side]["scoring"]
        print(f"{label}: learning {spent[side]['learning']:.1f} s, scoring {spent[side]['scoring']:.1f} s, "
              f"the rest {rest:.1f} s")
    rest = times["ledger"] - spent["ledger"]["learning"] - spent["ledger"]["scoring"]
    print(f"with learning and scoring free, the in-process ratio could reach at most {times['apart'] / rest:.2f}x")
    print(f"ratio ledger_vs_one_at_a_time {times['apart'] / times['ledger']:.2f}")
    print(f"ratio ledger_workers_vs_one_at_a_time {times['apart'] / times['workers']:.2f}")
    print("goal: >= 4x")


if __name__ == "__main__":
    main()
