"""The REACT 2026 (MARS) on-disk layout: paths, dyads paired by stem, the personality table.

Files live at ``{root}/{split}/<modality>/<role>/<session>/<stem>.<ext>``, ``role`` being
``speaker`` or ``listener``::

    facial-attributes/…/<stem>.npy   (T, 25): 15 AUs, valence, arousal, 8 expressions
    coefficients/…/<stem>.npy        FaceVerse 3DMM, squeezes to (T, 58)
    audio/…/<stem>.wav               speech (MFCC path)
    audio-features/…/<stem>.npy      (T, 768) wav2vec2-base features at the frame rate
    eeg_processed/<role>/<session>/<stem>.csv   optional, listeners (see .eeg)
    personality/listener.csv         video_name[, session], the Big Five on 1-5

A *dyad* is the speaker file and the listener file with the same stem in the same session. A
*clip* is ``<role>/<session>/<stem>``; the person behind it is ``<role>/<session>`` (the
challenge's baseline takes a listener's personal reference from the other listener files of its
session, i.e. a session's listener files are one person).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from perfrdiff.data.layout import DataError, MissingFileError

log = logging.getLogger(__name__)

ROLES = ("speaker", "listener")
EMOTION_DIR = "facial-attributes"
FACE_DIR = "coefficients"
AUDIO_DIR = "audio"
AUDIO_FEATURES_DIR = "audio-features"
EEG_DIR = "eeg_processed"
PERSONALITY_DIR = "personality"
#: The personality table's score columns, in the order of the returned vectors.
BIG_FIVE = ("Extraversion", "Agreeableness", "Conscientiousness", "Neuroticism", "Openness")
#: File extension per modality folder.
EXTENSIONS = {
    EMOTION_DIR: ".npy",
    FACE_DIR: ".npy",
    AUDIO_DIR: ".wav",
    AUDIO_FEATURES_DIR: ".npy",
    EEG_DIR: ".csv",
}


@dataclass(frozen=True)
class Dyad:
    """A speaker file and the listener file with the same ``stem`` in the same ``session``."""

    session: str
    stem: str

    @property
    def speaker(self) -> str:
        """The speaker's clip, ``speaker/<session>/<stem>``."""
        return f"speaker/{self.session}/{self.stem}"

    @property
    def listener(self) -> str:
        """The listener's clip, ``listener/<session>/<stem>``."""
        return f"listener/{self.session}/{self.stem}"


def person_of(clip: str) -> str:
    """The person recorded in ``clip`` (``role/session/stem``): ``role/session``."""
    return str(PurePosixPath(clip).parent)


def clip_path(root: str | Path, split: str, modality: str, clip: str) -> Path:
    """Where ``clip``'s file of ``modality`` (a folder name, e.g. ``facial-attributes``) is.

    Raises:
        ValueError: unknown modality.
    """
    if modality not in EXTENSIONS:
        raise ValueError(f"modality: expected one of {sorted(EXTENSIONS)}, got {modality!r}")
    return Path(root) / split / modality / f"{clip}{EXTENSIONS[modality]}"


def _stems(folder: Path) -> dict[str, set[str]]:
    """``session -> stems`` of the ``.npy`` files under ``folder/<session>/`` (hidden and
    archive metadata files such as ``._x.npy`` skipped)."""
    found: dict[str, set[str]] = {}
    if not folder.is_dir():
        return found
    for session in sorted(p for p in folder.iterdir() if p.is_dir()):
        if session.name.startswith((".", "__MACOSX")):
            continue
        stems = {f.stem for f in session.glob("*.npy") if not f.name.startswith(".")}
        if stems:
            found[session.name] = stems
    return found


def _file_name(stem: str) -> str:
    return f"{stem}.npy"


