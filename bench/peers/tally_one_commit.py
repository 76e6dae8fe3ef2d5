"""Tally with group commit switched off (one transaction per add): the durable-adds baseline."""

import sys

from tally.server import cli, ledger

if __name__ == "__main__":
    ledger.MAX_ADDS_PER_COMMIT = 1
    sys.exit(cli.main())
