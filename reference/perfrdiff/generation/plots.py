"""Plots of generated reactions: each sample's AU / valence / arousal curve against the real one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perfrdiff.protocol import REACT2024

# (channel index, label) in REACT's 25-d emotion: AU12 (lip corner puller), valence, arousal.
DEFAULT_CHANNELS: tuple[tuple[int, str], ...] = ((7, "AU12"), (15, "valence"), (16, "arousal"))


def plot_reactions(
    samples: np.ndarray,
    real: np.ndarray,
    path: str | Path,
    title: str = "",
    channels: Sequence[tuple[int, str]] = DEFAULT_CHANNELS,
    fps: float = REACT2024.fps,
) -> Path:
    """Save a figure of ``samples: (M, T, 25)`` against ``real: (T, 25)`` for ``channels``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    if samples.ndim != 3 or real.ndim != 2 or samples.shape[1:] != real.shape:
        raise ValueError(
            f"samples must be (M, T, 25) and real (T, 25) with the same T, got "
            f"{samples.shape} and {real.shape}"
        )
    seconds = np.arange(real.shape[0]) / fps
    fig, axes = plt.subplots(len(channels), 1, figsize=(10, 2.2 * len(channels)), sharex=True)
    for ax, (channel, label) in zip(np.atleast_1d(axes), channels, strict=True):
        for m, sample in enumerate(samples):
            ax.plot(
                seconds,
                sample[:, channel],
                lw=0.8,
                alpha=0.6,
                label="generated" if m == 0 else None,
            )
        ax.plot(seconds, real[:, channel], color="black", lw=1.6, label="real")
        ax.set_ylabel(label)
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize="small")
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
