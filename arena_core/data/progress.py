"""Progress bars over rows only where someone watches: a terminal, or when asked with ``--progress``.

A bar redrawn with carriage returns is useful on a terminal and noise in a log file or a Kaggle
notebook's saved output (nested escape codes, one line per redraw). The choice is one setting for
the whole process and its children (``ARENA_PROGRESS``: ``on``, ``off`` or ``auto``, where auto
means "stderr is a terminal"), so a ``torchrun`` worker or a demo step follows the command line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

__all__ = ["PROGRESS_ENV", "progress_bar", "progress_enabled", "set_progress"]

PROGRESS_ENV = "ARENA_PROGRESS"
_MODES = ("auto", "on", "off")


def set_progress(mode: str) -> None:
    """Choose for this process and the processes it starts: ``auto`` (a terminal), ``on`` or ``off``."""
    if mode not in _MODES:
        raise ValueError(f"progress mode must be one of {', '.join(_MODES)}, got {mode!r}")
    os.environ[PROGRESS_ENV] = mode


def progress_enabled(stream=None) -> bool:
    """True when bars should be drawn: ``on``, or ``auto`` (the default) and ``stream`` is a terminal."""
    mode = os.environ.get(PROGRESS_ENV, "auto").strip().lower()
    if mode in ("on", "1", "true"):
        return True
    if mode in ("off", "0", "false"):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def progress_bar(iterable: Iterable | None = None, *, wanted: bool = True, **tqdm_kwargs):
    """A tqdm bar when ``wanted`` and :func:`progress_enabled`, else None (callers skip updates)
    or, given an iterable, the iterable itself."""
    if not (wanted and progress_enabled()):
        return iterable
    from tqdm import tqdm

    tqdm_kwargs.setdefault("mininterval", 1.0)
    return tqdm(iterable, **tqdm_kwargs) if iterable is not None else tqdm(**tqdm_kwargs)
