"""Activation checkpointing of edited forwards: recompute under the edit of the forward.

``torch.utils.checkpoint`` runs the checkpointed function a second time during backward. That
recomputation restores the RNG and autocast state of the forward, but not the edit state: when
``backward()`` runs after the ``edit()`` block (or on an autograd worker thread, which does not
share the caller's context), the recomputation would silently run the base weights and give wrong
gradients.

So when an editable layer reads an active shift, :func:`capture` finds the checkpoints whose
forward is running on the call stack (reentrant: ``CheckpointFunction.forward``; non-reentrant:
``checkpoint``'s frame) and wraps their recomputation function so it runs under the edit state of
the forward. It reads torch's private frame locals; if a future torch changes them, it raises a
clear error instead of guessing.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.utils.checkpoint as torch_checkpoint

from weditlib import edit_state
from weditlib.edit_state import EditState

_REENTRANT_FORWARD = torch_checkpoint.CheckpointFunction.forward.__code__
_NON_REENTRANT = inspect.unwrap(torch_checkpoint.checkpoint).__code__
_MAX_DEPTH = 256  # frames searched above an edited layer; model nesting is far shallower
_top_saved_tensors_hooks = getattr(torch._C._autograd, "_top_saved_tensors_default_hooks", None)


def _may_be_checkpointing() -> bool:
    """Cheap test before searching the stack: a reentrant checkpoint runs its forward without
    grad, a non-reentrant one under saved-tensor hooks; inference mode has no backward at all.
    (Training without checkpointing, the common case, never searches.)
    """
    if torch.is_inference_mode_enabled():
        return False
    if not torch.is_grad_enabled():
        return True
    return _top_saved_tensors_hooks is None or _top_saved_tensors_hooks(False) is not None


class _RecomputeUnder:
    """A checkpoint's recomputation function, run under the edit state of its forward."""

    def __init__(self, function: Callable[..., Any], state: EditState) -> None:
        self.function = function
        self.state = state
        self.conflict = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.conflict:
            raise RuntimeError(
                "a checkpointed function ran edited layers under two different edit() states "
                "(an edit() block opened or closed inside the checkpointed function); its "
                "recomputation cannot reproduce that. Open the edit outside the checkpoint"
            )
        with edit_state.using(self.state):
            return self.function(*args, **kwargs)


def _wrap(owner: object, attribute: str, state: EditState) -> None:
    current = getattr(owner, attribute)
    if isinstance(current, _RecomputeUnder):
        current.conflict = current.conflict or current.state is not state
    else:
        setattr(owner, attribute, _RecomputeUnder(current, state))


def _unexpected(kind: str) -> RuntimeError:
    return RuntimeError(
        f"weditlib cannot attach the edit state to this torch version's {kind} checkpoint, so "
        "its recomputation would run unedited; please report this with your torch version"
    )


def capture(state: EditState) -> None:
    """Make every checkpoint whose forward encloses the caller recompute under ``state``."""
    if not _may_be_checkpointing():
        return
    frame = sys._getframe(1)
    for _ in range(_MAX_DEPTH):
        if frame is None:
            return
        code = frame.f_code
        if code is _REENTRANT_FORWARD:
            ctx = frame.f_locals.get("ctx")
            if ctx is None or not hasattr(ctx, "run_function"):
                raise _unexpected("reentrant")
            _wrap(ctx, "run_function", state)
        elif code is _NON_REENTRANT and not frame.f_locals.get("use_reentrant", False):
            generator = frame.f_locals.get("gen")
            recompute_frame = None
            if generator is not None and generator.gi_frame is not None:
                recompute_frame = generator.gi_frame.f_locals.get("new_frame")
            if recompute_frame is None:
                raise _unexpected("non-reentrant")
            _wrap(recompute_frame, "recompute_fn", state)
        frame = frame.f_back
