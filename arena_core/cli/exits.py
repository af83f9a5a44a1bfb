"""How every ``arena`` command ends: one exit-code rule, one-line errors, ``-v`` and ``--progress``.

The rule, the same for every command (and ``build_dataset.py``): 0 done; 2 the input or the way the
command was called is wrong (a bad option, a missing or unreadable file, a bad config, a run that
does not match); 1 the command was right but failed while running (a full
disk or a read-only place, out of memory, a check that found problems, an unexpected error); 130
interrupted. Errors are one ``arena: error:`` line; ``-v`` adds the traceback and the library
warnings that are hidden by default (:mod:`arena_core.models.noise`).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

__all__ = [
    "EXIT_CODES",
    "EXIT_RULE",
    "add_common_options",
    "apply_common_options",
    "exit_code_for",
    "report_error",
]

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

EXIT_CODES = (
    "Exit status: 0 done; 2 a usage or input error (a bad option, a missing or invalid file or config, "
    "a path of the wrong kind); 1 a failure while running (disk full, read-only place, out of memory, a "
    "check that found problems, an unexpected error); 130 interrupted."
)
EXIT_RULE = (
    f"{EXIT_CODES} -v shows tracebacks and the library warnings hidden by default; progress bars are drawn "
    "on a terminal, or always with --progress."
)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``-v`` and ``--progress`` / ``--no-progress`` on a (sub)command that does not define them itself."""
    have = parser._option_string_actions  # argparse keeps no public list of a parser's options
    if "-v" not in have:
        parser.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="show tracebacks and library warnings that are hidden by default",
        )
    if "--progress" not in have:
        parser.add_argument(
            "--progress",
            action="store_true",
            help="draw progress bars even when the output is not a terminal (a log file, a notebook)",
        )
    if "--no-progress" not in have:
        parser.add_argument("--no-progress", action="store_true", help="never draw progress bars")
    if parser.epilog and EXIT_RULE not in parser.epilog:
        parser.epilog = f"{parser.epilog}\n\n{EXIT_RULE}"
    elif not parser.epilog:
        parser.epilog = EXIT_RULE


def apply_common_options(args: argparse.Namespace) -> None:
    """Put ``-v`` and the progress choice where the libraries and child processes read them."""
    from arena_core.data.progress import set_progress
    from arena_core.models.noise import VERBOSE_ENV

    if getattr(args, "verbose", False):
        os.environ[VERBOSE_ENV] = "1"
    if getattr(args, "progress", False) and getattr(args, "no_progress", False):
        raise ValueError("--progress and --no-progress contradict each other; give one")
    if getattr(args, "progress", False):
        set_progress("on")
    elif getattr(args, "no_progress", False):
        set_progress("off")


def exit_code_for(exc: BaseException) -> int:
    """The rule above, by kind of exception; an exception may carry its own ``exit_code``."""
    own = getattr(exc, "exit_code", None)
    if isinstance(own, int):
        return own
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)):
        return EXIT_USAGE  # a path the user named: missing, or of the wrong kind
    if isinstance(exc, (ValueError, ImportError)):
        return EXIT_USAGE  # a value, a config or a package the user has to give or fix
    return EXIT_FAILED


def report_error(prog: str, exc: BaseException, verbose: bool) -> int:
    """Print one ``PROG: error:`` line (and the traceback with ``-v``); return the exit code."""
    code = exit_code_for(exc)
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"{prog}: error: {_one_line(exc, code, verbose)}", file=sys.stderr)
    return code


def _one_line(exc: BaseException, code: int, verbose: bool) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"needs the Python module '{exc.name}', which is not installed in this environment"
    if _known(exc):
        return text
    # Not one of ours: say what it was; the traceback is one -v away.
    hint = "" if verbose else " (run again with -v for the traceback)"
    return f"unexpected {type(exc).__name__}: {text}{hint}"


def _known(exc: BaseException) -> bool:
    """Errors raised on purpose with a message written for the user (ours, and the OS's)."""
    module = type(exc).__module__ or ""
    return module.startswith("arena_core") or isinstance(exc, (OSError, ValueError))
