"""The ``tvlens`` command line.

``tvlens demo`` trains a small transformer on a built-in ICL task (about a minute on two CPU
cores, with a progress bar) and prints what it learned: n-shot ICL accuracy against zero-shot
accuracy, and the TVP-mode accuracy at every layer (the query alone, with the hidden state of
its own ICL prompt put in at that layer).

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tvlens._io import check_output_dir, check_output_file, is_stdout

# Heavy libraries (torch, TransformerLens, plotly) are imported inside the commands, so that
# `tvlens --help` and argument errors answer at once.


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


#: The seeds every command takes: what numpy's and torch's generators accept after tvlens adds its offsets.
_SEED_MAX = 2**32 - 1


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, {_SEED_MAX}], got {text!r}") from None
    if not 0 <= value <= _SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, {_SEED_MAX}], got {text}")
    return value


def _plus_minus(mean: float, stderr: float, n: int) -> str:
    """``mean ± stderr``, with ``n/a`` for the standard error of fewer than two prompts."""
    return f"{mean:.4f} ± {stderr:.4f}" if n >= 2 else f"{mean:.4f} ± n/a (one prompt)"


def _set_threads(threads: int | None = None) -> None:
    from tvlens._parallel import set_threads  # imported here: `tvlens --help` does not import torch

    set_threads(threads)


def _demo(args: argparse.Namespace) -> int:
    from tvlens.models import HookedModel, ModelConfig
    from tvlens.models.io import save_model_or_keep
    from tvlens.scoring import evaluate
    from tvlens.tasks import PermutationMixture, Splits
    from tvlens.training import TrainConfig, train

    if args.out:
        check_output_file(args.out, "--out")
    _set_threads()
    task = PermutationMixture(n_symbols=args.symbols, n_perms=args.perms, seed=args.seed)
    n_shots = args.shots
    config = ModelConfig(
        n_layers=args.layers, d_model=args.d_model, n_heads=4, d_vocab=task.d_vocab,
        n_ctx=task.prompt_length(n_shots), seed=args.seed,
    )
    model = HookedModel.from_config(config)
    print(
        f"tvlens demo: training a {config.n_layers}-layer transformer (d_model={config.d_model}, "
        f"TransformerLens {model.line}.x) on '{task.name}' — {task.n_perms} permutations of "
        f"{task.n_symbols} symbols, {n_shots}-shot prompts like: "
        f"{task.decode(Splits(args.seed).sample(task, 'aside', 1, min(2, n_shots)).inputs[0])}"
    )
    result = train(
        model, task,
        TrainConfig(steps=args.steps, batch_size=64, n_shots=n_shots, lr=3e-3, seed=args.seed,
                    eval_every=max(1, args.steps // 4), eval_prompts=256),
        target=0.99,
    )
    # the model is scored on every query symbol (the ``aside`` split): no vector is made here to hold out from
    scores = {mode: evaluate(model, task, mode, n_prompts=512, n_shots=n_shots, seed=args.seed, split="aside",
                             progress=False) for mode in ("icl", "zero_shot")}
    icl, zero = scores["icl"], scores["zero_shot"]
    print(f"\ntrained {result.steps_done} steps in {result.seconds:.0f} s")
    print(f"  {f'{n_shots}-shot ICL accuracy':<20}: {icl.mean:6.1%} ± {icl.stderr:.1%}")
    print(f"  {'zero-shot accuracy':<20}: {zero.mean:6.1%} ± {zero.stderr:.1%}   "
          f"(chance over labels {1 / task.n_symbols:.1%}; guessing among the {task.n_perms} permutations "
          f"{1 / task.n_perms:.1%})")
    tvp = result.final["tvp"]
    print("  TVP mode (query + its own ICL hidden state, per layer): "
          + ", ".join(f"L{layer}: {acc:.1%}" for layer, acc in enumerate(tvp)))
    if args.out:
        extra = {"task": task.to_dict(), "history": result.history}
        path = save_model_or_keep(model, args.out, extra, "--out")  # an OSError says where the model is kept
        print(f"saved the model to {path}")
    return 0


def _zoo_list(args: argparse.Namespace) -> int:
    from tvlens import zoo

    for name in zoo.list():
        try:
            card = zoo.info(name)
            final = card["final_metrics"]
            metric = final.get("metric", "")
            numbers = f"ICL {metric} {final['icl']:.3f}, zero-shot {final['zero_shot']:.3f}"
        except FileNotFoundError:
            numbers = "not trained (tvlens zoo train " + name + ")"
        print(f"{name:<26} {zoo.spec(name).description}\n{'':<26} {numbers}")
    return 0


def _zoo_train(args: argparse.Namespace) -> int:
    from tvlens import zoo
    names = zoo.list() if args.name == "all" else [args.name]
    for name in names:
        zoo.spec(name)  # fail on a bad name before any work
    if args.into_package and args.out:
        raise ValueError("--out and --into-package: pick one (where to write the trained weights)")
    directory = zoo.WEIGHTS_DIR if args.into_package else Path(args.out) if args.out else zoo.user_dir()
    check_output_dir(directory, "--out" if args.out else "the zoo directory")
    _set_threads(args.threads)
    for name in names:
        print(f"training zoo model {name!r}: {zoo.spec(name).description}")
        model, result = zoo.train_model(name, directory, steps=args.steps)
        final = result.final
        print(f"  {result.steps_done} steps in {result.seconds:.0f} s: ICL {final['metric']} {final['icl']:.4f}, "
              f"zero-shot {final['zero_shot']:.4f}, TVP by layer {[round(x, 3) for x in final['tvp']]}")
        print(f"  wrote {zoo.weights_path(name, directory)}")
        if not args.into_package:
            print(f"  load it with tvlens.zoo.load({name!r}, directory={str(directory)!r}); "
                  "the shipped weights are unchanged")
    return 0


def _template(args: argparse.Namespace) -> str:
    """``--template`` as the user meant it (checked): a shell passes 'Q: {x}\\nA: {y}' with a backslash and an n,
    for a line break."""
    from tvlens.tasks.text import check_template

    args.template = args.template.replace("\\n", "\n").replace("\\t", "\t")
    check_template(args.template, "--template")
    return args.template


def _subject(args: argparse.Namespace) -> Any:
    """The model a command works on (``--model``: a zoo name, a Hugging Face directory with ``--tasks``, or a tvlens
    model file; :func:`tvlens.subjects.subject`), checked before anything loads."""
    from tvlens.subjects import subject

    if getattr(args, "_subject", None) is None:
        _template(args)
        names = None if args.tasks is None else tuple(t.strip() for t in args.tasks.split(",") if t.strip())
        if args.tasks is not None and not names:
            raise ValueError(f"--tasks={args.tasks!r}: expected comma-separated word-pair task names or CSV files")
        args._subject = subject(args.model, names, template=args.template, argument="--model",
                                tasks_argument="--tasks")
    return args._subject


def _model_reads(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """What a model command reads of ``--model`` (a zoo model's weights and card, the directory, the file) and of
    ``--tasks`` (CSV files): none of them may be its output."""
    reads: list[tuple[str, Any]] = [("--model", path) for path in _subject(args).reads()]
    return reads + [("--tasks", name.strip()) for name in (args.tasks or "").split(",")
                    if name.strip().lower().endswith(".csv")]


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model and the task (one task of its family, ``--task-id``) a command works on; ``args.shots`` becomes
    the prompts' demonstrations (:meth:`tvlens.subjects.Subject.n_shots`: a zoo model's training prompts, a word-pair
    family's default)."""
    from tvlens.tasks.text import TextTasks, check_enough_pairs

    source = _subject(args)
    if source.words is not None:
        check_enough_pairs(source.words, args.shots or TextTasks.default_n_shots, "--tasks")
    model = source.load()
    family = source.family(model)
    task = source.task(family, args.task_id, "--task-id")
    args.shots = source.n_shots(family, args.shots)
    return model, task


def _vector_extract(args: argparse.Namespace) -> int:
    from tvlens.vectors.bench import METHODS, Bench

    extracted = [name for name, m in METHODS.items() if not m.learned and m.per_layer]
    if args.method not in extracted:
        raise ValueError(f"method={args.method!r}: expected a method that is extracted at one layer, one of "
                         f"{extracted} (a learned one: 'tvlens vector learn')")
    check_output_file(args.out, "--out", reads=_model_reads(args))
    model, task = _load(args)
    if args.layer is not None:
        model.check_layer(args.layer, "--layer")
    bench = Bench(model, task, seed=args.seed, n_shots=args.shots, progress=not args.quiet)
    tv = bench.vector(args.method, args.layer)  # no layer: the method's own, chosen on dev prompts
    layer = tv.layers[0]
    path = tv.save(args.out, "--out")
    print(f"{args.method} task vector of {args.model} (task {args.task_id}, {args.shots}-shot prompts) at layer "
          f"{layer}: wrote {path}")
    return 0


def _vector_learn(args: argparse.Namespace) -> int:
    from tvlens.vectors import learn_task_vector

    check_output_file(args.out, "--out", reads=_model_reads(args))
    model, task = _load(args)
    layer = model.check_layer(args.layer, "--layer")
    try:
        positions: Any = "last" if args.position == "last" else int(args.position)
    except ValueError:
        raise ValueError(f"--position={args.position!r}: expected 'last' or an integer position") from None
    tv, result = learn_task_vector(model, task, args.layer, positions, base=args.base, n_shots=args.shots,
                                   progress=not args.quiet, lr=args.lr, epochs=args.epochs, seed=args.seed)
    path = tv.save(args.out, "--out")
    print(f"learned task vector of {args.model} (task {args.task_id}) at layer {layer}, position {positions}: "
          f"held-out test {result.test.metric} "
          f"{_plus_minus(result.test.mean, result.test.stderr, result.test.values.numel())}; "
          f"wrote {path}")
    return 0


def _read_vector(args: argparse.Namespace, model: Any, task: Any, split: str = "shared") -> Any:
    """The ``--vector`` file, checked against the model (its fingerprint) and, where ``split`` holds content out,
    against ``--seed`` (a vector is scored with the seed it was made with), before any scoring."""
    from tvlens.tasks.splits import Splits
    from tvlens.vectors import TaskVector

    if Path(args.vector).is_dir():
        raise ValueError(f"--vector={args.vector!r}: is a directory; expected a task-vector .safetensors file")
    if not Path(args.vector).is_file():
        raise FileNotFoundError(f"--vector={args.vector!r}: no such file (make one with `tvlens vector learn`)")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        vector = TaskVector.load(args.vector, model=model, strict=not args.allow_other_model)
    splits = Splits(args.seed)
    if splits.block(split) is not None:
        try:
            splits.check_made_with(vector, task)
        except ValueError as error:
            raise ValueError(f"--{error}".replace("expected seed=", "expected --seed=")) from None
    return vector


def _evaluate(args: argparse.Namespace) -> int:
    from tvlens.scoring import evaluate
    from tvlens.tasks.splits import Splits

    try:
        Splits.check_split(args.split)  # the one check of a split's name, before the model loads
    except ValueError as error:
        raise ValueError(f"--{error}") from None
    model, task = _load(args)
    vector = _read_vector(args, model, task, args.split) if args.vector else None
    modes = ["zero_shot", "icl"] + (["injected"] if vector is not None else [])
    print(f"{args.model}, task {args.task_id}: {args.prompts} prompts of the {args.split!r} split, "
          f"{args.shots}-shot ICL prompts")
    for mode in modes:
        result = evaluate(model, task, mode, vector if mode == "injected" else None, n_prompts=args.prompts,
                          n_shots=args.shots, seed=args.seed, split=args.split, progress=not args.quiet)
        n = result.values.numel()
        print(f"{mode:<10} {result.metric} {_plus_minus(result.mean, result.stderr, n)} (n={n})")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from tvlens.analysis import key_head_analysis, linear_dynamics, ov_decomposition

    model, task = _load(args)
    vector = _read_vector(args, model, task)
    if args.analysis == "ov":
        result = ov_decomposition(model, task, vector, n_prompts=args.prompts, seed=args.seed)
        for key, value in result.summary().items():
            print(f"{key:<20} {value:.4f}")
        print("contribution norm per head [layer × head]:")
        print(result.contribution_norm)
    elif args.analysis == "heads":
        result = key_head_analysis(model, task, vector, n_prompts=args.prompts, seed=args.seed)
        print(f"key heads: {result.key_heads}")
        for key, value in result.summary().items():
            print(f"{key:<24} {value:.4f}")
    else:
        result = linear_dynamics(model, task, vector, n_prompts=min(args.prompts, 32), seed=args.seed,
                                 progress=not args.quiet)
        for row in result.to_records():
            print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        print(f"injected {result.injected.mean:.3f}, W·θ at the final stream {result.final_direct.mean:.3f}, "
              f"zero-shot {result.zero_shot.mean:.3f}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from tvlens.report import ReportConfig, build_report, write_report

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ValueError(f"--models={args.models!r}: expected a comma-separated list of zoo model names")
    reads = [("--models", model) for model in models]
    if not args.no_cache:
        try:
            check_output_dir(args.cache_dir, "--cache-dir", reads=reads)
        except PermissionError as error:
            raise PermissionError(f"{error}; choose another --cache-dir, or run with --no-cache") from None
        reads.append(("--cache-dir", args.cache_dir))
    check_output_file(args.out, "--out", stdout=True, reads=reads)
    config = ReportConfig(models=models, quick=args.quick, cache_dir=None if args.no_cache else args.cache_dir,
                          studies=not args.no_studies, seed=args.seed, workers=args.workers)
    report = build_report(config, progress=not args.quiet)
    path = write_report(report, args.out)
    where = "the report to standard output" if is_stdout(args.out) else path
    print(f"wrote {where} ({sum(len(s) for _, s in report.sections)} figures, {report.seconds:.0f} s, "
          f"{report.cache_hits} stages from the cache)", file=sys.stderr if is_stdout(args.out) else sys.stdout)
    return 0


def _claims_tasks(text: str | None) -> tuple[int | None, tuple[str, ...] | None]:
    """``--tasks``: a count of tasks of each zoo family, or comma-separated word-pair task names / CSV files."""
    if text is None:
        return None, None
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise ValueError(f"--tasks={text!r}: expected a count (zoo families) or comma-separated word-pair task names")
    if len(items) == 1 and items[0].lstrip("-").isdigit():
        count = int(items[0])
        if count < 1:
            raise ValueError(f"--tasks={text!r}: expected a positive count of tasks or word-pair task names")
        return count, None
    return None, items


def _claims(args: argparse.Namespace) -> int:
    from tvlens._io import atomic_write_text
    from tvlens.studies.ledger import LedgerConfig, claims_ledger
    from tvlens.subjects import subject

    count, names = _claims_tasks(args.tasks)
    if args.out:  # neither a model nor a task file of this run
        reads = [("--model", model) for model in args.model or ()]
        reads += [("--tasks", name) for name in names or () if name.lower().endswith(".csv")]
        check_output_file(args.out, "--out", stdout=True, reads=reads)
    _template(args)
    claims = None
    if args.claims is not None:
        claims = tuple(c.strip() for c in args.claims.split(",") if c.strip())
        if not claims:
            raise ValueError(f"--claims={args.claims!r}: expected comma-separated claim names "
                             "(see tvlens.studies.CLAIMS; leave it out to measure every claim)")
    try:
        seeds = LedgerConfig.seeds if args.seeds is None else tuple(_seed(s) for s in args.seeds.split(","))
    except argparse.ArgumentTypeError:
        raise ValueError(f"--seeds={args.seeds!r}: expected comma-separated integers in [0, {_SEED_MAX}], "
                         "e.g. 0,1,2") from None
    if names is not None and not args.model:
        raise ValueError(f"--tasks={args.tasks!r}: word-pair tasks need --model DIR (a Hugging Face model); the zoo "
                         "ledger takes a count of tasks of each zoo family")
    if args.whole_answers and not args.model:
        raise ValueError("--whole-answers: the zoo's answers are one token each; expected --model DIR with "
                         "word-pair --tasks")
    config = LedgerConfig(n_tasks=count or LedgerConfig.n_tasks, seeds=seeds, n_prompts=args.prompts,
                          n_shots=args.shots, claims=claims, whole_answers=args.whole_answers)
    # every model checked (directory, task names, --tasks on a zoo model) before any model loads
    models = [subject(model, names, template=args.template, dtype=args.dtype, argument="--model",
                      tasks_argument="--tasks") for model in args.model] if args.model else None
    from tvlens.tasks.text import TextTasks, check_enough_pairs

    for s in models or ():
        if s.words is not None:
            check_enough_pairs(s.words, args.shots or TextTasks.default_n_shots, "--tasks")
    from tvlens._parallel import process_pool
    from tvlens.studies.ledger import ModelsFailed

    _set_threads()
    try:
        with process_pool(args.workers, "--workers") as executor:
            ledger = claims_ledger(config, progress=not args.quiet, models=models, executor=executor)
    except ModelsFailed as error:
        raise ValueError(str(error)) from None
    table = ledger.to_markdown()
    if not is_stdout(args.out):  # `--out -` prints it once
        print(table)
    if args.out:
        atomic_write_text(args.out, table + "\n", "--out")
    if ledger.errors:  # the other models' rows are printed above; the run did not measure everything
        raise ValueError("; ".join(f"model {name!r} failed: {why}" for name, why in ledger.errors.items()))
    return 0


def _common(parser: argparse.ArgumentParser, vector: bool | None = False) -> None:
    """The options every model command shares; ``vector``: True (required --vector), None (optional), False."""
    parser.add_argument("--model", default="perm-mix",
                        help="a zoo model name, a Hugging Face model directory (with --tasks) or a tvlens .safetensors "
                             "model file (default perm-mix)")
    parser.add_argument("--tasks", default=None,
                        help="word-pair tasks of a Hugging Face model: comma-separated built-in names or CSV files")
    parser.add_argument("--template", default="arrow",
                        help="word-pair prompt template: arrow, hendel, todd, qa or a string with {x} and {y}")
    parser.add_argument("--task-id", type=int, default=0, help="which task of the family (default 0)")
    parser.add_argument("--shots", type=_positive_int, default=None,
                        help="demonstrations per prompt (default: the model's training prompts)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the prompts")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    if vector:
        parser.add_argument("--vector", required=True, help="a task vector .safetensors file")
        parser.add_argument("--prompts", type=_positive_int, default=200, help="prompts (default 200)")
    if vector or vector is None:
        parser.add_argument("--allow-other-model", action="store_true",
                            help="use a vector made on another model (warn instead of refusing)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvlens", description="Task vectors for in-context learning.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a tiny ICL model (~1 min) and print ICL vs zero-shot accuracy")
    demo.add_argument("--steps", type=_positive_int, default=1500, help="training steps (default 1500)")
    demo.add_argument("--layers", type=_positive_int, default=2, help="transformer layers (default 2)")
    demo.add_argument("--d-model", type=_positive_int, default=64, help="residual width (default 64)")
    demo.add_argument("--symbols", type=_positive_int, default=32, help="symbols in the vocabulary (default 32)")
    demo.add_argument("--perms", type=_positive_int, default=8, help="permutations = tasks (default 8)")
    demo.add_argument("--shots", type=_positive_int, default=8, help="demonstrations per prompt (default 8)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the task family, weights and prompts")
    demo.add_argument("--out", default=None, help="save the trained model to this .safetensors file")
    demo.set_defaults(func=_demo)

    zoo = sub.add_parser("zoo", help="the built-in model zoo").add_subparsers(dest="zoo_command", required=True)
    zoo.add_parser("list", help="list the zoo models with their shipped ICL / zero-shot numbers").set_defaults(
        func=_zoo_list)
    zoo_train = zoo.add_parser("train", help="re-create a zoo model from its recipe (same seed, same weights)")
    zoo_train.add_argument("name", help="zoo model name, or 'all'")
    zoo_train.add_argument("--out", default=None, help="directory to write to (default: the user zoo directory, "
                           "$TVLENS_ZOO_DIR or ~/.cache/tvlens/zoo; never the installed package)")
    zoo_train.add_argument("--into-package", action="store_true",
                           help="replace the weights shipped in the installed package (for maintainers)")
    zoo_train.add_argument("--steps", type=_positive_int, default=None, help="override the number of steps")
    zoo_train.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    zoo_train.set_defaults(func=_zoo_train)

    vector = sub.add_parser("vector", help="make a task vector").add_subparsers(dest="vector_command", required=True)
    extract = vector.add_parser("extract", help="extract a vanilla task vector or a function vector")
    extract.add_argument("method", help="a registered method that is extracted, not learned (tvlens.vectors.METHODS: "
                         "vanilla or function)")
    extract.add_argument("--layer", type=int, default=None, help="layer (default: the best on dev prompts)")
    extract.add_argument("--out", required=True, help="output .safetensors file")
    _common(extract)
    extract.set_defaults(func=_vector_extract)
    learn = vector.add_parser("learn", help="learn a task vector by gradient descent against the frozen model")
    learn.add_argument("--layer", type=int, default=1, help="layer (default 1)")
    learn.add_argument("--position", default="last", help="'last' or an int position (default last)")
    learn.add_argument("--base", choices=["zero_shot", "icl"], default="zero_shot", help="prompts it is added to")
    learn.add_argument("--lr", type=_positive_float, default=0.05, help="learning rate (default 0.05)")
    learn.add_argument("--epochs", type=_positive_int, default=15, help="epochs (default 15)")
    learn.add_argument("--out", required=True, help="output .safetensors file")
    _common(learn)
    learn.set_defaults(func=_vector_learn)

    evaluate = sub.add_parser("evaluate", help="zero-shot, ICL and (with --vector) injected scores")
    evaluate.add_argument("--vector", default=None, help="a task vector .safetensors file to inject")
    evaluate.add_argument("--prompts", type=_positive_int, default=256, help="prompts (default 256)")
    evaluate.add_argument("--split", default="shared",
                          help="the split scored (default 'shared': held-out queries no vector made with --seed "
                               "trained or chose on; "
                               "'aside': prompts over every query, none held out)")
    _common(evaluate, vector=None)
    evaluate.set_defaults(func=_evaluate)

    analyze = sub.add_parser("analyze", help="how a vector propagates")
    analyze.add_argument("analysis", choices=["ov", "heads", "dynamics"])
    _common(analyze, vector=True)
    analyze.set_defaults(func=_analyze)

    report = sub.add_parser("report", help="run the whole pipeline on zoo models and write one HTML file")
    report.add_argument("--models", default="perm-mix,token-offset,linear-regression-long",
                        help="comma-separated zoo models or HF model directories (default perm-mix,token-offset,"
                             "linear-regression-long)")
    report.add_argument("--out", default="report.html", help="output HTML file (default report.html; - for standard "
                        "output)")
    report.add_argument("--quick", action="store_true", help="a preview: fewer prompts, tasks and claims (about 25 s "
                        "on 2 cores for the default zoo models or a tiny Hugging Face model)")
    report.add_argument("--cache-dir", default=".tvlens-cache", help="stage results cache (default .tvlens-cache)")
    report.add_argument("--no-cache", action="store_true", help="recompute every stage")
    report.add_argument("--no-studies", action="store_true", help="skip the claims ledger and the cross-model studies")
    report.add_argument("--seed", type=_seed, default=0, help="seed of the prompts")
    report.add_argument("--workers", type=_positive_int, default=None, help="processes the claims ledger's models "
                        "run on (default: one per core, at most 4, and 1 with --quick; 1: in this process)")
    report.add_argument("--quiet", action="store_true", help="no progress bars")
    report.set_defaults(func=_report)

    claims = sub.add_parser("claims", help="the claims ledger: the papers' claims beside their controls, with verdicts")
    claims.add_argument("--claims", default=None, help="comma-separated claim names (default: all; see "
                        "tvlens.studies.CLAIMS)")
    claims.add_argument("--model", action="append", default=None,
                        help="a model to measure, repeatable: a Hugging Face model directory (save_pretrained), a "
                        "tvlens .safetensors model or a zoo name (default: every claim on its zoo models)")
    claims.add_argument("--tasks", default=None, help="zoo families: how many tasks of each of a family's trained "
                        "models (default: LedgerConfig.n_tasks); a Hugging "
                        "Face model: comma-separated word-pair tasks (built-in names or .csv files of input,answer)")
    claims.add_argument("--template", default="arrow",
                        help="prompt template of word-pair tasks: arrow (default), hendel, todd (the papers' formats), "
                        "qa, or a string with {x} and {y} (\\n in it is a line break)")
    claims.add_argument("--seeds", default=None, help="comma-separated seeds (default: LedgerConfig.seeds)")
    claims.add_argument("--prompts", type=_positive_int, default=200, help="test prompts per task and seed "
                        "(default 200)")
    claims.add_argument("--shots", type=_positive_int, default=None, help="demonstrations per prompt (default: a zoo "
                        "model's training prompts, 5 for word-pair tasks)")
    claims.add_argument("--whole-answers", action="store_true", help="score word-pair rows on the exact match of the "
                        "whole generated answer (Todd et al.), not its first token")
    claims.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16", "float64"),
                        help="what a Hugging Face --model is loaded in (default float32)")
    claims.add_argument("--workers", type=_positive_int, default=1, help="processes to run the models on (default 1: "
                        "in this process); each runs all the units of a model and loads it once")
    claims.add_argument("--out", default=None, help="also write the markdown table to this "
                        "file (- for standard output alone)")
    claims.add_argument("--quiet", action="store_true", help="no progress bars")
    claims.set_defaults(func=_claims)
    return parser


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # handled as an interruption: the same cleanup, exit 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # one line per warning, like the errors (no source line of the library)
    warnings.formatwarning = lambda message, category, *_, **__: f"tvlens {args.command}: warning: {message}\n"
    quiet = getattr(args, "quiet", False) and "TQDM_DISABLE" not in os.environ
    bars_were_on = False
    if quiet:  # also the bars of the libraries underneath (transformers' weight loading); read when tqdm is imported
        os.environ["TQDM_DISABLE"] = "1"
        from transformers.utils import logging as hf_logging  # (when main() runs in a process that imported tqdm)

        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
    # SIGTERM ends the run as Ctrl-C does: worker processes are stopped, nothing half-written is left
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous_term = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("tvlens: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tvlens zoo list | head`: the reader left; say nothing more to it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError) as error:
        message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
        message = " ".join(line.strip() for line in message.splitlines() if line.strip())  # always one line
        print(f"tvlens {args.command}: error: {message or type(error).__name__}", file=sys.stderr)
        return 2
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        if quiet:
            del os.environ["TQDM_DISABLE"]
        if bars_were_on:
            hf_logging.enable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
