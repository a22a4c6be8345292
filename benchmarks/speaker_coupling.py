"""How much of the listener's reaction does the speaker predict, and how much of it does the
generator use? A diagnosis of what FRCorr's CCC is missing.

For each trained run (``--run name=dir``), on its test split:

* **linear**: a ridge regression from everything a listener window may see of the speaker under
  the run's protocol (emotion, 3DMM and audio features over the visible frames, averaged over
  blocks of ``--pool`` frames and standardised) to the listener window's 25 channels. It is
  fitted on the train split, its ridge weight chosen on the val split, and applied window by
  window to the test clips, as online generation is.
* **own correlation** of each method: per channel, the Pearson correlation over the clip between
  a reaction and the item's *own* real reaction (the first window, which sees no speaker, left
  out), averaged over channels (by group), samples and items. The linear predictor's is how
  much of the listener the speaker predicts linearly; the generator's how much of that it uses.
* **mime** (the speaker's own emotion as the reaction, the REACT 2023 baselines' "mime") and
  **chance** (real reactions of inappropriate items) with and without the *mirror* item, the
  item whose listener clip is this item's speaker clip: FRCorr and FRdist on both label sets.
  Chance reactions drawn from the mirror item are the speaker's own behaviour, not behaviour
  unrelated to the speaker.

    python benchmarks/speaker_coupling.py --run held-out=runs/heldout/run \\
        --json benchmarks/results/speaker_coupling.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from perfrdiff import Run
from perfrdiff.generation import EvaluationSet, chance_predictions
from perfrdiff.personalisation import scores

#: Speaker modalities the generator is given, in the order the features are stacked.
SPEAKER_KEYS = ("speaker_emotion", "speaker_face", "speaker_audio")
#: Channel groups of the 25 emotion features.
GROUPS = {"AUs": slice(0, 15), "valence/arousal": slice(15, 17), "expressions": slice(17, 25)}
RIDGE_WEIGHTS = (1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7)


def speaker_features(data: EvaluationSet) -> np.ndarray:
    """``(n, T, f)`` every speaker modality of each item, stacked on the channel axis."""
    return np.stack(
        [np.concatenate([clip[k].numpy() for k in SPEAKER_KEYS], -1) for clip in data.clips]
    ).astype(np.float64)


def visible_windows(
    run: Run, speaker: np.ndarray, listener: np.ndarray | None, stride: int, pool: int
) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
    """``(n·s, f')`` pooled speaker frames each listener window may see, ``(n·s, w·25)`` the
    listener windows (when ``listener`` is given), and the ``s`` window starts (from ``w``:
    the first window sees no speaker)."""
    w = run.config.data.window
    n, frames, _ = speaker.shape
    before, after = run.protocol.context_frames(w)
    starts = list(range(w, frames - w + 1, stride))
    inputs, targets = [], []
    for s in starts:
        seen = speaker[:, max(s - before, 0) : s + after]
        seen = seen[:, : seen.shape[1] // pool * pool].reshape(n, -1, pool, seen.shape[-1])
        inputs.append(seen.mean(2).reshape(n, -1))
        if listener is not None:
            targets.append(listener[:, s : s + w].reshape(n, -1))
    x = np.concatenate(inputs)
    return x, (np.concatenate(targets) if listener is not None else None), starts


class LinearListener:
    """Ridge regression from the speaker frames a window sees to the listener window."""

    def __init__(self, run: Run, pool: int, stride: int) -> None:
        self.run, self.pool, self.stride = run, pool, stride

    def fit(self, train: EvaluationSet, val: EvaluationSet) -> dict[str, float]:
        """Fit on ``train``, pick the ridge weight with the best own correlation on ``val``;
        returns every weight's val own correlation."""
        x, y, _ = visible_windows(
            self.run, speaker_features(train), train.listener_emotion, self.stride, self.pool
        )
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-6
        self.y_mean = y.mean(0)
        x = (x - self.x_mean) / self.x_std
        gram, cross = x.T @ x, x.T @ (y - self.y_mean)
        tried, coefs = {}, {}
        for weight in RIDGE_WEIGHTS:
            self.coef = coefs[weight] = np.linalg.solve(gram + weight * np.eye(len(gram)), cross)
            own = own_correlation(self.predict(val)[:, None], val, self.run.config.data.window)
            tried[weight] = own["all"]
        self.weight = max(tried, key=tried.__getitem__)
        self.coef = coefs[self.weight]
        return {str(k): v for k, v in tried.items()}

    def predict(self, data: EvaluationSet) -> np.ndarray:
        """``(n, T, 25)``: each window from the speaker it may see (the first: the train mean)."""
        w = self.run.config.data.window
        x, _, starts = visible_windows(self.run, speaker_features(data), None, w, self.pool)
        n, frames = data.listener_emotion.shape[:2]
        out = np.broadcast_to(self.y_mean.reshape(w, 25).mean(0), (n, frames, 25)).copy()
        windows = (((x - self.x_mean) / self.x_std) @ self.coef + self.y_mean).reshape(
            len(starts), n, w, 25
        )
        for i, s in enumerate(starts):
            out[:, s : s + w] = windows[i]
        return out


def own_correlation(predictions: np.ndarray, data: EvaluationSet, skip: int) -> dict[str, float]:
    """Mean Pearson correlation over the clip (after its first ``skip`` frames, which see no
    speaker) of every ``(n, M, T, 25)`` sample with its item's own real reaction: per channel
    group and ``"all"``."""
    real = data.listener_emotion[:, None, skip:].astype(np.float64)
    p = predictions[:, :, skip:].astype(np.float64)
    a, b = p - p.mean(2, keepdims=True), real - real.mean(2, keepdims=True)
    denominator = np.sqrt((a * a).sum(2) * (b * b).sum(2))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(denominator > 0, (a * b).sum(2) / denominator, 0.0)  # (n, M, 25)
    out = {name: float(corr[..., part].mean()) for name, part in GROUPS.items()}
    out["all"] = float(corr.mean())
    return out


def mirror_items(data: EvaluationSet) -> list[list[int]]:
    """For each item, the items whose listener clip is its speaker clip."""
    return [
        [j for j in range(len(data.clips)) if np.array_equal(data.listener_emotion[j], speaker)]
        for speaker in data.speaker_emotion
    ]


def benchmark_run(name: str, run_dir: Path, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    run = Run.load(run_dir, device="cpu")
    test = run.evaluation_set("test")
    samples = run.config.generate.samples
    linear = LinearListener(run, args.pool, args.stride)
    val_tried = linear.fit(
        run.evaluation_set("train", histories=False), run.evaluation_set("val", histories=False)
    )
    mirrors = mirror_items(test)
    skip = run.config.data.window
    linear_samples = np.repeat(linear.predict(test)[:, None], samples, 1).astype(np.float32)
    methods: dict[str, dict] = {
        "linear (speaker window)": {
            "own correlation": own_correlation(linear_samples[:, :1], test, skip),
            **scores({"linear": linear_samples}, test)["linear"],
        }
    }
    for seed in args.seeds:
        generated = run.generate("test", ["generic", "personalised"], data=test, seed=seed)
        for mode, p in generated.items():
            entry = methods.setdefault(mode, {"by_seed": {}})
            entry["by_seed"][str(seed)] = {"own correlation": own_correlation(p, test, skip)}
    for mode in ("generic", "personalised"):
        by_seed = [v["own correlation"] for v in methods[mode]["by_seed"].values()]
        methods[mode]["own correlation"] = {
            k: float(np.mean([s[k] for s in by_seed])) for k in by_seed[0]
        }
    mime = np.repeat(test.speaker_emotion[:, None], samples, 1)
    baselines = {
        "mime": mime,
        "chance": chance_predictions(test, samples, 0),
        "chance without the mirror item": chance_predictions(test, samples, 0, exclude=mirrors),
    }
    for label, p in baselines.items():
        own = own_correlation(p, test, skip)
        methods[label] = {"own correlation": own, **scores({label: p}, test)[label]}
    return {
        "dataset": name,
        "run_dir": str(run_dir),
        "items": len(test.clips),
        "mirror items appropriate": int(
            sum(any(test.neighbours[k, j] for j in m) for k, m in enumerate(mirrors))
        ),
        "items with a mirror": int(sum(bool(m) for m in mirrors)),
        "ridge weight (chosen on val)": linear.weight,
        "val own correlation by ridge weight": val_tried,
        "pool": args.pool,
        "seeds": args.seeds,
        "methods": methods,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="name=run_dir (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="sampling seeds")
    parser.add_argument("--pool", type=int, default=5, help="speaker frames averaged per block")
    parser.add_argument("--stride", type=int, default=10, help="train window stride (frames)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args()
    reports = []
    for entry in args.run:
        name, _, directory = entry.partition("=")
        if not directory:
            parser.error(f"--run: expected name=run_dir, got {entry!r}")
        reports.append(benchmark_run(name, Path(directory), args))
        r = reports[-1]
        print(
            f"## {name}: {r['items']} test items, ridge weight {r['ridge weight (chosen on val)']}"
        )
        for method, values in r["methods"].items():
            own = values["own correlation"]
            frcorr = values.get("MAFRG FRCorr")
            extra = (
                ""
                if frcorr is None
                else f"  MAFRG FRCorr {frcorr:.4f} FRdist {values['MAFRG FRdist']:.1f}"
            )
            print(
                f"{method:32s} own corr {own['all']:.3f} (VA {own['valence/arousal']:.3f}){extra}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"datasets": reports}, indent=2) + "\n")


if __name__ == "__main__":
    main()
