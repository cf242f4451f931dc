"""The ``tvlens`` command line.

``tvlens demo`` trains a small transformer on a built-in ICL task (about a minute on two CPU
cores, with a progress bar) and prints what it learned: n-shot ICL accuracy against zero-shot
accuracy, and the TVP-mode accuracy at every layer (the query alone, with the hidden state of
its own ICL prompt put in at that layer).

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _check_output_path(argument: str, path: str) -> None:
    """Fail before any work if ``path`` cannot be written (an ancestor is a file)."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{argument}={path!r}: {str(parent)!r} is a file, not a directory")
            return


def _demo(args: argparse.Namespace) -> int:
    from tvlens.evaluate import evaluate
    from tvlens.models import HookedModel, ModelConfig
    from tvlens.models.io import save_model
    from tvlens.models.train import TrainConfig, train
    from tvlens.tasks import PermutationMixture

    if args.out:
        _check_output_path("--out", args.out)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
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
        f"{task.n_symbols} symbols, {n_shots}-shot prompts like: {task.decode(task.sample(1, 2, seed=1).inputs[0])}"
    )
    result = train(
        model, task,
        TrainConfig(steps=args.steps, batch_size=64, n_shots=n_shots, lr=3e-3, seed=args.seed,
                    eval_every=max(1, args.steps // 4), eval_prompts=256),
        target=0.99,
    )
    icl = evaluate(model, task, "icl", n_prompts=512, n_shots=n_shots, seed=12345, progress=False)
    zero = evaluate(model, task, "zero_shot", n_prompts=512, n_shots=n_shots, seed=12345, progress=False)
    print(f"\ntrained {result.steps_done} steps in {result.seconds:.0f} s")
    print(f"  {f'{n_shots}-shot ICL accuracy':<20}: {icl.mean:6.1%} ± {icl.stderr:.1%}")
    print(f"  {'zero-shot accuracy':<20}: {zero.mean:6.1%} ± {zero.stderr:.1%}   "
          f"(chance over labels {1 / task.n_symbols:.1%}; guessing among the {task.n_perms} permutations "
          f"{1 / task.n_perms:.1%})")
    tvp = result.final["tvp"]
    print("  TVP mode (query + its own ICL hidden state, per layer): "
          + ", ".join(f"L{layer}: {acc:.1%}" for layer, acc in enumerate(tvp)))
    if args.out:
        path = save_model(model, args.out, {"task": task.to_dict(), "history": result.history})
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
    if args.out:
        _check_output_path("--out", str(Path(args.out) / "x"))
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)) if args.threads is None else args.threads)
    for name in names:
        print(f"training zoo model {name!r}: {zoo.spec(name).description}")
        model, result = zoo.train_model(name, args.out, steps=args.steps)
        final = result.final
        print(f"  {result.steps_done} steps in {result.seconds:.0f} s: ICL {final['metric']} {final['icl']:.4f}, "
              f"zero-shot {final['zero_shot']:.4f}, TVP by layer {[round(x, 3) for x in final['tvp']]}")
        print(f"  wrote {zoo.weights_path(name, args.out)}")
    return 0


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
    demo.add_argument("--seed", type=int, default=0, help="seed of the task family, weights and prompts")
    demo.add_argument("--out", default=None, help="save the trained model to this .safetensors file")
    demo.set_defaults(func=_demo)

    zoo = sub.add_parser("zoo", help="the built-in model zoo").add_subparsers(dest="zoo_command", required=True)
    zoo.add_parser("list", help="list the zoo models with their shipped ICL / zero-shot numbers").set_defaults(
        func=_zoo_list)
    zoo_train = zoo.add_parser("train", help="re-create a zoo model from its recipe (same seed, same weights)")
    zoo_train.add_argument("name", help="zoo model name, or 'all'")
    zoo_train.add_argument("--out", default=None, help="directory to write to (default: the package's zoo)")
    zoo_train.add_argument("--steps", type=_positive_int, default=None, help="override the number of steps")
    zoo_train.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    zoo_train.set_defaults(func=_zoo_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("tvlens: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"tvlens {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
