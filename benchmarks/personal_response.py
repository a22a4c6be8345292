"""How much of a listener's reaction a closed-form personal response predicts, under each
protocol's view of the speaker. A diagnosis of what the generator's shifts fail to learn.

For each synthetic family (``--data name=root``, scored on ``--split``; ``--held-out
name=root``, scored on test and never used to choose), three deterministic predictors of every
item's listener (:mod:`perfrdiff.personal_response`):

* **level**: the history's mean (the mean-offset baseline with nothing to move);
* **shared**: the level plus one linear map of the speaker's last 2 s, fitted on the train split;
* **personal**: the level plus the listener's own map, a ridge regression fitted on their
  dyadic history (the clip evaluation reads a history from) around the shared map.

Each is scored under three views of the speaker: ``react2024`` (a window sees the window
before it, as generation does under that protocol), ``react2026`` (the window before and its
own frames up to the scored one) and ``all-past`` (every earlier frame). Scores: own
correlation and own CCC (per channel over the clip, with the item's own real reaction),
and FRCorr / FRdist on both label sets with the predictor as each of 10 identical samples (the
scale of a 10-sample model's scores).

    python benchmarks/personal_response.py --data coupled-latent=runs/coupled/data \\
        --data lagged-expressive=runs/expressive/data --held-out held-out=runs/heldout/data \\
        --json benchmarks/results/personal_response.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from perfrdiff.data.history import HistoryPicker
from perfrdiff.data.index import SplitIndex
from perfrdiff.data.store import ClipStore
from perfrdiff.metrics import frcorr_per_speaker, frdist_per_speaker
from perfrdiff.metrics.label_sets import item_listeners, label_set_matrices
from perfrdiff.personal_response import Dyad, PersonalResponse
from perfrdiff.protocol import protocol_named

#: Views of the speaker: ``(before, after)`` frames a window sees, or None (every past frame).
VIEWS = ("react2024", "react2026", "all-past")
METHODS = ("level", "shared", "personal")
SAMPLES = 10


def view_context(view: str, window: int) -> tuple[int, int] | None:
    """The ``(before, after)`` frames of ``view`` for windows of ``window`` frames."""
    if view == "all-past":
        return None
    return protocol_named(view).context_frames(window)


class Clips:
    """Listener and partner emotion of a dataset's clips, read once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stores: dict[str, ClipStore] = {}
        self._indices: dict[str, SplitIndex] = {}

    def index(self, split: str) -> SplitIndex:
        if split not in self._indices:
            self._indices[split] = SplitIndex(self.root, split)
        return self._indices[split]

    def dyad(self, split: str, clip: str) -> Dyad:
        store = self._stores.setdefault(split, ClipStore(self.root, split, cache_audio=False))
        partner = self.index(split).partner_of[clip]
        return Dyad(
            store.emotion(clip).astype(np.float64), store.emotion(partner).astype(np.float64)
        )

    def training_dyads(self) -> list[Dyad]:
        return [self.dyad("train", clip) for clip in self.index("train").partner_of]


def own_scores(prediction: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """Mean over channels of the Pearson correlation and CCC of ``(T, d)`` with ``(T, d)``
    (a still channel counts 0)."""
    p, r = prediction - prediction.mean(0), real - real.mean(0)
    cov = (p * r).mean(0)
    vp, vr = (p * p).mean(0), (r * r).mean(0)
    denominator = np.sqrt(vp * vr)
    corr = np.where(denominator > 0, cov / np.where(denominator > 0, denominator, 1.0), 0.0)
    ccc = 2 * cov / (vp + vr + (prediction.mean(0) - real.mean(0)) ** 2 + 1e-12)
    return float(corr.mean()), float(ccc.mean())


def score_family(name: str, root: Path, split: str, window: int, weight: float) -> dict:
    """Every method under every view on ``split`` of the dataset at ``root``."""
    clips, picker = Clips(root), HistoryPicker(root, split)
    index = clips.index(split)
    training = clips.training_dyads()
    items = [clips.dyad(split, pair.listener) for pair in index.items]
    reals = np.stack([item.listener for item in items])
    histories = []
    for pair in index.items:
        source = picker(pair.listener)
        histories.append(clips.dyad(source.split, source.clip))
    speakers = [item.speaker for item in items]
    label_sets = label_set_matrices(index.neighbours, item_listeners(index.items))
    report: dict = {"split": split, "items": len(index.items), "views": {}}
    for view in VIEWS:
        model = PersonalResponse.fit(training, window, view_context(view, window), weight)
        rows = {}
        for method in METHODS:
            predictions = np.stack([
                np.broadcast_to(h.listener.mean(0), r.shape) if method == "level"
                else model.predict(h, s, personal=method == "personal")
                for h, s, r in zip(histories, speakers, reals, strict=True)
            ])  # fmt: skip
            own = np.array([own_scores(p, r) for p, r in zip(predictions, reals, strict=True)])
            samples = np.repeat(predictions[:, None].astype(np.float32), SAMPLES, axis=1)
            row = {"own_correlation": float(own[:, 0].mean()), "own_ccc": float(own[:, 1].mean())}
            for label, matrix in label_sets.items():
                row[f"frcorr_{label}"] = float(frcorr_per_speaker(samples, reals, matrix).mean())
                distances, _ = frdist_per_speaker(samples[:, :1], reals, matrix, n_jobs=1)
                row[f"frdist_{label}"] = float(distances.mean() * SAMPLES)
            rows[method] = row
        report["views"][view] = rows
        print(f"{name} ({split}), {view}:")
        for method, row in rows.items():
            print(f"  {method:9}" + " ".join(f" {k} {v:.4f}" for k, v in row.items()))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=[], metavar="NAME=ROOT",
                        help="a choosing family's dataset, scored on --split")  # fmt: skip
    parser.add_argument("--held-out", action="append", default=[], metavar="NAME=ROOT",
                        help="a held-out family's dataset, scored on test only")  # fmt: skip
    parser.add_argument("--split", default="val", help="split of the --data families (val)")
    parser.add_argument("--window", type=int, default=50, help="window w (default: 50)")
    parser.add_argument("--weight", type=float, default=1e3,
                        help="ridge weight of a listener map around the shared (1e3)")  # fmt: skip
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    began = time.perf_counter()
    families = {}
    for spec, split, role in [(s, args.split, "choosing") for s in args.data] + [
        (s, "test", "held out") for s in args.held_out
    ]:
        name, _, root = spec.partition("=")
        if not root:
            raise SystemExit(f"expected NAME=ROOT, got {spec!r}")
        families[name] = {
            "role": role,
            **score_family(name, Path(root), split, args.window, args.weight),
        }
    result = {
        "window": args.window,
        "weight": args.weight,
        "samples": SAMPLES,
        "families": families,
        "seconds": time.perf_counter() - began,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
