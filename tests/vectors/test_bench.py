"""The bench and the method registry: one name per method, each vector made once, a new method picked up by
compare and the figures, and the docs' worked example run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tvlens import evaluate, zoo
from tvlens.plot import method_layers_figure
from tvlens.vectors import METHODS, Bench, Method, compare, learn_task_vector, register_method, vanilla_task_vector
from tvlens.vectors.bench import check_methods

ROOT = Path(__file__).parents[2]


@pytest.fixture
def registry():
    """The registry as it was before the test (a test's methods are removed after it)."""
    before = dict(METHODS)
    yield METHODS
    METHODS.clear()
    METHODS.update(before)


def test_a_method_name_is_registered_once_and_unknown_names_are_refused(registry):
    with pytest.raises(ValueError, match=r"^method 'learned' is registered already; expected a new name"):
        register_method(Method("learned", "another", "#000000", lambda *a: {}))
    assert registry["learned"].label == "learned TV"
    with pytest.raises(ValueError, match=r"^methods=\['learned', 'magic'\]: unknown \['magic'\]; expected a subset of "
                                         r"\['vanilla', 'function', 'learned', 'head_weighted'\]$"):
        check_methods(["learned", "magic"])
    with pytest.raises(ValueError, match=r"Method.name='two words': expected an identifier"):
        Method("two words", "x", "#000000", lambda *a: {})
    with pytest.raises(ValueError, match=r"color='red'; expected '#rrggbb'"):
        Method("red", "x", "red", lambda *a: {})


def test_the_bench_makes_each_vector_once_and_as_the_method_itself_does(tiny_model, small_task, registry):
    task = small_task.single(0)
    calls = []

    def counted(bench, layers, positions, base, n_shots):
        calls.append(list(layers))
        return METHODS["vanilla"].make(bench, layers, positions, base, n_shots)

    register_method(Method("counted", "counted", "#000000", counted))
    bench = Bench(tiny_model, small_task, seed=3, n_shots=3, progress=False)
    first = bench.vectors("counted", [0, 1])
    again = bench.vectors("counted", [1, 0, 2])
    assert calls == [[0, 1], [2]] and first[0] is again[0] and first[1] is again[1]
    own, _ = vanilla_task_vector(tiny_model, task, 2, n_shots=3, seed=3, progress=False)
    torch.testing.assert_close(again[2].vector(2), own.vector(2))
    with pytest.raises(ValueError, match=r"^layers=\[0\]: method 'head_weighted' makes one vector over every layer"):
        bench.vectors("head_weighted", [0])


def test_a_learned_bench_vector_equals_learn_task_vector(tiny_model, small_task):
    from tvlens.vectors import LearnConfig

    config = LearnConfig(epochs=2, n_train=16, n_val=8, batch_size=8)
    bench = Bench(tiny_model, small_task, seed=1, n_shots=3, learn=config, progress=False)
    made = bench.vector("learned", 2, positions=1)
    own, _ = learn_task_vector(tiny_model, small_task.single(0), 2, 1, n_shots=3, config=config, seed=1,
                               progress=False)
    torch.testing.assert_close(made.vector(2), own.vector(2))
    test = bench.prompts("test", 16)
    assert bench.prompts("test", 16) is test
    assert bench.score(made, test).mean == pytest.approx(
        evaluate(tiny_model, small_task.single(0), "injected", own, batch=test).mean, abs=1e-6)


def test_the_docs_worked_example_adds_a_method_everywhere(registry, capsys):
    """docs/vectors.md's "adding a method" block, run as written: the new method's rows are the vanilla TV at twice
    its norm, scored on the same prompts (checked by hand), and figures give it its registered name and colour."""
    page = (ROOT / "docs" / "vectors.md").read_text()
    code = re.search(r"<!-- adding-a-method -->\n```python\n(.*?)```", page, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/vectors.md", "exec"), namespace)  # noqa: S102 - the docs' own example
    table = namespace["table"]
    assert "doubled_vanilla" in capsys.readouterr().out
    model, family = zoo.load("token-offset"), zoo.task("token-offset")
    vanilla, doubled = (table.vectors[(m, 1)] for m in ("vanilla", "doubled_vanilla"))
    torch.testing.assert_close(doubled.vector(1) * doubled.scale, 2 * vanilla.vector(1) * vanilla.scale)
    from tvlens.tasks import Splits

    test = Splits(0).sample(family.single(0), "shared", 64)
    by_hand = evaluate(model, family.single(0), "injected", 2 * vanilla, batch=test).mean
    assert table.best("doubled_vanilla")["accuracy"] == pytest.approx(by_hand, abs=1e-9)
    figure = method_layers_figure(table.records)
    trace = next(t for t in figure.data if t.name == "vanilla TV × 2")
    assert trace.line.color == "#a6761d"
    assert compare(model, family, ["doubled_vanilla"], layers=[1], n_test=8, progress=False).records[-1][
        "method"] == "doubled_vanilla"


def test_a_method_without_a_layer_goes_to_its_own_layer(tiny_model, small_task):
    """The FV's own layer is the one function_vector's own sweep picks on dev prompts (not the vanilla TV's), the
    vanilla TV's is vanilla_task_vector's, per mode; a regression family is kept whole with task_id=None."""
    from tvlens.vectors import function_vector

    bench = Bench(tiny_model, small_task, seed=2, n_shots=3, progress=False)
    fv, result = function_vector(tiny_model, small_task.single(0), None, top_k=bench.top_k, n_shots=3, seed=2,
                                 progress=False)
    assert bench.vector("function").layers == [result.sweep.best_layer]
    torch.testing.assert_close(bench.vector("function").vector(result.sweep.best_layer), fv.vector(fv.layers[0]))
    for mode in ("add", "replace"):
        own, sweep = vanilla_task_vector(tiny_model, small_task.single(0), mode=mode, n_shots=3, seed=2,
                                         progress=False)
        tv, layer = bench.best_vanilla(mode)
        assert layer == sweep.sweep.best_layer and tv.mode == own.mode
        torch.testing.assert_close(tv.vector(layer), own.vector(layer))
    assert bench.vanilla_layer == bench.best_vanilla("add")[1]
    with pytest.raises(ValueError, match=r"^mode='scale': expected 'add' or 'replace'$"):
        bench.best_vanilla("scale")
    with pytest.raises(ValueError, match=r"^head_source='own': expected 'mean' or 'prompt'$"):
        Bench(tiny_model, small_task, head_source="own")
    family = zoo.task("linear-regression")
    assert Bench(tiny_model, family, task_id=None).task is family
    assert Bench(tiny_model, family).task.fixed == 0
