"""Facts about the host this process runs on (torch-free, so the metrics can use them)."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (a container or ``taskset`` can allow fewer than exist)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
