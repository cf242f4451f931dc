"""TaskVector: injection, algebra, persistence with fingerprints."""

from __future__ import annotations

import pytest
import torch

from tvlens import Intervention, TaskVector, inject
from tvlens.vectors import Site


def toks(model, seed=0):
    return torch.randint(model.d_vocab, (3, 7), generator=torch.Generator().manual_seed(seed))


def tv(model, seed, layer=1, **kw):
    v = torch.randn(model.d_model, generator=torch.Generator().manual_seed(seed))
    return TaskVector.single(v, layer, fingerprint=model.fingerprint(), **kw)


def test_inject_equals_its_interventions(tiny_model):
    a = tv(tiny_model, 1, scale=0.5)
    with a.inject(tiny_model):
        got = tiny_model(toks(tiny_model))
    with inject(tiny_model, Intervention(a.vector(), layer=1, scale=0.5)):
        expected = tiny_model(toks(tiny_model))
    assert torch.equal(got, expected)
    assert tiny_model.attached_hooks() == 0


def test_sum_injects_like_both(tiny_model):
    a, b = tv(tiny_model, 1), tv(tiny_model, 2, layer=2)
    c = tv(tiny_model, 3)  # same site as a
    with inject(tiny_model, a, b, c):
        both = tiny_model(toks(tiny_model))
    with (a + b + c).inject(tiny_model):
        summed = tiny_model(toks(tiny_model))
    torch.testing.assert_close(summed, both, atol=1e-5, rtol=1e-5)
    assert sorted((a + b).layers) == [1, 2]


def test_difference_with_itself_is_no_change(tiny_model):
    a = tv(tiny_model, 1)
    clean = tiny_model(toks(tiny_model))
    with (a - a).inject(tiny_model):
        assert torch.equal(tiny_model(toks(tiny_model)), clean)


def test_scalar_multiple(tiny_model):
    a = tv(tiny_model, 1)
    with (3 * a).inject(tiny_model):
        scaled = tiny_model(toks(tiny_model))
    with TaskVector.single(3 * a.vector(), 1).inject(tiny_model):
        direct = tiny_model(toks(tiny_model))
    torch.testing.assert_close(scaled, direct, atol=1e-5, rtol=1e-5)


def test_save_load_bit_identical(tiny_model, tmp_path):
    a = TaskVector({Site(1, "resid_pre", "last"): torch.randn(32), Site(2, "resid_post", (0, -1)): torch.randn(32),
                    Site(0, "resid_pre", slice(1, None)): torch.randn(32)},
                   mode="add", scale=0.7, method="learned", task={"family": "perm-mix"},
                   fingerprint=tiny_model.fingerprint(), hyperparameters={"lr": 0.01}, history=[{"epoch": 1}])
    path = a.save(tmp_path / "v.safetensors")
    b = TaskVector.load(path, model=tiny_model)
    assert b.metadata() == a.metadata()
    with a.inject(tiny_model):
        la = tiny_model(toks(tiny_model))
    with b.inject(tiny_model):
        lb = tiny_model(toks(tiny_model))
    assert torch.equal(la, lb)


def test_a_vector_saved_under_one_partition_for_every_seed_warns_when_loaded(tiny_model, tmp_path, monkeypatch):
    """A vector saved by tvlens 0.1 (one partition of the content for every seed) that records its seed warns on
    loading: this version partitions per seed, so its held-out scores could include queries it trained on. A vector
    of this version, or one that records no seed, loads silently."""
    import warnings

    import tvlens.vectors.task_vector as module

    seeded = tv(tiny_model, 0, hyperparameters={"seed": 0})
    monkeypatch.setattr(module, "__version__", "0.1.0")
    old = seeded.save(tmp_path / "old.safetensors")
    unseeded = tv(tiny_model, 0).save(tmp_path / "unseeded.safetensors")
    monkeypatch.undo()
    with pytest.warns(UserWarning, match=r"made by tvlens 0\.1\.0, whose splits held out one partition .*re-make it"):
        assert TaskVector.load(old).seeds == {0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskVector.load(seeded.save(tmp_path / "new.safetensors"))
        TaskVector.load(unseeded)


def test_loading_on_another_model_raises(tiny_model, backend, tmp_path):
    from tests.conftest import tiny_config
    from tvlens.models import HookedModel

    other = HookedModel.from_config(tiny_config(seed=5), backend=backend)
    path = tv(tiny_model, 1).save(tmp_path / "v.safetensors")
    with pytest.raises(ValueError, match=r"made on another model: fingerprints differ in \['weights_sha256'\]"):
        TaskVector.load(path, model=other)
    with pytest.warns(UserWarning, match="made on another model"):
        TaskVector.load(path, model=other, strict=False)


def test_errors(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="vectors is empty"):
        TaskVector({})
    with pytest.raises(ValueError, match="one width"):
        TaskVector({Site(0): torch.zeros(3), Site(1): torch.zeros(4)})
    with pytest.raises(ValueError, match=r"cannot combine a 'add' vector with a 'replace' vector"):
        tv(tiny_model, 1) + tv(tiny_model, 2, mode="replace")
    with pytest.raises(ValueError, match="per-example positions"):
        Site(0, "resid_pre", torch.tensor([1, 2]))
    with pytest.raises(FileNotFoundError, match="no such task-vector file"):
        TaskVector.load(tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match=r"vector\(layer=None\): 2 sites match"):
        (tv(tiny_model, 1) + tv(tiny_model, 2, layer=2)).vector()


def test_sites_and_widths_are_checked_where_they_are_made():
    import pytest

    with pytest.raises(ValueError, match=r"Site.hook='bogus': expected one of \['resid_pre'"):
        TaskVector.single(torch.zeros(4), 1, hook="bogus")
    with pytest.raises(ValueError, match=r"Site.layer='1': expected an int >= 0"):
        TaskVector.single(torch.zeros(4), "1")
    with pytest.raises(ValueError, match=r"cannot combine task vectors of different widths: d_model 4 and 6"):
        TaskVector.single(torch.zeros(4), 1) + TaskVector.single(torch.zeros(6), 1)


def test_evaluate_and_inject_warn_about_a_vector_of_another_model_or_task():
    import warnings

    import pytest

    from tvlens import evaluate, inject, zoo
    from tvlens.vectors import task_vector as tv_module

    model, other = zoo.load("perm-mix"), zoo.load("perm-mix-2")
    family = zoo.task("perm-mix")
    vector = TaskVector.single(torch.randn(other.d_model), 1, fingerprint=other.fingerprint(),
                               task=family.single(0).to_dict())
    tv_module._WARNED_PAIRS.clear()
    with pytest.warns(UserWarning, match="made on another model"):
        evaluate(model, family.single(0), "injected", vector, n_prompts=4, progress=False)
    tv_module._WARNED_PAIRS.clear()
    with pytest.warns(UserWarning, match="made on another model"), inject(model, vector):
        pass
    mine = TaskVector.single(torch.randn(model.d_model), 1, fingerprint=model.fingerprint(),
                             task=family.single(0).to_dict())
    with pytest.warns(UserWarning, match=r"made for the task .*'fixed': 0.* but is scored on .*'fixed': 2"):
        evaluate(model, family.single(2), "injected", mine, n_prompts=4, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own model and task: silent
        evaluate(model, family.single(0), "injected", mine, n_prompts=4, progress=False)
