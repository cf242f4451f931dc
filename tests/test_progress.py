"""The one rule for progress bars (tvlens._progress): public long calls default to a bar, inner calls pass theirs."""

from __future__ import annotations

import ast
import functools
import inspect
from pathlib import Path

import tvlens
from tvlens._progress import DELAY, progress_bar

PACKAGE = Path(tvlens.__file__).parent


def _functions_with_progress() -> dict[str, list[ast.FunctionDef]]:
    """Every function (a class: its ``__init__``, under the class's name, as it is called) with a ``progress``
    argument."""
    found: dict[str, list[ast.FunctionDef]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        constructors = {id(f): c.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body
                        if isinstance(f, ast.FunctionDef) and f.name == "__init__"}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(a.arg == "progress" for a in node.args.args + node.args.kwonlyargs):
                found.setdefault(constructors.get(id(node), node.name), []).append(node)
    return found


def test_every_function_with_a_progress_argument_defaults_to_a_bar():
    for name, nodes in _functions_with_progress().items():
        for node in nodes:
            positional = node.args.args[len(node.args.args) - len(node.args.defaults):]
            defaults = {a.arg: d for a, d in zip(positional, node.args.defaults)}
            defaults.update({a.arg: d for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None})
            if "progress" in defaults:  # a required progress (an inner helper) is passed by every caller
                assert ast.literal_eval(defaults["progress"]) is True, f"{name}: progress defaults to False"


def test_inner_calls_pass_progress_explicitly():
    """A tvlens function calling another that draws a bar says whether it should (one bar per level a user cares
    about); a call relying on the default would draw a bar per inner step."""
    names = set(_functions_with_progress()) - {"train"}  # nn.Module.train shares the name
    missing = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":  # the command line's calls are the user's own
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name not in names or name == "evaluate" and isinstance(func, ast.Attribute):
                continue
            keywords = {k.arg for k in node.keywords}
            positional = len(node.args)
            params = [inspect.signature(obj).parameters for obj in _public(name)]
            passes = "progress" in keywords or None in keywords or any(
                "progress" in p and list(p).index("progress") < positional for p in params)
            if not passes:
                missing.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}(…)")
    assert not missing, missing


@functools.cache
def _public(name: str) -> list:
    import importlib
    import pkgutil

    out = []
    for info in pkgutil.walk_packages(tvlens.__path__, "tvlens."):
        module = importlib.import_module(info.name)
        obj = getattr(module, name, None)
        if callable(obj) and getattr(obj, "__module__", "") == info.name:
            out.append(obj)
    return out


def test_the_bar_follows_the_rule():
    off = progress_bar(range(3), desc="x", progress=False)
    assert off.disable and list(off) == [0, 1, 2]
    inner = progress_bar(range(3), desc="x", progress=True)
    assert not inner.leave and inner.delay == DELAY == 0.5  # a step of a larger job: silent when quick, then gone
    inner.close()
    job = progress_bar(total=5, desc="report", progress=True, keep=True, initial=2)
    assert job.leave and job.delay == 0 and job.n == 2 and job.total == 5  # a job the user waits for stays
    job.close()
