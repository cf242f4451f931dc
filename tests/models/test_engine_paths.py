"""Every public function with a ``path`` argument: the cached path gives what the full forward gives (float64), the
engine reports which one ran, and a bad ``path`` is a one-line error before any prompt is drawn."""

from __future__ import annotations

import pytest
import torch

from tvlens.analysis import injection_layer_maps, key_head_analysis, linear_dynamics
from tvlens.models.engine import QueryEngine
from tvlens.vectors import LearnConfig, TaskVector, function_vector, head_weighted_task_vector, learn_task_vectors


def _vector(model, layer: int = 1, seed: int = 0) -> TaskVector:
    theta = torch.randn(model.d_model, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3
    return TaskVector.single(theta.to(model.dtype), layer)


@pytest.fixture
def engine_paths(monkeypatch):
    """The path of every query engine built while the test runs (in order): a result that does not report its path
    is checked through the engines it built, so a ``path`` argument that is not passed on fails."""
    built: list[str] = []
    init = QueryEngine.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self.path)

    monkeypatch.setattr(QueryEngine, "__init__", recording)
    return built


def _ran_on(built: list[str], path: str) -> None:
    assert built and set(built) == {path}, f"asked for path={path!r}, the engines ran {sorted(set(built))}"
    built.clear()


def _close(a, b) -> None:
    torch.testing.assert_close(torch.as_tensor(a).double(), torch.as_tensor(b).double(), atol=1e-7, rtol=1e-7)


def test_head_weighted_vector_is_the_same_on_both_paths(tiny_model64, small_task, engine_paths):
    task, cfg = small_task.single(0), LearnConfig(epochs=2, n_train=32, n_val=16, batch_size=16, lr=0.05)
    made = []
    for p in ("cached", "full"):
        made.append(head_weighted_task_vector(tiny_model64, task, n_shots=3, n_head_prompts=8, config=cfg,
                                              progress=False, path=p))
        _ran_on(engine_paths, p)  # its training and its val/test scores
    (tv_c, cached), (tv_f, full) = made
    assert (cached.path, full.path) == ("cached", "full")
    _close(cached.weights, full.weights)
    for site in tv_c.sites:
        _close(tv_c.vector(site.layer), tv_f.vector(site.layer))
    assert [h["val_loss"] for h in cached.history] == pytest.approx([h["val_loss"] for h in full.history], abs=1e-8)


def test_key_head_analysis_is_the_same_on_both_paths(tiny_model64, small_task, engine_paths):
    task, tv = small_task.single(0), _vector(tiny_model64)
    results = {}
    for p in ("cached", "full"):
        results[p] = key_head_analysis(tiny_model64, task, tv, n_prompts=8, n_shots=3, fraction=0.2, path=p)
        _ran_on(engine_paths, p)
    cached, full = results["cached"], results["full"]
    assert cached.key_heads == full.key_heads and cached.random_heads == full.random_heads
    for name in ("zero_shot", "injected", "key_ablated", "random"):
        _close(getattr(cached, name), getattr(full, name))


def test_the_dynamics_are_the_same_on_both_paths(tiny_model64, small_task, engine_paths):
    task, tv = small_task.single(0), _vector(tiny_model64)
    results = {}
    for p in ("cached", "full"):
        results[p] = linear_dynamics(tiny_model64, task, tv, n_prompts=3, n_copies=70, n_shots=3, progress=False,
                                     path=p)
        _ran_on(engine_paths, p)
    cached, full = results["cached"], results["full"]
    for a, b in zip([cached.direct, *cached.steps], [full.direct, *full.steps]):
        _close(a.r2, b.r2)
        _close(a.scaling, b.scaling)
    _close(cached.chain_r2, full.chain_r2)
    maps = []
    for p in ("cached", "full"):
        maps.append(injection_layer_maps(tiny_model64, task, layers=[1, 2], n_prompts=3, n_copies=70, n_shots=3,
                                         vectors={1: tv, 2: _vector(tiny_model64, 2, 1)}, progress=False, path=p))
        _ran_on(engine_paths, p)
    for a, b in zip(maps[0].maps, maps[1].maps):
        _close(a.r2, b.r2)


def test_side_by_side_vectors_and_the_function_vector_are_the_same_on_both_paths(tiny_model64, small_task,
                                                                                 engine_paths):
    task, cfg = small_task.single(0), LearnConfig(epochs=2, n_train=32, n_val=16, batch_size=16)
    cached, full = (learn_task_vectors(tiny_model64, task, [0, 2], n_shots=3, config=cfg, progress=False, path=p)
                    for p in ("cached", "full"))
    for layer in (0, 2):
        assert (cached[layer][1].path, full[layer][1].path) == ("cached", "full")
        _close(cached[layer][0].vector(), full[layer][0].vector())
    engine_paths.clear()  # the learned vectors' engines: checked by their reported path above
    fvs = []
    for p in ("cached", "full"):
        fvs.append(function_vector(tiny_model64, task, 1, top_k=3, n_prompts=12, n_corrupted=6, n_shots=3,
                                   progress=False, path=p)[1])
        _ran_on(engine_paths, p)
    fv_c, fv_f = fvs
    _close(fv_c.aie, fv_f.aie)
    assert fv_c.top_heads == fv_f.top_heads


@pytest.mark.parametrize("call", [
    lambda m, t: head_weighted_task_vector(m, t, path="fast"),
    lambda m, t: key_head_analysis(m, t, _vector(m), path="fast"),
    lambda m, t: linear_dynamics(m, t, _vector(m), path="fast"),
    lambda m, t: injection_layer_maps(m, t, path="fast"),
    lambda m, t: learn_task_vectors(m, t, [0], path="fast"),
    lambda m, t: function_vector(m, t, 1, path="fast"),
])
def test_a_bad_path_is_refused_before_any_prompt_is_drawn(tiny_model, small_task, monkeypatch, call):
    task = small_task.single(0)

    def no_sampling(*args, **kwargs):
        raise AssertionError("a prompt was drawn before the path was checked")

    monkeypatch.setattr(type(task), "sample", no_sampling)
    with pytest.raises(ValueError, match=r"^path='fast': expected 'auto', 'cached' or 'full'$"):
        call(tiny_model, task)
