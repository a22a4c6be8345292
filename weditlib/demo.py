"""A short tour of weditlib: ``python -m weditlib.demo``.

Edits the cross-attention and feed-forward weights of a stock ``nn.TransformerDecoder`` with
per-listener shifts from a hypernetwork, checks the result against running every sample through
its own copy of the model, and shows which algorithm the planner picks for a few shapes.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

import weditlib
from weditlib import DenseShift, LowRankShift


def check_against_copies(seed: int) -> float:
    """Max abs difference between an edited batch and per-sample edited model copies."""
    torch.manual_seed(seed)
    layer = nn.TransformerDecoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
    base = nn.TransformerDecoder(layer, num_layers=2).double().eval()
    model = copy.deepcopy(base)
    weights = weditlib.make_editable(model, ["layers.*.multihead_attn.in_proj", "layers.*.linear2"])
    generator = weditlib.MultiBranchShiftGenerator(16, weights, hidden_dim=32, rank=4).double()
    with torch.no_grad():  # leave the zero initialisation so the shifts are visible
        for branch in generator.branches:
            branch.up.weight.normal_(std=0.05)
    listeners, samples = 3, 2
    index = torch.arange(listeners).repeat_interleave(samples)
    tgt = torch.randn(listeners * samples, 10, 64, dtype=torch.float64)
    memory = torch.randn(listeners * samples, 20, 64, dtype=torch.float64)
    shifts = generator(torch.randn(listeners, 16, dtype=torch.float64))
    print(f"editable weights: {weights}")
    print(f"generator parameters: {generator.parameter_report()['total']:,}")
    with torch.no_grad(), weditlib.edit(model, shifts, index=index):
        edited = model(tgt, memory)
    worst = 0.0
    with torch.no_grad():
        for b in range(listeners * samples):
            clone = copy.deepcopy(base)
            params = dict(clone.named_parameters())
            for name, delta in shifts.items():
                key = name + ("_weight" if name.endswith("in_proj") else ".weight")
                params[key] += delta.matrix()[index[b]]
            alone = clone(tgt[b : b + 1], memory[b : b + 1])[0]
            worst = max(worst, (edited[b] - alone).abs().max().item())
    return worst


def show_plans() -> None:
    """The planner's choice and estimates for the benchmark shapes (nothing is computed)."""
    n = k = 512
    cases = [
        ("16 listeners x 10 samples, T=50, dense", 16, 10, 50, None),
        ("160 listeners x 1 sample, T=1, dense", 160, 1, 1, None),
        ("16 listeners x 10 samples, T=50, rank 8", 16, 10, 50, 8),
        ("160 listeners x 1 sample, T=1, rank 8", 160, 1, 1, 8),
    ]
    for label, listeners, samples, tokens, rank in cases:
        # torch.empty does not touch memory: planning only reads shapes and the index
        x = torch.empty(listeners * samples, tokens, k)
        if rank is None:
            delta = DenseShift(torch.empty(listeners, n, k))
        else:
            delta = LowRankShift(torch.empty(listeners, n, rank), torch.empty(listeners, rank, k))
        index = torch.arange(listeners).repeat_interleave(samples)
        plan = weditlib.plan(x, torch.empty(n, k), delta, index)
        estimates = ", ".join(f"{name} {1e3 * s:.2f}" for name, s in plan.candidates.items())
        print(f"  {label:<42} -> {plan.algorithm:<12} (estimated ms: {estimates})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    worst = check_against_copies(args.seed)
    print(f"edited batch vs per-sample model copies: max |difference| = {worst:.2e} (float64)")
    if worst > 1e-9:
        print("MISMATCH")
        return 1
    print("planner choices for N = K = 512:")
    show_plans()
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
