"""What ``perfrdiff generate`` writes, made without a model, for the viewer's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from perfrdiff.data import SplitIndex
from perfrdiff.generation.reactions import save_predictions
from perfrdiff.viewer.channels import channel_index

FPS = 25
#: In mode "generic", sample 0 opens its mouth (AU25 and AU26 at 1) during odd seconds only.
MOUTH_CHANNELS = (channel_index("AU25"), channel_index("AU26"))


def mouth_open(frame: int, fps: float = FPS) -> bool:
    """Whether generic sample 0 has AU25/AU26 on at ``frame``."""
    return int(frame // fps) % 2 == 1


def fake_predictions(items: int, samples: int, frames: int, seed: int) -> np.ndarray:
    """``(items, samples, frames, 25)`` float32: small random reactions, and in sample 0 the
    mouth pattern of :func:`mouth_open` with every other AU at 0."""
    rng = np.random.default_rng(seed)
    predictions = (0.3 * rng.random((items, samples, frames, 25))).astype(np.float32)
    predictions[:, 0, :, :15] = 0.0
    on = (np.arange(frames) // FPS % 2 == 1).astype(np.float32)  # mouth_open, vectorised
    for channel in MOUTH_CHANNELS:
        predictions[:, 0, :, channel] = on
    return predictions


def write_generate_output(
    folder: Path, root: Path, split: str = "test", samples: int = 3, run_dir: Path | None = None
) -> Path:
    """``<folder>/{generic,personalised}/predictions.npy`` (+ sidecars) for every item of the
    split, in the layout of ``perfrdiff generate``; returns ``folder``."""
    n = len(SplitIndex(root, split))
    for seed, mode in enumerate(("generic", "personalised")):
        meta = {"mode": mode, "split": split, "run_dir": str(run_dir) if run_dir else None}
        save_predictions(
            fake_predictions(n, samples, 750, seed), folder / mode / "predictions.npy", meta
        )
    return folder
