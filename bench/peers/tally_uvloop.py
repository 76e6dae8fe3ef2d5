"""Tally on uvloop's event loop instead of asyncio's: what the loop itself costs an add.

Not a dependency of Tally: the peer is measured only where uvloop is installed.
"""

import sys

import uvloop

from tally.server import cli

if __name__ == "__main__":
    uvloop.install()  # asyncio.run, in the command line, then runs on uvloop
    sys.exit(cli.main())
