"""weditlib: hypernetwork weight editing for PyTorch.

Apply per-sample weight shifts ``W + ΔW_b`` (or ``W ⊙ (1 + ΔW_b)``) to any model's linear,
attention and convolution layers in batched, exact and fast ways.
"""

from weditlib.conv import conv_algorithm_names, edited_conv, plan_conv
from weditlib.conv_layers import EditableConv1d, EditableConv2d
from weditlib.deltas import DenseDelta, Grouping, LowRankDelta
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
from weditlib.hyper import MultiBranchDeltaGenerator
from weditlib.layers import EditableFeedForward, EditableLinear, EditableMultiheadAttention
from weditlib.materialised import MaterialisedDelta, materialise
from weditlib.merging import merge, unmerge
from weditlib.planner import MachineModel, Plan, algorithm_names, calibrate, set_machine_model
from weditlib.row_scaled import RowScaledDelta

__version__ = "0.1.0"

__all__ = [
    "DenseDelta",
    "EditableConv1d",
    "EditableConv2d",
    "EditableEntry",
    "EditableFeedForward",
    "EditableLinear",
    "EditableMultiheadAttention",
    "Grouping",
    "LowRankDelta",
    "MachineModel",
    "MaterialisedDelta",
    "MultiBranchDeltaGenerator",
    "Plan",
    "RowScaledDelta",
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
