"""Training crops and whole sequences of a MARS split as PyTorch datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from perfrdiff.data.react2026.eeg import EEG_COLUMNS
from perfrdiff.data.react2026.readers import crop
from perfrdiff.data.react2026.store import MarsStore
from perfrdiff.protocol import REACT2026, Protocol


class MarsCrops(Dataset):
    """``crop``-frame crops of a split's dyads from a random start, zero-padded, with a mask.

    Item ``k`` is dyad ``k``; its start is drawn uniformly from ``[0, max(0, T - crop)]``
    (a sequence shorter than the crop starts at 0 and is padded), seeded by ``(seed, k)`` when
    ``random_start`` is False (validation) and by ``(seed, k, epoch draw)`` otherwise.

    Item keys (float32 unless stated), ``c`` = ``crop``:

    - ``speaker_emotion (c, 25)``, ``speaker_face (c, 58)``, ``speaker_audio (c, a)``
      (``a`` = 768, 78 or 0 by ``store.audio_kind``), ``listener_emotion (c, 25)``,
      ``listener_face (c, 58)`` (3DMM as ``store`` reads it: standardised when it has
      ``face_stats``);
    - ``mask (c,)`` bool: the frame is real (False in the padding);
    - ``personality (5,)``: the listener's Big Five in ``[0, 1]`` (zeros without a table);
    - with ``eeg``: ``eeg (c, 14)`` and ``eeg_mask (c, 14)`` (0 where a cell was bad, in the
      padding, and for a listener without EEG);
    - ``start``, ``length`` int64 scalars: the crop's first frame and the sequence's ``T``.

    Args:
        store: the split (:class:`MarsStore`).
        protocol: whose ``crop_frames`` is the crop length.
    """

    def __init__(
        self,
        store: MarsStore,
        protocol: Protocol = REACT2026,
        eeg: bool = False,
        seed: int = 0,
        random_start: bool = True,
    ) -> None:
        self.store, self.crop = store, protocol.crop_frames
        self.eeg, self.seed = eeg, seed
        self.random_start = random_start
        self._draws = 0

    def __len__(self) -> int:
        return len(self.store.dyads)

    def _start(self, item: int, frames: int) -> int:
        if self.random_start:
            self._draws += 1
            rng = np.random.default_rng([self.seed, item, self._draws, torch.initial_seed()])
        else:
            rng = np.random.default_rng([self.seed, item])
        return int(rng.integers(0, max(0, frames - self.crop) + 1))

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        dyad = self.store.dyads[item]
        frames = self.store.frames(dyad)
        start, s = self._start(item, frames), self.store
        length = min(self.crop, frames - start)

        def cut(sequence: np.ndarray, path: Path) -> np.ndarray:
            out, _ = crop(sequence[:frames], start, self.crop, path)
            return out

        out = {
            f"{role}_{name}": cut(read(clip), s.path(folder, clip))
            for role, clip in (("speaker", dyad.speaker), ("listener", dyad.listener))
            for name, read, folder in (
                ("emotion", s.emotion, "facial-attributes"),
                ("face", s.face, "coefficients"),
            )
        }
        audio_folder = "audio-features" if s.audio_kind == "features" else "audio"
        out["speaker_audio"] = cut(
            s.audio(dyad.speaker, frames), s.path(audio_folder, dyad.speaker)
        )
        personality = s.personality.get(dyad, np.zeros(5, dtype=np.float32))
        tensors = {k: torch.from_numpy(v) for k, v in out.items()}
        tensors["personality"] = torch.from_numpy(np.asarray(personality, dtype=np.float32))
        tensors["mask"] = torch.arange(self.crop) < length
        if self.eeg:
            values, mask = (np.zeros((self.crop, len(EEG_COLUMNS)), np.float32) for _ in "vm")
            values[:length], mask[:length] = s.eeg(dyad.listener, start, start + length)
            tensors["eeg"], tensors["eeg_mask"] = torch.from_numpy(values), torch.from_numpy(mask)
        tensors["start"] = torch.tensor(start, dtype=torch.int64)
        tensors["length"] = torch.tensor(frames, dtype=torch.int64)
        return tensors
