"""PerFRDiff reference implementation built on :mod:`weditlib`."""

__version__ = "0.1.0"
