"""The ``arena`` command: argument parsing only; each subcommand calls one library function.

``arena_core.cli:main`` is the console script's entry point; ``python -m arena_core.cli`` (what
``torchrun`` launches) runs the same function.
"""

from arena_core.cli.main import main

__all__ = ["main"]
