"""Training the EEG head (stage ``eeg``, REACT 2026): its datasets, read straight from the MARS
layout, and its masked loss.

A training item is a :class:`~perfrdiff.data.react2026.MarsCrops` crop with EEG, moved to start
on a window boundary of the sequence (frame ``f`` with ``f mod w = 0``; the crop's first
``(−start) mod w`` frames are dropped and zeros appended), so that its windows are the ones
prediction sees: with ``w`` = 30 frames = 1 s each window is one EEG row. Only dyads whose
listener has EEG are used. The loss is the mean squared error over the cells whose EEG mask is
1 (:func:`~perfrdiff.models.eeg_head.masked_mse`): bad cells, padding and listeners without
EEG add nothing.

The stage reads the listener's *real* reaction; prediction may read a generated one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import Dataset

from perfrdiff.config import Config
from perfrdiff.data.layout import DataError
from perfrdiff.data.react2026 import EegSource, MarsCrops, MarsStore
from perfrdiff.data.react2026.store import run_face_stats
from perfrdiff.models.eeg_head import EEGHead, masked_mse
from perfrdiff.protocol import REACT2026, Protocol, protocol_named
from perfrdiff.training.loop import Batch, Objective

if TYPE_CHECKING:
    from perfrdiff.run import Run

log = logging.getLogger(__name__)

#: Training crops whose speaker frames estimate the speaker features' mean and std.
STATISTICS_ITEMS = 64


def has_eeg(config: Config) -> bool:
    """Whether a run with ``config`` has the ``eeg`` stage: protocol ``react2026`` and an
    ``eeg_processed`` folder or ``eeg_processed.tar.gz`` in the training split in which at
    least one of its listeners has EEG."""
    if config.protocol != REACT2026.name:
        return False  # REACT 2024 has no EEG: nothing is read
    source = EegSource(config.data.root, "train")
    if not (source.directory.is_dir() or source.archive.is_file()):
        return False
    try:
        eeg_store(config, "train")
    except DataError as empty:  # a folder without any of the split's listeners
        log.info("no eeg stage: %s", empty)
        return False
    return True


def eeg_store(config: Config, split: str) -> MarsStore:
    """``split`` of the run's MARS data, with only the dyads whose listener has EEG.

    Raises:
        ValueError: the protocol is not ``react2026``.
        perfrdiff.data.DataError: naming the EEG folder: no listener of ``split`` has EEG.
    """
    protocol = protocol_named(config.protocol)
    if protocol.name != REACT2026.name:
        raise ValueError(
            f"protocol: the eeg stage reads the listener EEG of REACT 2026 (MARS); protocol "
            f"{protocol.name!r} has none: use protocol react2026"
        )
    store = MarsStore(
        config.data.root,
        split,
        fps=protocol.fps,
        audio=config.eeg.audio,
        personality=False,
        face_stats=run_face_stats(config),
    )
    store.dyads = [d for d in store.dyads if len(store.eeg_source.rows(d.listener)[0])]
    if not store.dyads:
        source = store.eeg_source
        raise DataError(
            f"{source.directory} (or {source.archive.name}): no listener of split {split!r} has EEG"
        )
    return store


class EegCrops(Dataset):
    """Crops of the dyads of ``store`` for the EEG head, started on a window boundary.

    Items (float32): ``listener_emotion (c, 25)``; ``speaker (c, s)``: the speaker's emotion,
    3DMM and audio side by side, raw; ``speaker_mask (c,)`` bool, False in padding; ``eeg (c,
    14)`` and ``eeg_mask (c, 14)``; ``c`` = the protocol's crop.
    """

    def __init__(
        self, store: MarsStore, protocol: Protocol, seed: int = 0, random_start: bool = True
    ) -> None:
        self.crops = MarsCrops(store, protocol, eeg=True, seed=seed, random_start=random_start)
        self.protocol, self.window = protocol, protocol.window

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        crop = self.crops[item]
        drop = -int(crop["start"]) % self.window

        def aligned(x: Tensor) -> Tensor:
            out = torch.zeros_like(x)
            out[: len(x) - drop] = x[drop:]
            return out

        speaker = torch.cat([crop[f"speaker_{k}"] for k in ("emotion", "face", "audio")], -1)
        return {
            "listener_emotion": aligned(crop["listener_emotion"]),
            "speaker": aligned(speaker),
            "speaker_mask": aligned(crop["mask"]),
            "eeg": aligned(crop["eeg"]),
            "eeg_mask": aligned(crop["eeg_mask"]),
        }


def eeg_datasets(config: Config) -> tuple[EegCrops, EegCrops | None]:
    """``(train, validation or None)`` of the ``eeg`` stage; a validation split that is missing
    or has no EEG is skipped with a warning."""
    protocol = protocol_named(config.protocol)
    train = EegCrops(eeg_store(config, "train"), protocol, config.seed)
    try:
        val = EegCrops(eeg_store(config, "val"), protocol, config.seed, random_start=False)
    except (FileNotFoundError, DataError) as error:
        log.warning("eeg: no validation (%s): validation is skipped", error)
        val = None
    return train, val


@torch.no_grad()
def fit_speaker_statistics(head: EEGHead, crops: EegCrops, items: int = STATISTICS_ITEMS) -> None:
    """Fit ``head``'s speaker scaler to the real frames of the first ``items`` crops (read
    from their first window boundary, not at random)."""
    fixed = EegCrops(crops.crops.store, crops.protocol, crops.crops.seed, random_start=False)
    frames = [
        x["speaker"][x["speaker_mask"]].double()
        for x in (fixed[i] for i in range(min(items, len(fixed))))
    ]
    speaker = torch.cat(frames)
    head.speaker_scaler.fit(speaker.mean(0).float(), speaker.std(0, correction=0).float())
    log.info("eeg: speaker features standardised with %d training frames", len(speaker))


class EEGObjective(Objective):
    """Masked MSE of the predicted EEG; batches hold :class:`EegCrops` items."""

    def __init__(self, head: EEGHead) -> None:
        super().__init__()
        self.trained = head

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        mask = batch["eeg_mask"].float()
        prediction = self.trained(
            batch["listener_emotion"].float(), batch["speaker"].float(), batch["speaker_mask"]
        )
        return masked_mse(prediction, batch["eeg"].float(), mask), {"counted": float(mask.mean())}


def eeg_objective(run: Run) -> EEGObjective:
    """The ``eeg`` stage's objective around a new head, its speaker scaler fitted to the
    training split."""
    head = run.build("eeg", trained=False)
    train, _ = eeg_datasets(run.config)
    fit_speaker_statistics(head, train)
    return EEGObjective(head)
