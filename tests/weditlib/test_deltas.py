"""Shifts and their grouping: what the op and every backend rely on."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from weditlib import DenseShift, Grouping, LowRankShift, edited_linear


def test_grouping_position_is_each_samples_row_in_the_padded_layout():
    grouping = Grouping.from_index(torch.tensor([2, 0, 2, 1, 0]), 3, 5)
    assert grouping.max_count == 2 and not grouping.uniform
    assert grouping.counts.tolist() == [2, 1, 2]
    assert grouping.starts.tolist() == [0, 2, 3]
    # shift-major rows of width max_count: shift 0 -> rows 0, 1; shift 1 -> 2; shift 2 -> 4, 5
    assert grouping.position.tolist() == [4, 0, 5, 2, 1]
    assert grouping.index[grouping.order].tolist() == [0, 0, 1, 2, 2]


def _reference_grouping(index: list[int], num_shifts: int) -> dict:
    """The grouping's fields by Python loops over the index."""
    counts = [index.count(shift) for shift in range(num_shifts)]
    order = sorted(range(len(index)), key=lambda s: (index[s], s))
    starts = [sum(counts[:shift]) for shift in range(num_shifts)]
    max_count = max(counts, default=0)
    position = [0] * len(index)
    for rank_in_sorted, s in enumerate(order):
        shift = index[s]
        position[s] = shift * max_count + rank_in_sorted - starts[shift]
    uniform = index == sorted(index) and num_shifts > 0 and min(counts) == max_count
    return dict(counts=counts, order=order, starts=starts, position=position,
                max_count=max_count, uniform=uniform)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda l: st.tuples(st.just(l), st.lists(st.integers(0, l - 1), max_size=12))
    ),
    st.sampled_from([torch.int64, torch.int32, torch.uint8]),
)
def test_grouping_fields_equal_python_loops(case, dtype):
    num_shifts, index = case
    grouping = Grouping.from_index(torch.tensor(index, dtype=dtype), num_shifts, None)
    expected = _reference_grouping(index, num_shifts)
    assert grouping.index.dtype == torch.int64 and grouping.index.tolist() == index
    for field in ("counts", "order", "starts", "position"):
        tensor = getattr(grouping, field)
        assert tensor.dtype == torch.int64 and tensor.tolist() == expected[field], field
    assert grouping.max_count == expected["max_count"]
    assert grouping.uniform == expected["uniform"]


def test_grouping_of_none_is_the_identity():
    grouping = Grouping.from_index(None, 4, 4)
    assert grouping.identity and grouping.uniform and grouping.max_count == 1


def test_grouping_of_an_empty_batch():
    grouping = Grouping.from_index(torch.zeros(0, dtype=torch.long), 3, 0)
    assert grouping.max_count == 0 and grouping.counts.tolist() == [0, 0, 0]
    assert Grouping.from_index(None, 0, 0).batch_size == 0


def test_grouping_validates_its_index():
    with pytest.raises(ValueError, match=r"index values must lie in \[0, 2\)"):
        Grouping.from_index(torch.tensor([0, 2]), 2, 2)
    with pytest.raises(ValueError, match=r"index must have shape \(b,\) = \(3,\)"):
        Grouping.from_index(torch.tensor([0, 1]), 2, 3)
    with pytest.raises(ValueError, match=r"shift count \(2\) must equal the batch size \(3\)"):
        Grouping.from_index(None, 2, 3)


def test_a_meta_index_cannot_be_grouped():
    with pytest.raises(ValueError, match="index must hold values"):
        Grouping.from_index(torch.zeros(3, dtype=torch.long, device="meta"), 2, 3)
    with pytest.raises(ValueError, match="index must hold values"):
        Grouping.from_index(torch.zeros(3, dtype=torch.long), 2, 3, device="meta")
    x, weight = torch.randn(2, 4, device="meta"), torch.randn(5, 4, device="meta")
    delta = DenseShift(torch.randn(2, 5, 4, device="meta"))
    assert edited_linear(x, weight, None, delta).shape == (2, 5)  # meta shapes run


def test_edited_linear_rejects_a_grouping_of_another_problem():
    x, weight, delta = torch.randn(4, 6), torch.randn(5, 6), DenseShift(torch.randn(2, 5, 6))
    other = Grouping.from_index(torch.tensor([0, 1, 1]), 2, 3)
    with pytest.raises(ValueError, match="grouping is for b=3, l=2; got b=4, l=2"):
        edited_linear(x, weight, None, delta, grouping=other)
    with pytest.raises(TypeError, match="grouping must be a Grouping or None"):
        edited_linear(x, weight, None, delta, grouping=torch.tensor([0, 1, 1, 0]))
    meta = Grouping.from_index(torch.tensor([0, 1, 1, 0]), 2, 4).to("meta")
    with pytest.raises(ValueError, match="grouping is on meta but x is on cpu"):
        edited_linear(x, weight, None, delta, grouping=meta)


def test_tensors_and_replace_cover_the_bias_shift():
    up, down, bias = torch.randn(2, 5, 3), torch.randn(2, 3, 6), torch.randn(2, 5)
    delta = LowRankShift(up, down, "scale", bias=bias)
    assert delta.tensor_fields() == ("up", "down", "bias")
    assert LowRankShift(up, down).tensor_fields() == ("up", "down")
    doubled = delta.replace(up=2 * up)
    assert doubled.mode == "scale" and doubled.bias is bias
    with pytest.raises(ValueError, match=r"LowRankShift\.bias must have shape"):
        delta.replace(bias=torch.randn(3, 5))
