import sys

from perfrdiff.cli import console

sys.exit(console())
