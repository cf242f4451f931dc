"""Exports with a round-trip proof: a vector exported as GGUF or as steering-vectors' layer dict, read and applied
by docs/generation.md's plain transformers hooks (no tvlens, no TransformerLens), gives tvlens' own injected
logits to 1e-5 on tiny GPT-2, GPT-NeoX and Llama (grouped K/V) models; what a format cannot express is a one-line
error before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests.hf_models import hf_model
from tvlens.models import HookedModel
from tvlens.vectors import Site, TaskVector

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def plain() -> dict:
    """docs/generation.md's plain-hook block, run as written (it imports neither tvlens nor TransformerLens)."""
    code = re.search(r"<!-- plain-hook -->\n```python\n(.*?)```", (ROOT / "docs" / "generation.md").read_text(),
                     flags=re.S).group(1)
    assert "tvlens" not in code and "transformer_lens" not in code
    namespace: dict = {}
    exec(compile(code, "docs/generation.md", "exec"), namespace)  # noqa: S102 - the docs' own example
    return namespace


@pytest.fixture(scope="module", params=("gpt2", "neox", "llama_gqa"))
def pair(request, tokenizer):
    """A plain Hugging Face model and tvlens' model of the same weights (a copy), with left-padded prompts."""
    from tvlens.models import transformer_lens_line

    hf = hf_model(request.param, tokenizer, n_layers=3).eval()
    try:
        model = HookedModel.from_hf(hf, tokenizer)
    except Exception as error:  # TL 3.x's converters do not take every family
        if transformer_lens_line() >= 4:
            raise
        pytest.skip(f"TransformerLens 3.x does not load {request.param}: {type(error).__name__}")
    texts = ["big -> small\nhot ->", "up ->", "France -> Paris\nSpain -> Madrid\nItaly ->"]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(map(len, ids))
    inputs = torch.tensor([[tokenizer.pad_token_id] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    return hf, model, inputs, mask


def _vector(model: HookedModel, sites: list[Site], scale: float = 1.5) -> TaskVector:
    gen = torch.Generator().manual_seed(len(sites))
    return TaskVector({s: torch.randn(model.d_model, generator=gen) for s in sites}, scale=scale)


def _compare(plain, pair, tv, handles_of) -> None:
    hf, model, inputs, mask = pair
    with torch.no_grad(), tv.inject(model):
        expected = model(inputs, attention_mask=mask)
    with torch.no_grad():
        base = hf(input_ids=inputs, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    handles = handles_of(hf)
    try:
        with torch.no_grad():
            got = hf(input_ids=inputs, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    finally:
        for handle in handles:
            handle.remove()
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    assert (got[real] - base[real]).abs().max() > 1e-2  # the vector did something


def test_a_steering_vectors_export_applied_by_a_plain_hook_is_tvlens_injection(plain, pair, tmp_path):
    hf, model, _, _ = pair
    for positions in ("last", "all", -2):
        tv = _vector(model, [Site(2, "resid_pre", positions), Site(1, "resid_post", positions),
                             Site(1, "resid_pre", positions)])
        path = tv.export(tmp_path / "v.safetensors", format="steering-vectors")
        vectors, token_indices = plain["read_steering_vectors"](str(path))
        assert sorted(vectors) == [0, 1] and token_indices == {"last": [-1], "all": None, -2: [-2]}[positions]
        _compare(plain, pair, tv, lambda hf, v=vectors, t=token_indices: plain["add_to_block_outputs"](hf, v, t))


def test_a_gguf_export_applied_at_every_token_is_tvlens_injection(plain, pair, tmp_path):
    import gguf

    hf, model, _, _ = pair
    tv = _vector(model, [Site(2, "resid_pre", "all"), Site(2, "resid_post", "all")], scale=-0.7)
    path = tv.export(tmp_path / "v.gguf", format="gguf", model_hint="llama")
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["general.architecture"]
    assert bytes(field.parts[field.data[0]]).decode() == "controlvector"
    assert int(reader.fields["controlvector.layer_count"].parts[-1][0]) == 2
    vectors = plain["read_gguf"](str(path))
    assert sorted(vectors) == [1, 2]
    torch.testing.assert_close(vectors[1], tv.vectors[Site(2, "resid_pre", "all")] * -0.7)
    _compare(plain, pair, tv, lambda hf: plain["add_to_block_outputs"](hf, vectors))


@pytest.mark.parametrize(("format", "tv", "message"), [
    ("gguf", TaskVector.single(torch.ones(8), 2, "last"),
     r"^positions='last': llama.cpp applies a control vector to every token; expected a vector at positions='all'"),
    ("gguf", TaskVector.single(torch.ones(8), 1, "all"), r"^a vector at block 0's output .*llama.cpp steers blocks "
                                                         r"from 1"),
    ("steering-vectors", TaskVector.single(torch.ones(8), 0, "all"),
     r"^layer=0, hook='resid_pre': the stream entering block 0 is the embedding"),
    ("steering-vectors", TaskVector.single(torch.ones(8), 2, "last", mode="replace"),
     r"^mode='replace': steering-vectors adds a vector to a block's output; expected mode='add'$"),
    ("steering-vectors", TaskVector.single(torch.ones(8), 2, "last", hook="mlp_out"),
     r"^hook='mlp_out': steering-vectors adds to a block's output; expected a residual-stream site"),
    ("steering-vectors", TaskVector.single(torch.ones(8), 2, 3),
     r"^positions=3: a layer dict is applied at the same columns of every prompt; expected 'all', 'last' or a "
     r"negative int"),
    ("steering-vectors", TaskVector({Site(1, positions="all"): torch.ones(8), Site(2): torch.ones(8)}),
     r"^positions: the sites are at \['\"all\"', '\"last\"'\]"),
    ("onnx", TaskVector.single(torch.ones(8), 2), r"^format='onnx': expected one of \('gguf', 'steering-vectors'\)$"),
])
def test_what_a_format_cannot_express_is_refused_before_writing(tmp_path, format, tv, message):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        tv.export(out, format=format)
    assert not out.exists()
