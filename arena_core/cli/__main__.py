"""``python -m arena_core.cli``: the entry point ``torchrun`` launches, one process per GPU."""

import sys

from arena_core.cli.main import main

sys.exit(main())
