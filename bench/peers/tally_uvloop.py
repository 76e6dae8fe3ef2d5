"""Tally on uvloop's event loop instead of asyncio's: what the loop itself costs an add.

Not a dependency of Tally: the peer is measured only where uvloop is installed (and imported
by name, so that type checks pass where it is not).
"""

import importlib
import sys

from tally.server import cli

if __name__ == "__main__":
    importlib.import_module("uvloop").install()  # asyncio.run, in the command line, then runs on uvloop
    sys.exit(cli.main())
