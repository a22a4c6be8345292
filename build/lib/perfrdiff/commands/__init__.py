"""Sub-commands of the ``perfrdiff`` CLI (see :mod:`perfrdiff.cli`)."""
