"""Whether the ``[reference]`` extra is installed: perfrdiff's own third-party dependencies.

``pip install weditlib`` installs the library and the ``perfrdiff`` command, not the reference's
dependencies (YAML configs, audio features, DTW metrics, safetensors, plots). Every perfrdiff
entry point checks them first, so that a missing one is reported as the extra to install instead
of a raw ``No module named 'yaml'``. Standard library only: this module must import without them.
"""

from __future__ import annotations

import importlib.util

#: Import names of the ``[reference]`` extra in pyproject.toml (keep the two lists together).
REFERENCE_MODULES = (
    "yaml",
    "scipy",
    "soundfile",
    "librosa",
    "tslearn",
    "dtaidistance",
    "safetensors",
    "tqdm",
    "matplotlib",
)
INSTALL = "pip install 'weditlib[reference]'"
INSTALL_FROM_CLONE = "pip install -e '.[reference]'"


class MissingExtraError(ModuleNotFoundError):
    """perfrdiff was imported without the ``[reference]`` extra; the message says what to run."""


def missing_reference_modules() -> list[str]:
    """Import names of the extra that cannot be found (without importing any of them)."""
    return [name for name in REFERENCE_MODULES if importlib.util.find_spec(name) is None]


def require_reference_extra() -> None:
    """Raise :class:`MissingExtraError` naming the install command when the extra is missing."""
    missing = missing_reference_modules()
    if missing:
        raise MissingExtraError(
            f"perfrdiff needs the [reference] extra: {INSTALL}, or {INSTALL_FROM_CLONE} in a clone "
            f"(missing: {', '.join(missing)})",
            name=missing[0],
        )
