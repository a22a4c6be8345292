"""Session-wide test settings."""

import os

# Triton chooses between compiled and interpreted kernels when it is first imported (torch may
# import it early): CPU-only test runs must be in interpreter mode from the start.
os.environ.setdefault("TRITON_INTERPRET", "1")
