import sys

from tally.server.cli import main

sys.exit(main())
