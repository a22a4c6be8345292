"""weditlib: hypernetwork weight editing for PyTorch.

Apply per-sample weight shifts ``W + ΔW_b`` (or ``W ⊙ (1 + ΔW_b)``) to any model's linear and
attention layers in batched, exact and fast ways.
"""

from weditlib.deltas import DenseDelta, Grouping, LowRankDelta
from weditlib.editing import (
    EditableEntry,
    edit,
    editable_modules,
    edited_call,
    make_editable,
    register_editable,
)
from weditlib.functional import edited_linear, plan
from weditlib.hyper import MultiBranchDeltaGenerator
from weditlib.layers import EditableFeedForward, EditableLinear, EditableMultiheadAttention
from weditlib.merging import merge, unmerge
from weditlib.planner import MachineModel, Plan, algorithm_names, calibrate, set_machine_model

__version__ = "0.1.0"

__all__ = [
    "DenseDelta",
    "EditableEntry",
    "EditableFeedForward",
    "EditableLinear",
    "EditableMultiheadAttention",
    "Grouping",
    "LowRankDelta",
    "MachineModel",
    "MultiBranchDeltaGenerator",
    "Plan",
    "algorithm_names",
    "calibrate",
    "edit",
    "editable_modules",
    "edited_call",
    "edited_linear",
    "make_editable",
    "merge",
    "plan",
    "register_editable",
    "set_machine_model",
    "unmerge",
]
