import sys

from perfrdiff.cli import main

sys.exit(main())
