"""Roofline floors of per-sample weight editing: flops, minimum bytes and the time they imply.

For each benchmark shape and each algorithm this prints (as Markdown tables, the same ones as
``docs/roofline.md``) the floating-point work, the fewest bytes the algorithm must move through
main memory, the launch count, and the floor ``max(flops / peak, bytes / bandwidth)`` on the
chosen device (default: H100 SXM, bf16). Nothing here is measured: these are lower bounds from
formulas, the yardstick for measured times.

Minimum bytes assume every kernel reads each of its inputs once from main memory and writes each
output once; re-reads of tiles are served from L2. Algorithms (``s`` bytes per element, ``R = b·t``
rows, ``P = n·k``, ``l`` shifts, ``r`` rank):

* ``fused`` (Triton): ``x``, ``W``, the shifts, ``y`` once; ``W ⊕ ΔW`` only in registers.
* ``materialise``: write ``W ⊕ ΔW`` per shift (``l·P``), read it back in a batched GEMM.
* ``split``: ``x Wᵀ`` then ``bmm(x, ΔWᵀ)`` accumulating into it: ``x`` read twice, ``y`` written,
  read and written again, twice the flops (dense shifts, mode ``shift``).
* ``lowrank``: ``x Wᵀ + (x Vᵀ) Uᵀ`` with factors gathered per sample.
* ``naive``: per sample, ``W ⊕ ΔW_index[b]`` then ``F.linear``: ``2b`` launches.

Run ``python benchmarks/roofline.py --help``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Case:
    """One edited linear layer call: ``b`` samples of ``t`` tokens, ``l`` shifts of ``(n, k)``."""

    name: str
    b: int
    t: int
    n: int
    k: int
    l: int
    rank: int | None = None

    @property
    def rows(self) -> int:
        return self.b * self.t


@dataclass(frozen=True)
class Row:
    case: str
    algorithm: str
    flops: float
    bytes: float
    launches: int
    compute_us: float
    memory_us: float
    floor_us: float
    intensity: float
    regime: str


# The benchmark shapes of benchmarks/edit_linear.py and the PerFRDiff edit set (DESIGN.md §4:
# d = 512, 25-d output, 16 listeners × 10 samples, 50-frame windows).
CASES: tuple[Case, ...] = (
    Case("dense 512×512, 16×10, t=50", b=160, t=50, n=512, k=512, l=16),
    Case("dense 512×512, 160×1, t=1", b=160, t=1, n=512, k=512, l=160),
    Case("low-rank r=8 512×512, 16×10, t=50", b=160, t=50, n=512, k=512, l=16, rank=8),
    Case("PerFRDiff in-proj 1536×512 (×2)", b=160, t=50, n=1536, k=512, l=16),
    Case("PerFRDiff output map 25×512", b=160, t=50, n=25, k=512, l=16),
)
# Layers of the PerFRDiff edit set and how often each occurs in it.
PERFRDIFF_EDIT_SET: tuple[tuple[str, int], ...] = (
    ("PerFRDiff in-proj 1536×512 (×2)", 2),
    ("PerFRDiff output map 25×512", 1),
)

# The fused low-rank kernel repeats the shrink once per n-tile of this width (nominal).
_BLOCK_N = 128


#: The fused kernel, and the cumsum turning group sizes into segment starts (as the planner counts).
FUSED_LAUNCHES = 2


def algorithms(c: Case, s: int) -> dict[str, tuple[float, float, int]]:
    """``name -> (flops, bytes, launches)`` of every algorithm that applies to ``c``."""
    rows, n, k, lcount, p = c.rows, c.n, c.k, c.l, c.n * c.k
    io = rows * (k + n) + p  # x read, y written, W read
    gemm = 2.0 * rows * p
    if c.rank is None:
        return {
            "fused (Triton)": (gemm, s * (io + lcount * p), FUSED_LAUNCHES),
            "materialise + bmm": (gemm + lcount * p, s * (io + 3 * lcount * p), 2),
            "split x·Wᵀ + bmm(x, ΔWᵀ)": (
                2 * gemm,
                s * (io + rows * k + 2 * rows * n + lcount * p),
                2,
            ),
            "naive per-sample": (gemm + c.b * p, s * (io + 3 * c.b * p), 2 * c.b),
        }
    r = c.rank
    factors = lcount * r * (n + k)
    build = 2.0 * lcount * p * r
    gathered = c.b * r * (n + k)
    return {
        "fused (Triton)": (
            gemm + 2.0 * rows * r * k * math.ceil(n / _BLOCK_N) + 2.0 * rows * r * n,
            s * (io + factors),
            FUSED_LAUNCHES,
        ),
        "lowrank x·Wᵀ + (x·Vᵀ)·Uᵀ": (
            gemm + 2.0 * rows * r * (n + k),
            s * (io + rows * k + 2 * rows * n + factors + 2 * gathered + 2 * rows * r),
            5,
        ),
        "materialise U·V + bmm": (
            gemm + build + lcount * p,
            s * (io + factors + 4 * lcount * p),
            3,
        ),
        "split after U·V": (
            2 * gemm + build,
            s * (io + rows * k + 2 * rows * n + factors + 2 * lcount * p),
            3,
        ),
        "naive per-sample": (
            gemm + 2.0 * c.b * p * r + c.b * p,
            s * (io + gathered + 4 * c.b * p),
            3 * c.b,
        ),
    }


def roofline(cases: tuple[Case, ...], s: int, peak: float, bandwidth: float) -> list[Row]:
    rows = []
    for c in cases:
        for name, (flops, traffic, launches) in algorithms(c, s).items():
            compute, memory = flops / peak * 1e6, traffic / bandwidth * 1e6
            rows.append(
                Row(
                    c.name,
                    name,
                    flops,
                    traffic,
                    launches,
                    compute,
                    memory,
                    max(compute, memory),
                    flops / traffic,
                    "memory" if memory >= compute else "compute",
                )
            )
    return rows


def markdown(rows: list[Row]) -> str:
    """One Markdown table per case."""
    out = []
    for case in dict.fromkeys(r.case for r in rows):
        out += [
            f"#### {case}",
            "",
            "| algorithm | GFLOP | min MB | launches | flop/B | compute µs | memory µs "
            "| floor µs | regime |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in (r for r in rows if r.case == case):
            out.append(
                f"| {r.algorithm} | {r.flops / 1e9:.3f} | {r.bytes / 1e6:.2f} | {r.launches} "
                f"| {r.intensity:.1f} | {r.compute_us:.2f} | {r.memory_us:.2f} "
                f"| **{r.floor_us:.2f}** | {r.regime} |"
            )
        out.append("")
    return "\n".join(out)


def edit_set_totals(rows: list[Row]) -> str:
    """Fused vs best torch alternative, summed over the PerFRDiff edit set."""
    fused = best = 0.0
    for case, count in PERFRDIFF_EDIT_SET:
        mine = [r for r in rows if r.case == case]
        fused += count * next(r.floor_us for r in mine if r.algorithm.startswith("fused"))
        best += count * min(r.floor_us for r in mine if not r.algorithm.startswith("fused"))
    return (
        f"PerFRDiff edit set per denoiser call: fused floor {fused:.2f} µs, "
        f"best torch alternative floor {best:.2f} µs ({best / fused:.2f}×)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--element-bytes", type=int, default=2, help="bytes per element (bf16: 2)")
    parser.add_argument(
        "--peak-tflops", type=float, default=990.0, help="dense tensor-core peak (H100 bf16: 990)"
    )
    parser.add_argument(
        "--bandwidth-tbs", type=float, default=3.35, help="HBM bandwidth, TB/s (H100 SXM: 3.35)"
    )
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)
    peak, bandwidth = args.peak_tflops * 1e12, args.bandwidth_tbs * 1e12
    rows = roofline(CASES, args.element_bytes, peak, bandwidth)
    print(
        f"Roofline floors (not measurements): {args.element_bytes}-byte elements, "
        f"peak {args.peak_tflops:g} TFLOP/s, {args.bandwidth_tbs:g} TB/s, "
        f"ridge {peak / bandwidth:.0f} flop/B\n"
    )
    print(markdown(rows))
    print(edit_set_totals(rows))
    if args.json is None:
        return 0
    with open(args.json, "w") as f:
        json.dump(
            {
                "settings": vars(args),
                "cases": [asdict(c) for c in CASES],
                "rows": [asdict(r) for r in rows],
            },
            f,
            indent=2,
        )
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
