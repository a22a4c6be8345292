"""weditlib: hypernetwork weight editing for PyTorch.

Apply per-sample weight shifts ``W + ΔW_b`` (or ``W ⊙ (1 + ΔW_b)``) to any model's linear,
attention and convolution layers in batched, exact and fast ways.
"""

from weditlib._deprecation import renamed_names
from weditlib.conv import conv_algorithm_names, edited_conv, plan_conv
from weditlib.conv_layers import EditableConv1d, EditableConv2d
from weditlib.deltas import DenseShift, Grouping, LowRankShift
from weditlib.editing import (
    EditableEntry,
    edit,
    editable_modules,
    edited_call,
    make_editable,
    materialise_shifts,
    register_editable,
)
from weditlib.functional import edited_linear, plan
from weditlib.hyper import MultiBranchShiftGenerator
from weditlib.layers import EditableFeedForward, EditableLinear, EditableMultiheadAttention
from weditlib.materialised import EditedWeights, materialise
from weditlib.merging import merge, unmerge
from weditlib.planner import MachineModel, Plan, algorithm_names, calibrate, set_machine_model
from weditlib.row_range import RowRangeShift
from weditlib.row_scaled import RowScaledShift

__version__ = "0.1.0"

__all__ = [
    "DenseShift",
    "EditableConv1d",
    "EditableConv2d",
    "EditableEntry",
    "EditableFeedForward",
    "EditableLinear",
    "EditableMultiheadAttention",
    "EditedWeights",
    "Grouping",
    "LowRankShift",
    "MachineModel",
    "MultiBranchShiftGenerator",
    "Plan",
    "RowRangeShift",
    "RowScaledShift",
    "algorithm_names",
    "calibrate",
    "conv_algorithm_names",
    "edit",
    "editable_modules",
    "edited_call",
    "edited_conv",
    "edited_linear",
    "make_editable",
    "materialise",
    "materialise_shifts",
    "merge",
    "plan",
    "plan_conv",
    "register_editable",
    "set_machine_model",
    "unmerge",
]

#: Names of the previous release, served for one more release with a ``DeprecationWarning``.
RENAMED: dict[str, str] = {
    "DenseDelta": "DenseShift",
    "LowRankDelta": "LowRankShift",
    "RowScaledDelta": "RowScaledShift",
    "MaterialisedDelta": "EditedWeights",
    "MultiBranchDeltaGenerator": "MultiBranchShiftGenerator",
}
__getattr__ = renamed_names(__name__, RENAMED, globals())
