"""Listener EEG of REACT 2026 (optional): 14 targets per second, a mask for the bad cells.

``{root}/{split}/eeg_processed/<role>/<session>/<stem>.csv`` (or the same path inside
``{root}/{split}/eeg_processed.tar.gz``): a header row, one row per second. The targets, in
order: the raw channels TP9, AF7, AF8, TP10 (divided by 1000), then the Delta, Theta, Alpha,
Beta and Gamma band powers of TP9 and of TP10. Frame ``f`` reads row ``⌊f / fps⌋`` (the last row
past the end). An empty, non-numeric or non-finite cell is 0 with mask 0; a listener without a
file has every value 0 and mask 0.
"""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path

import numpy as np

from perfrdiff.data.layout import DataError

RAW_CHANNELS = ("TP9", "AF7", "AF8", "TP10")
BANDS = ("Delta", "Theta", "Alpha", "Beta", "Gamma")
#: The 14 targets in order.
EEG_COLUMNS = RAW_CHANNELS + tuple(f"{b}_{e}" for e in ("TP9", "TP10") for b in BANDS)
#: The raw channels are stored in µV-scale units; the targets are these values / 1000.
RAW_SCALE = 1000.0


def parse_eeg(text: str, source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(values, mask)``, each ``(seconds, 14)`` float32, of an EEG CSV's text.

    Raises:
        DataError: naming ``source``: no header, or a target column is missing.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in EEG_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{source}: missing EEG column(s) {missing} (has {reader.fieldnames})")
    rows = list(reader)
    values = np.zeros((len(rows), len(EEG_COLUMNS)), dtype=np.float32)
    for r, row in enumerate(rows):
        for c, column in enumerate(EEG_COLUMNS):
            try:
                values[r, c] = float(row[column] or "nan")
            except ValueError:
                values[r, c] = np.nan
    mask = np.isfinite(values)
    values[~mask] = 0.0
    values[:, : len(RAW_CHANNELS)] /= RAW_SCALE
    return values, mask.astype(np.float32)


def eeg_frames(
    values: np.ndarray, mask: np.ndarray, start: int, stop: int, fps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[start, stop)`` of per-second ``values``/``mask`` ``(seconds, 14)``: frame ``f``
    takes row ``⌊f / fps⌋``, the last row past the end; ``(stop - start, 14)`` each (zeros when
    there are no rows)."""
    if values.shape[0] == 0:
        zeros = np.zeros((stop - start, len(EEG_COLUMNS)), dtype=np.float32)
        return zeros, zeros.copy()
    rows = np.minimum(np.arange(start, stop) // fps, values.shape[0] - 1)
    return values[rows], mask[rows]


class EegSource:
    """The EEG files of one split: the folder, else the ``.tar.gz`` beside it; parsed files are
    kept (they are small: one row per second)."""

    def __init__(self, root: str | Path, split: str, folder: str = "eeg_processed") -> None:
        self.directory = Path(root) / split / folder
        self.archive = self.directory.with_name(f"{folder}.tar.gz")
        self._members: dict[str, str] | None = None
        self._parsed: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _archive_text(self, clip: str) -> tuple[str, str] | None:
        if not self.archive.is_file():
            return None
        try:
            with tarfile.open(self.archive, "r:gz") as tar:
                if self._members is None:
                    names = [n for n in tar.getnames() if not Path(n).name.startswith("._")]
                    self._members = {n.removeprefix(f"{self.directory.name}/"): n for n in names}
                member = self._members.get(f"{clip}.csv")
                if member is None:
                    return None
                extracted = tar.extractfile(member)
                data = extracted.read() if extracted is not None else b""
        except (OSError, tarfile.TarError) as error:
            raise DataError(f"{self.archive}: not a readable .tar.gz archive ({error})") from error
        return data.decode("utf-8-sig", errors="replace"), f"{self.archive}:{member}"

    def rows(self, clip: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values, mask)`` ``(seconds, 14)`` of ``clip`` (``(0, 14)`` when it has no EEG)."""
        if clip not in self._parsed:
            path = self.directory / f"{clip}.csv"
            found: tuple[str, str] | None
            if path.is_file():
                try:
                    found = path.read_text(encoding="utf-8-sig"), str(path)
                except (OSError, UnicodeDecodeError) as error:
                    raise DataError(f"{path}: not a readable text file ({error})") from error
            else:
                found = self._archive_text(clip)
            empty = np.zeros((0, len(EEG_COLUMNS)), dtype=np.float32)
            self._parsed[clip] = parse_eeg(*found) if found else (empty, empty.copy())
        return self._parsed[clip]
