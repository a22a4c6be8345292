"""The paper's two label sets: which real reactions count as appropriate for an item.

The paper scores every model against two sets of real reactions (its Tables 1-4 have a MAFRG
and a PMAFRG column for the generic and the personalised model alike):

* **MAFRG** (the challenge's): ``A_k = {j : M[k, j]}``, every real reaction of a speaker
  behaviour similar to item ``k``'s, whoever expressed it (``neighbour_emotion_<split>.npy``).
* **PMAFRG**: only those of them expressed by item ``k``'s *own listener* ("its generic real
  AFRs include not only its personalised real AFRs but also real AFRs expressed by other
  listeners", the paper's §4.5):
  ``P_k = {j : M[k, j] and listener(j) = listener(k)} ∪ {k}``.

A listener's identity is the ``site/session/role`` of its clip (:func:`perfrdiff.data.person_of`,
the same key as the authors' release). Edge cases, by the rule above:

* the item's own real reaction is always in ``P_k``, even where ``M[k, k]`` is false, so no
  row is empty;
* a listener with one clip in the split keeps only its own reaction (``P_k = {k}``): FRCorr
  and FRdist then score agreement with that one reaction;
* mirrored items (the CSV's row swapped) have the row's *speaker* as their listener, so a person
  who both listens and speaks in a session is one listener in both directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from perfrdiff.metrics._inputs import neighbour_array

#: The label sets, in the paper's column order.
LABEL_SETS = ("MAFRG", "PMAFRG")


def _listener_array(listeners: Sequence[str]) -> np.ndarray:
    """``listeners`` as a 1-d object array of strings."""
    if isinstance(listeners, str) or not isinstance(listeners, Sequence | np.ndarray):
        raise TypeError(
            "listeners: expected a sequence of listener identities (site/session/role), one "
            f"per item, got {type(listeners).__name__}"
        )
    array = np.asarray(listeners, dtype=object)
    if array.ndim != 1 or not all(isinstance(x, str) for x in array):
        raise TypeError("listeners: expected a flat sequence of str (site/session/role)")
    return array


def own_listener_neighbours(neighbours: Any, listeners: Sequence[str]) -> np.ndarray:
    """The PMAFRG label set: ``neighbours`` restricted to each item's own listener, plus the
    item's own reaction.

    Args:
        neighbours: ``(n, n)`` bool, ``M[k, j]``: ``G_j`` is appropriate for speaker ``k``.
        listeners: ``n`` listener identities in item order (``person_of(listener clip)``).

    Returns:
        ``(n, n)`` bool: ``M[k, j]`` where ``listeners[j] == listeners[k]``, else False;
            True on the diagonal.
    """
    ids = _listener_array(listeners)
    shape = np.shape(neighbours)
    if len(shape) == 2 and shape[0] != ids.shape[0]:
        raise ValueError(
            f"listeners: expected one identity per item (n = {shape[0]}, from neighbours), "
            f"got {ids.shape[0]}"
        )
    neighbours = neighbour_array(neighbours, ids.shape[0])
    same = ids[:, None] == ids[None, :]
    own = neighbours & same
    np.fill_diagonal(own, True)
    return own


def label_set_matrices(neighbours: Any, listeners: Sequence[str] | None) -> dict[str, np.ndarray]:
    """``{"MAFRG": M, "PMAFRG": P}`` (:func:`own_listener_neighbours`); only MAFRG when
    ``listeners`` is None (identities unknown, e.g. predictions scored without their split)."""
    neighbours = np.asarray(neighbours)
    sets = {"MAFRG": neighbours}
    if listeners is not None:
        sets["PMAFRG"] = own_listener_neighbours(neighbours, listeners)
    return sets


def item_listeners(pairs: Sequence[Any]) -> list[str]:
    """Listener identity of every evaluation item (``ClipPair``s, mirrored order)."""
    from perfrdiff.data import person_of

    return [person_of(pair.listener) for pair in pairs]
