"""Bad arguments to weditlib's public functions, one row each: the call raises this error class
before any work, and the message names the argument and says what was expected and what came
(shape, dtype, device, range or type)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from weditlib import (
    DenseShift,
    EditableLinear,
    Grouping,
    LowRankShift,
    MultiBranchShiftGenerator,
    edit,
    editable_modules,
    edited_call,
    edited_conv,
    edited_linear,
    make_editable,
    materialise,
    merge,
    unmerge,
)


def r(*shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


W, B = r(6, 5), r(6)
I = torch.tensor


def linear(x=None, weight=W, bias=B, delta=None, index=None) -> Callable[[], object]:
    x = r(3, 5) if x is None else x
    delta = DenseShift(r(3, 6, 5)) if delta is None else delta
    return lambda: edited_linear(x, weight, bias, delta, index)


def two_shifts(index) -> Callable[[], object]:
    return linear(delta=DenseShift(r(2, 6, 5)), index=index)


def editable(model: nn.Module | None = None, targets=("0",)) -> nn.Module:
    model = nn.Sequential(nn.Linear(5, 6)) if model is None else model
    make_editable(model, list(targets))
    return model


def entered(shifts, index=None, model=None) -> Callable[[], object]:
    return lambda: edit(editable() if model is None else model, shifts, index).__enter__()


def called(shifts, x, index=None) -> Callable[[], object]:
    return lambda: edited_call(editable(), shifts, x, index=index)


def generator(**kwargs) -> Callable[[], object]:
    arguments = {"style_dim": 4, "targets": {"a": (6, 5)}, "hidden_dim": 8, **kwargs}
    return lambda: MultiBranchShiftGenerator(**arguments)


def styled(style: torch.Tensor) -> Callable[[], object]:
    return lambda: MultiBranchShiftGenerator(4, {"a": (6, 5)}, hidden_dim=8)(style)


def wrap(module: nn.Module, **kwargs) -> Callable[[], object]:
    return lambda: make_editable(nn.Sequential(module), ["0"], **kwargs)


def merged_twice() -> None:
    model, shifts = editable(), {"0": DenseShift(r(2, 6, 5))}
    merge(model, shifts, 0)
    merge(model, shifts, 1)


META = "meta"
KERNEL = r(6, 4, 3, 3)

CASES = [
    # (call, error, words the message must contain)
    # edited_linear: shapes
    (linear(x=r(3, 4)), ValueError, ["x's last dim", "k=5", "(3, 4)"]),
    (linear(delta=DenseShift(r(3, 6, 4))), ValueError, ["delta", "(6, 4)", "(6, 5)"]),
    (linear(bias=r(5)), ValueError, ["bias", "(n,) = (6,)", "(5,)"]),
    (linear(delta=DenseShift(r(2, 6, 5))), ValueError, ["index=None", "(2)", "batch size (3)"]),
    # edited_linear: group indices
    (two_shifts(I([0, 1, 2])), ValueError, ["index", "[0, 2)", "max 2"]),
    (two_shifts(I([0, 1, -1])), ValueError, ["index", "[0, 2)", "min -1"]),
    (two_shifts(I([0.0, 1.0, 1.0])), TypeError, ["index", "integer dtype", "float32"]),
    (two_shifts(I([0, 1])), ValueError, ["index", "(b,) = (3,)", "(2,)"]),
    (two_shifts(I([[0, 1, 1]])), ValueError, ["index", "(b,) = (3,)", "(1, 3)"]),
    (two_shifts([0, 1, 1]), TypeError, ["index", "Tensor", "list"]),
    # edited_linear: dtypes and devices
    (linear(x=r(3, 5, dtype=torch.float64)), TypeError, ["weight dtype", "float32", "float64"]),
    (linear(x=torch.ones(3, 5, dtype=torch.long)), TypeError, ["dtype", "int64"]),
    (linear(delta=DenseShift(r(3, 6, 5, dtype=torch.bfloat16))), TypeError,
     ["delta dtype", "bfloat16", "float32"]),
    (linear(x=r(3, 5).to(META)), ValueError, ["weight is on cpu", "x is on meta"]),
    (linear(delta=DenseShift(r(3, 6, 5).to(META))), ValueError, ["delta is on meta", "cpu"]),
    (two_shifts(I([0, 1, 1], device=META)), ValueError, ["index", "meta"]),
    # shifts
    (lambda: DenseShift(r(6, 5)), ValueError, ["DenseShift.weight", "(l, n, k)", "(6, 5)"]),
    (lambda: DenseShift([[1.0]]), TypeError, ["DenseShift.weight", "Tensor", "list"]),
    (lambda: DenseShift(torch.ones(3, 6, 5, dtype=torch.long)), TypeError,
     ["DenseShift.weight", "floating-point", "int64"]),
    (lambda: DenseShift(r(3, 6, 5), bias=r(3, 5)), ValueError,
     ["DenseShift.bias", "(3, 6)", "(3, 5)"]),
    (lambda: DenseShift(r(3, 6, 5), mode="plus"), ValueError, ["mode", "'plus'"]),
    (lambda: LowRankShift(r(3, 6, 2), r(3, 3, 5)), ValueError,
     ["LowRankShift.up", "disagree", "(3, 6, 2)", "(3, 3, 5)"]),
    (lambda: LowRankShift(r(3, 6, 2), r(2, 2, 5)), ValueError, ["disagree on l", "(2, 2, 5)"]),
    (lambda: LowRankShift(r(3, 6, 2), r(3, 2, 5, dtype=torch.float64)), TypeError,
     ["share a dtype", "float32", "float64"]),
    (lambda: LowRankShift(torch.ones(3, 6, 2, dtype=torch.int32), torch.ones(3, 2, 5)),
     TypeError, ["LowRankShift.up", "floating-point", "int32"]),
    (lambda: LowRankShift(r(3, 6, 2), r(3, 2, 5).to(META)), ValueError, ["device", "meta"]),
    (lambda: Grouping.from_index(I([0, 3]), 2, None), ValueError, ["[0, 2)", "max 3"]),
    (lambda: Grouping.from_index(I([0]), -1, None), ValueError, ["num_shifts", ">= 0", "-1"]),
    # the generator: sizes, rank, style
    (generator(rank=-1), ValueError, ["rank", "positive int", "-1"]),
    (generator(rank=0), ValueError, ["rank", "positive int", "got 0"]),
    (generator(rank=2.0), ValueError, ["rank", "positive int", "2.0"]),
    (generator(style_dim=0), ValueError, ["style_dim", "positive int", "got 0"]),
    (generator(style_dim=-3), ValueError, ["style_dim", "positive int", "-3"]),
    (generator(hidden_dim=0), ValueError, ["hidden_dim", "positive int", "got 0"]),
    (generator(trunk_layers=-1), ValueError, ["trunk_layers", ">= 0", "-1"]),
    (generator(rank=4, branch_dim=0), ValueError, ["branch_dim", "positive int", "got 0"]),
    (generator(rank=None, branch_dim=4), ValueError, ["branch_dim", "low-rank heads only"]),
    (generator(targets={}), ValueError, ["targets", "at least one"]),
    (generator(targets={"a": (6,)}), ValueError, ["targets['a']", "(n, k)", "(6,)"]),
    (generator(mode="plus"), ValueError, ["mode", "'plus'"]),
    (styled(r(2, 3)), ValueError, ["style", "(l, 4)", "(2, 3)"]),
    (styled(r(4)), ValueError, ["style", "(l, 4)", "(4,)"]),
    (styled(r(2, 4, dtype=torch.float64)), TypeError, ["style dtype", "float64", "float32"]),
    (styled(torch.ones(2, 4, dtype=torch.long)), TypeError, ["style", "floating-point", "int64"]),
    (styled(r(2, 4).to(META)), ValueError, ["style is on meta", "generator is on cpu"]),
    # make_editable: modules it cannot edit, bad patterns and options
    (wrap(nn.LayerNorm(4)), ValueError, ["'0' is of type LayerNorm", "cannot edit", "Linear"]),
    (wrap(nn.Embedding(4, 3)), ValueError, ["'0' is of type Embedding", "cannot edit"]),
    (wrap(nn.LSTM(4, 3)), ValueError, ["'0' is of type LSTM", "cannot edit"]),
    (wrap(nn.Conv3d(4, 3, 3)), ValueError, ["'0' is of type Conv3d", "Conv2d"]),
    (wrap(nn.ConvTranspose2d(4, 3, 3)), ValueError, ["ConvTranspose2d", "cannot edit"]),
    (wrap(nn.Bilinear(4, 4, 3)), ValueError, ["'0' is of type Bilinear", "register_editable"]),
    (wrap(nn.MultiheadAttention(8, 2, add_bias_kv=True)), ValueError, ["add_bias_kv=True"]),
    (wrap(nn.MultiheadAttention(8, 2, kdim=4, vdim=4)), ValueError,
     ["kdim/vdim", "split_in_proj=True"]),
    (wrap(nn.Linear(4, 3), batch_dim=-1), ValueError, ["batch_dim", ">= 0", "-1"]),
    (wrap(nn.Linear(4, 3), batch_dim=1.0), TypeError, ["batch_dim"]),
    (lambda: make_editable(nn.Sequential(nn.Linear(4, 3)), ["nothing.*"]), ValueError,
     ["['nothing.*'] select no editable weight", "available names include ['0']"]),
    (lambda: make_editable(nn.Linear(4, 3), ["*"]), ValueError, ["the model itself"]),
    (lambda: make_editable(nn.Sequential(nn.Linear(4, 3)), "0"), TypeError,
     ["targets", "the string '0'"]),
    (lambda: make_editable(nn.Sequential(nn.Linear(4, 3)), []), ValueError,
     ["targets", "at least one"]),
    (lambda: make_editable("model", ["0"]), TypeError, ["model", "nn.Module", "str"]),
    (lambda: editable_modules("model"), TypeError, ["model", "nn.Module", "str"]),
    (lambda: EditableLinear(5, 6, batch_dim=3)(r(2, 5), DenseShift(r(2, 6, 5))), ValueError,
     ["batch_dim=3", "at least 5 dims", "(2, 5)"]),
    # edit, edited_call, merge
    (entered({"nope": DenseShift(r(2, 6, 5))}), KeyError, ["['nope']", "editable: ['0']"]),
    (entered({"0": DenseShift(r(2, 6, 4))}), ValueError, ["shift '0'", "(6, 4)", "(6, 5)"]),
    (entered({"0": DenseShift(r(2, 6, 5))}, I([0, 5])), ValueError, ["index", "[0, 2)"]),
    (entered({"0": DenseShift(r(2, 6, 5))}, I([0.0, 1.0])), TypeError, ["index", "integer"]),
    (entered([DenseShift(r(2, 6, 5))]), TypeError, ["shifts must be a mapping", "list"]),
    (entered({"0": DenseShift(r(2, 6, 5))}, model=nn.Sequential(nn.Linear(5, 6))), KeyError,
     ["['0']", "editable: []"]),
    (called({"0": DenseShift(r(2, 6, 5, dtype=torch.float64))}, r(2, 5)), TypeError,
     ["delta dtype", "float64", "float32"]),
    (called({"0": DenseShift(r(2, 6, 5))}, r(3, 5), I([0, 1])), ValueError,
     ["one entry per sample"]),
    (lambda: merge(editable(), {"0": DenseShift(r(2, 6, 5))}, 2), ValueError,
     ["which", "[0, 2)", "got 2"]),
    (lambda: merge(editable(), {"0": DenseShift(r(2, 6, 5))}, -1), ValueError, ["got -1"]),
    (lambda: merge(editable(), {"0": DenseShift(r(2, 6, 5))}, 1.0), ValueError, ["which"]),
    (merged_twice, RuntimeError, ["merged shifts already", "unmerge"]),
    (lambda: unmerge(editable()), RuntimeError, ["nothing is merged"]),
    # convolution and materialised kernels
    (lambda: edited_conv(r(2, 4, 5, 5), KERNEL, None, DenseShift(r(2, 6, 36)), stride=0),
     ValueError, ["stride", ">= 1", "got 0"]),
    (lambda: edited_conv(r(2, 4, 5, 5), KERNEL, None, DenseShift(r(2, 6, 35))), ValueError,
     ["(6, 35)", "(6, 4, 3, 3)", "(6, 36)"]),
    (lambda: edited_conv(r(2, 4, 5), KERNEL, None, DenseShift(r(2, 6, 36))), ValueError,
     ["x", "2 spatial dims", "(2, 4, 5)"]),
    (lambda: edited_conv(r(2, 3, 5, 5), KERNEL, None, DenseShift(r(2, 6, 36))), ValueError,
     ["x", "4 channels", "got 3"]),
    (lambda: edited_conv(r(2, 4, 5, 5), None, None, None), TypeError, ["weight", "NoneType"]),
    (lambda: materialise(r(6, 4), DenseShift(r(2, 6, 5))), ValueError,
     ["weight", "(n, k) = (6, 5)", "(6, 4)"]),
]  # fmt: skip


def _id(case) -> str:
    return f"{case[1].__name__}-{case[2][0]}"[:60]


@pytest.mark.parametrize(("call", "error", "words"), CASES, ids=[_id(c) for c in CASES])
def test_a_bad_argument_is_named(call, error, words):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value.args[0]) if caught.value.args else str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message}"


def test_a_refused_edit_leaves_the_model_unedited():
    model = editable()
    x = r(2, 5)
    before = model(x)
    with pytest.raises(ValueError):
        edit(model, {"0": DenseShift(r(2, 6, 4))}).__enter__()
    assert torch.equal(model(x), before)  # no shift left active