def find_dyads(root: str | Path, split: str, strict: bool = False) -> list[Dyad]:
    """The dyads of ``split``, sorted by session then stem, paired by stem within a session
    from the ``facial-attributes`` files.

    A file without its partner is left out with a warning that names it (``strict``: a
    :class:`DataError` naming every one).

    Raises:
        MissingFileError: the split has no ``facial-attributes`` folder.
        DataError: no dyad at all, or unpaired files with ``strict``.
    """
    base = Path(root) / split / EMOTION_DIR
    if not base.is_dir():
        raise MissingFileError(f"{base}: facial-attributes folder of split {split!r} is missing")
    speakers, listeners = (_stems(base / role) for role in ROLES)
    dyads, unpaired = [], []
    for session in sorted(set(speakers) | set(listeners)):
        said, heard = speakers.get(session, set()), listeners.get(session, set())
        # Stems in file-name order (``a-1.npy`` before ``a.npy``), as the challenge iterates.
        dyads += [Dyad(session, stem) for stem in sorted(said & heard, key=_file_name)]
        unpaired += [base / "speaker" / session / f"{s}.npy" for s in sorted(said - heard)]
        unpaired += [base / "listener" / session / f"{s}.npy" for s in sorted(heard - said)]
    if unpaired:
        names = ", ".join(str(p) for p in unpaired)
        if strict:
            raise DataError(f"{len(unpaired)} file(s) have no partner with the same stem: {names}")
        log.warning(
            "left out %d file(s) without a partner of the same stem: %s", len(unpaired), names
        )
    if not dyads:
        raise DataError(f"{base}: no speaker/listener files share a session and stem")
    return dyads


def _score(cell: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{path}: row {row}: {column} = {cell!r} is not a number") from None
    if not 1.0 <= value <= 5.0:
        raise DataError(f"{path}: row {row}: {column} = {value:g} is outside the scale 1-5")
    return (value - 1.0) / 4.0


def read_personality(path: str | Path) -> dict[tuple[str | None, str], np.ndarray]:
    """The Big Five per listener from ``personality/listener.csv``.

    Columns: ``video_name`` (the stem, an extension is dropped), optionally ``session``, then
    :data:`BIG_FIVE` on 1-5, returned as ``(v - 1) / 4`` in ``[0, 1]``.

    Returns:
        ``(session or None, stem) -> (5,)`` float32.

    Raises:
        MissingFileError: no such file.
        DataError: naming the file (and row): a column is missing, a score is not a number
            or not on 1-5.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: personality file is missing")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("video_name", *BIG_FIVE) if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing} (has {reader.fieldnames})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable CSV text file ({error})") from error
    table = {}
    for number, row in enumerate(rows, start=2):
        stem = PurePosixPath(row["video_name"].strip()).stem
        if not stem:
            continue
        scores = [_score(row[c] or "", path, number, c) for c in BIG_FIVE]
        session = (row.get("session") or "").strip() or None
        table[(session, stem)] = np.asarray(scores, dtype=np.float32)
    return table


def personality_of(
    table: dict[tuple[str | None, str], np.ndarray], dyad: Dyad
) -> np.ndarray | None:
    """``dyad``'s listener row of ``table``: by session and stem, else by stem alone."""
    found = table.get((dyad.session, dyad.stem))
    return found if found is not None else table.get((None, dyad.stem))


def with_personality(
    dyads: list[Dyad], table: dict[tuple[str | None, str], np.ndarray], source: Path
) -> tuple[list[Dyad], dict[Dyad, np.ndarray]]:
    """The dyads whose listener has a row in ``table`` and those rows; the others are dropped
    with a warning naming each listener clip and ``source``.

    Raises:
        DataError: no listener has a row.
    """
    rows = {d: p for d in dyads if (p := personality_of(table, d)) is not None}
    dropped = [d.listener for d in dyads if d not in rows]
    if dropped:
        log.warning(
            "%s has no row for %d listener(s), left out: %s",
            source,
            len(dropped),
            ", ".join(dropped),
        )
    if not rows:
        raise DataError(f"{source}: no row for any listener of the split")
    return [d for d in dyads if d in rows], rows
