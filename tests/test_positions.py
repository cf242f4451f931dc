"""Position specs: parsing, padding-aware resolution, and their error messages (hypothesis properties)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tvlens.positions import at_columns, check_position_spec, resolve_positions


def left_padded_mask(lengths: list[int], seq_len: int) -> torch.Tensor:
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, seq_len - n :] = 1
    return mask


def right_padded_mask(lengths: list[int], seq_len: int) -> torch.Tensor:
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    return mask


def reference(spec, lengths: list[int], starts: list[int]) -> list[tuple[int, int]]:
    """Independent per-example resolution with plain Python lists."""
    out = []
    for b, (n, s) in enumerate(zip(lengths, starts)):
        real = list(range(s, s + n))
        if spec == "last":
            chosen = [real[-1]]
        elif spec == "all":
            chosen = real
        elif isinstance(spec, slice):
            chosen = real[spec]
        elif isinstance(spec, int):
            chosen = [real[spec]]
        elif isinstance(spec, torch.Tensor):
            chosen = [real[int(spec[b])]]
        else:
            chosen = [real[p] for p in spec]
        out += [(b, p) for p in chosen]
    return out


lengths_st = st.lists(st.integers(1, 9), min_size=1, max_size=5)


@st.composite
def spec_for(draw, lengths: list[int]):
    shortest = min(lengths)
    kind = draw(st.sampled_from(["last", "all", "int", "list", "slice", "tensor"]))
    if kind in ("last", "all"):
        return kind
    if kind == "int":
        return draw(st.integers(-shortest, shortest - 1))
    if kind == "list":
        k = draw(st.integers(1, shortest))
        rel = draw(st.lists(st.integers(0, shortest - 1), min_size=k, max_size=k, unique=True))
        # mix negative and non-negative spellings of the same relative positions
        return [p - shortest if draw(st.booleans()) and shortest == min(lengths) == max(lengths) else p for p in rel]
    if kind == "slice":
        start = draw(st.none() | st.integers(-shortest, shortest))
        stop = draw(st.none() | st.integers(-shortest, shortest))
        step = draw(st.none() | st.integers(1, 3))
        s = slice(start, stop, step)
        if any(len(range(n)[s]) == 0 for n in lengths):
            return "last"
        return s
    return torch.tensor([draw(st.integers(-n, n - 1)) for n in lengths])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), lengths=lengths_st, pad=st.integers(0, 4), side=st.sampled_from(["left", "right", "none"]))
def test_resolution_matches_reference(data, lengths, pad, side):
    if side == "none":
        lengths = [lengths[0]] * len(lengths)
        seq_len, mask, starts = lengths[0], None, [0] * len(lengths)
    else:
        seq_len = max(lengths) + pad
        if side == "left":
            mask = left_padded_mask(lengths, seq_len)
            starts = [seq_len - n for n in lengths]
        else:
            mask = right_padded_mask(lengths, seq_len)
            starts = [0] * len(lengths)
    spec = data.draw(spec_for(lengths))
    b_idx, p_idx = resolve_positions(spec, len(lengths), seq_len, mask)
    assert list(zip(b_idx.tolist(), p_idx.tolist())) == reference(spec, lengths, starts)
    if mask is not None:
        assert bool(mask[b_idx, p_idx].all()), "a resolved position landed on padding"


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 12), p=st.integers(-40, 40))
def test_out_of_range_int_is_rejected_with_range(n, p):
    if -n <= p < n:
        b_idx, p_idx = resolve_positions(p, 1, n)
        assert p_idx.item() == p % n
    else:
        with pytest.raises(ValueError, match=rf"position {p} is out of range for example 0, a prompt of {n} real tokens; "
                                             rf"expected {-n} <= position < {n}"):
            resolve_positions(p, 1, n)


def test_out_of_range_names_the_short_example():
    mask = left_padded_mask([6, 3], 6)
    with pytest.raises(ValueError, match=r"position 4 is out of range for example 1, a prompt of 3 real tokens"):
        resolve_positions(4, 2, 6, mask)


def test_duplicate_positions_are_rejected():
    with pytest.raises(ValueError, match=r"names the same token twice in example 0"):
        resolve_positions([-1, 4], 1, 5)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("first", ValueError, r"positions='first': expected 'last' or 'all'"),
        (True, TypeError, r"positions=True"),
        (2.5, TypeError, r"positions=2.5: expected an int"),
        ([], ValueError, r"positions=\[\]: expected at least one position"),
        ([1, "a"], TypeError, r"every position must be an int"),
        (slice(0, 3, -1), ValueError, r"slice step must be positive"),
        (torch.tensor([[1]]), TypeError, r"1-D integer tensor"),
        (torch.tensor([1.0]), TypeError, r"1-D integer tensor"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, error, message):
    with pytest.raises(error, match=message):
        check_position_spec(spec)


def test_mask_errors():
    with pytest.raises(ValueError, match=r"must be contiguous"):
        resolve_positions("last", 1, 4, torch.tensor([[1, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r"examples \[1\] have no real token"):
        resolve_positions("last", 2, 3, torch.tensor([[1, 1, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\); expected \(2, 3\)"):
        resolve_positions("last", 2, 3, torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"tensor of 3 entries; the batch has 2 examples"):
        resolve_positions(torch.tensor([0, 1, 2]), 2, 3)


def test_at_columns_reads_each_row_at_its_own_column():
    """The one gather at one position per row equals indexing row by row, on any position axis."""
    x = torch.randn(3, 5, 4, 6)
    cols = torch.tensor([3, 0, 2])
    assert torch.equal(at_columns(x, cols), torch.stack([x[i, c] for i, c in enumerate(cols.tolist())]))
    assert torch.equal(at_columns(x, cols, dim=2), torch.stack([x[i, :, c] for i, c in enumerate(cols.tolist())]))
    with pytest.raises(ValueError, match=r"columns has shape \(2,\); expected \[3\]"):
        at_columns(x, cols[:2])
    with pytest.raises(ValueError, match=r"dim=4: expected a position axis of x \(1 … 3\)"):
        at_columns(x, cols, dim=4)
