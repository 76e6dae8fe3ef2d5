"""Tally with group commit switched off (one transaction per add): the durable-adds baseline."""

import sys

from tally.server import ledger

# Before the command line is imported: the configuration takes the ledger's bound as its default.
ledger.MAX_ADDS_PER_COMMIT = 1

from tally.server import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.main())
