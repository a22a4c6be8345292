"""Small GAFRG training runs shared by the checkpoint, resume and reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from perfrdiff.config import StageConfig, load_config
from perfrdiff.models import DDIMSchedule, build_gafrg
from perfrdiff.training.loop import StageTraining, train_stage
from perfrdiff.training.objectives import GAFRGObjective
from torch.utils.data import Dataset


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Import into a test module: small ops run faster on one thread on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class RandomWindows(Dataset):
    """WindowDataset-shaped items, fixed by their index."""

    def __init__(self, length: int = 16) -> None:
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
        return {
            "speaker_audio": r(50, 78),
            "speaker_face": r(50, 58),
            "speaker_emotion": r(50, 25),
            "listener_emotion": r(50, 25),
            "listener_prev_emotion": r(50, 25),
            "has_past": torch.tensor(i % 2 == 0),
        }


class Killed(Exception):
    """Raised from ``on_step`` to simulate a process killed after a step."""


def objective():
    config = load_config("tiny", ["denoiser.dropout=0.1"])  # dropout: RNG must be restored too
    torch.manual_seed(0)
    return GAFRGObjective(build_gafrg(config), DDIMSchedule(1000), cond_drop=0.2)


def stage_config(**kw):
    base = dict(
        steps=6,
        batch_size=4,
        lr=1e-3,
        ckpt_every=2,
        val_every=3,
        val_batches=1,
        log_every=1,
        warmup_steps=2,
    )
    return StageConfig(**{**base, **kw})


def train(out_dir: Path, resume=False, kill_at=None, seed=3, metadata=None, **kw):
    """Train 6 steps (checkpoints every 2) into ``out_dir``; the trained state dict, or None when
    killed at step ``kill_at``."""

    def on_step(step):
        if step == kill_at:
            raise Killed

    run = StageTraining(
        out_dir, stage_config(**kw), seed, resume, metadata=metadata, on_step=on_step
    )
    obj = objective()
    try:
        train_stage("gafrg", obj, RandomWindows(), RandomWindows(), run)
    except Killed:
        return None
    return {k: v.clone() for k, v in obj.trained.state_dict().items()}
