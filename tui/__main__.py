import sys

from tally.tui.cli import main

sys.exit(main())
