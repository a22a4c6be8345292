"""The one atomic-write helper: write to a temporary file beside the target, then rename.

A reader (or a process killed mid-write) sees either the old file or the new one, never a part.
Temporary names are unique per call, so concurrent writers (DataLoader workers filling a cache,
DDP ranks) never share one. The file gets the permissions ``open()`` would give it (those of the
file it replaces, else ``0o666`` less the umask), and the temporary files of writers that were
killed on this host are removed by the next write beside them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def writer_tag() -> str:
    """``<host>-<pid>`` (dots in the host name as ``_``): names a temporary file or folder after
    the process writing it, so that a later writer can tell whether it was abandoned."""
    return f"{_host()}-{os.getpid()}"


def _host() -> str:
    return socket.gethostname().replace(".", "_")


def is_abandoned(tag: str) -> bool:
    """Whether the writer ``tag`` (:func:`writer_tag`) was a process of this host that has
    exited; writers on other hosts (a shared filesystem) are never judged."""
    host, _, pid = tag.rpartition("-")
    if host != _host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_abandoned(folder: Path, prefix: str) -> None:
    """Remove the files and folders ``folder/<prefix>...<tag>...`` whose writer has exited."""
    for leftover in folder.glob(f"{prefix}*"):
        chunks = leftover.name[len(prefix) :].split(".")
        tag = next((c for c in chunks if re.fullmatch(r"[^.]+-\d+", c)), None)
        if tag is None or not is_abandoned(tag):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _umask() -> int:
    try:  # Linux: read without changing it (os.umask would, for every thread, for a moment)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _default_mode(path: Path) -> int:
    """The permissions ``open(path, "w")`` gives: the replaced file's, else 0o666 less umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when the block exits normally.

    Args:
        path: the final file; its folder is created if missing.
        mode: ``"w"`` (text) or ``"wb"`` (binary).

    Raises:
        ValueError: ``mode`` is not a write mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path.parent, f".{path.name}.")
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{writer_tag()}.", suffix=".tmp"
    )
    try:
        os.chmod(temporary, _default_mode(path))  # mkstemp makes it 0o600
        with os.fdopen(handle, mode) as file:
            yield file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "w") as file:
        file.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb") as file:
        file.write(data)
    return Path(path)
