"""Run the paper's ablations (Table 3: GAFRG / input p / weight editing; Table 4: edited weights).

Reuses the trained emotion-VAE, style encoder and GAFRG of --run-dir; retrains the shift
generator (and input p) per row under <out>/, generates the test split and writes
<out>/ablation.json and <out>/ablation.md: each row's model scored on both label sets, as the
paper's tables (FRCorr / FRdist against MAFRG labels, every appropriate real reaction, and
PMAFRG labels, only the item's own listener's), at every sampling seed of --seeds, with each
row's ratio to GAFRG and its paired bootstrap 95% interval over listeners.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from perfrdiff.atomic import atomic_write_text
from perfrdiff.commands.common import (
    add_device_arguments,
    add_overrides_argument,
    add_run_dir_argument,
    check_output_folder,
)
from perfrdiff.run import Run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_dir_argument(parser)
    parser.add_argument("--out", default=None, help="output dir (default: <run-dir>/../ablation)")
    parser.add_argument(
        "--tables",
        nargs="+",
        choices=["3", "4"],
        default=["3", "4"],
        help="which tables (default: 3 4)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N test items (default: all)"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="sampling seeds; scores are averaged over them (default: 0)",
    )
    add_overrides_argument(parser)  # applied to the retrained rows
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from perfrdiff.personalisation import ablate, ablation_markdown

    out = Path(args.out) if args.out else Path(args.run_dir).parent / "ablation"
    check_output_folder(out, "--out")
    base = Run.load(args.run_dir, args.device, args.precision)
    data = base.evaluation_set("test", args.limit)
    rows = ablate(base, out, args.tables, args.overrides, seeds=args.seeds, data=data)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "run_dir": str(args.run_dir),
        "overrides": args.overrides,
        "seeds": args.seeds,
        "items": len(data.clips),
        "listeners": len(set(data.listeners or [])),
        "rows": rows,
    }
    atomic_write_text(out / "ablation.json", json.dumps(report, indent=2) + "\n")
    markdown = ablation_markdown(rows)
    atomic_write_text(out / "ablation.md", markdown)
    print(markdown)
    print(f"written: {out / 'ablation.json'}, {out / 'ablation.md'}")
    return 0
