"""DoRA's per-row weight norm ``‖W + s·B·A‖`` of many adapters, without building ``W + s·B·A``.

A DoRA adapter (PEFT's ``use_dora=True``) edits a weight into ``m ⊙ (W + ΔW) / ‖W + ΔW‖`` with
``ΔW = s·B·A``, the norm taken over each output row (a conv kernel's output channel) and
detached from autograd, and ``m`` the trained magnitude. weditlib folds ``m / ‖W + ΔW‖`` into a
:class:`~weditlib.RowScaledShift`'s scale, so only the norms are needed. Per row ``j``, with
``U = s·B`` and ``V = A``::

    ‖W_j + U_j V‖² = ‖W_j‖² + 2 U_j · (V W_jᵀ) + U_j (V Vᵀ) U_jᵀ

``W Vᵀ`` costs ``n·k·r`` multiply-adds per adapter, ``V Vᵀ`` ``r²·k`` and the rest ``n·r²``:
``O(n·k·r)`` per adapter against ``O(n·k·r)`` plus an ``(n, k)`` matrix written and read for
building ``W + ΔW``, and ``‖W‖²`` is shared by all adapters.
"""

from __future__ import annotations

import torch
from torch import Tensor


def row_norms(weight: Tensor, up: Tensor, down: Tensor) -> Tensor:
    """``‖W + U_i V_i‖`` of every output row of every shift ``i``, detached.

    Computed in float32 at least (the expansion cancels where ``ΔW ≈ -W``, which half
    precision would not survive) and returned in ``weight``'s dtype.

    Args:
        weight: ``(n, k)`` the base weight.
        up: ``(l, n, r)`` the left factors ``U = s·B``.
        down: ``(l, r, k)`` the right factors ``V = A``.

    Returns:
        ``(l, n)`` the row norms, without autograd history (DoRA detaches them).
    """
    with torch.no_grad():
        compute = torch.promote_types(weight.dtype, torch.float32)
        w, u, v = (t.detach().to(compute) for t in (weight, up, down))
        own = w.square().sum(1)  # (n,)
        cross = (torch.matmul(w, v.transpose(1, 2)) * u).sum(-1)  # (l, n): U_j · (V W_jᵀ)
        gram = torch.bmm(v, v.transpose(1, 2))  # (l, r, r)
        quadratic = (torch.bmm(u, gram) * u).sum(-1)  # (l, n)
        squared = own + 2 * cross + quadratic
        return squared.clamp_min(0).sqrt().to(weight.dtype)
