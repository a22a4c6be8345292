"""Which shifts are active now: scoped to the thread or asyncio task that opened the edit.

Every :func:`weditlib.edit` block is one :class:`EditScope` (the shifts it makes active, keyed by
module identity). The active :class:`EditState` is the composition of the scopes open in the
current context, in the order they were entered; a later scope overrides an earlier one for the
same weight. Leaving a block removes *its* scope, wherever it sits (never "restore what was there
on entry"), so blocks exited out of order cannot leave shifts behind.

The state lives in a :class:`contextvars.ContextVar` (one per thread and per asyncio task) and is
mirrored into a :class:`threading.local` whenever it changes, because ``torch.compile`` cannot
trace ``ContextVar.get`` but traces (and guards per thread on) a thread-local attribute. Eager code
reads the context variable; traced code reads the mirror.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn

from weditlib.deltas import Grouping
from weditlib.materialised import EditedWeights
from weditlib.row_scaled import AnyShift

#: A weight's shift (built into the weight already under ``edit(..., materialise=True)``) and
#: the grouping of the block's index.
ActiveShift = tuple[AnyShift | EditedWeights, Grouping | None]


@dataclass(frozen=True, eq=False)
class EditScope:
    """The shifts one ``edit()`` block makes active: module → local weight name → shift.

    Compared by identity: two blocks with equal shifts are still two scopes.
    """

    shifts: Mapping[nn.Module, Mapping[str, ActiveShift]]


@dataclass(frozen=True, eq=False)
class EditState:
    """Open scopes of one context and their composition, keyed by ``id(module)``.

    ``by_module`` is keyed by ``id`` rather than by the module so that ``torch.compile`` looks it
    up with a constant; the scopes keep the modules alive, so the ids cannot be reused meanwhile.
    """

    scopes: tuple[EditScope, ...]
    by_module: dict[int, dict[str, ActiveShift]]

    @staticmethod
    def compose(scopes: tuple[EditScope, ...]) -> EditState | None:
        if not scopes:
            return None
        by_module: dict[int, dict[str, ActiveShift]] = {}
        for scope in scopes:
            for module, shifts in scope.shifts.items():
                by_module.setdefault(id(module), {}).update(shifts)
        return EditState(scopes, by_module)


_ACTIVE: ContextVar[EditState | None] = ContextVar("weditlib_edit_state", default=None)
_MIRROR = threading.local()


def current_state() -> EditState | None:
    """The edit state of the calling thread / asyncio task (``None``: nothing is edited)."""
    if torch.compiler.is_compiling():
        return getattr(_MIRROR, "state", None)
    return _ACTIVE.get()


def _set(state: EditState | None) -> None:
    _ACTIVE.set(state)
    _MIRROR.state = state


def open_scope(scope: EditScope) -> None:
    """Make ``scope`` active in the current context, on top of the scopes already open."""
    state = _ACTIVE.get()
    _set(EditState.compose((*(state.scopes if state else ()), scope)))


def close_scope(scope: EditScope) -> None:
    """Remove ``scope`` from the current context, wherever it is among the open scopes.

    Raises:
        RuntimeError: ``scope`` is not open in this context (it was entered in another thread or
            asyncio task, or closed already).
    """
    state = _ACTIVE.get()
    scopes = state.scopes if state else ()
    if not any(s is scope for s in scopes):
        raise RuntimeError(
            "this edit() block is not open in the current thread / asyncio task: a block must be "
            "exited in the context that entered it, and only once"
        )
    _set(EditState.compose(tuple(s for s in scopes if s is not scope)))


@contextlib.contextmanager
def using(state: EditState | None) -> Iterator[None]:
    """Run a block under exactly ``state`` (e.g. a checkpoint's recomputation), then restore."""
    previous = _ACTIVE.get()
    _set(state)
    try:
        yield
    finally:
        _set(previous)
