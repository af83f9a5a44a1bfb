"""Where made or converted backbones are kept, and the marker that tells a finished one from a torn one.

Both backbone makers (:mod:`~arena_core.models.backbones` for the tiny test Gemma-2,
:mod:`~arena_core.models.gemma3` for the demo's Gemma-3 270M) write a checkpoint folder and, last, a
completion marker describing what was built; a folder without the marker (or with another one) is
an interrupted or outdated write and is built again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["BackboneError", "default_cache_root", "read_marker", "write_marker"]

# Marker written last: a directory without it is an interrupted write and is rebuilt.
COMPLETE_MARKER = ".arena_core_complete.json"


class BackboneError(RuntimeError):
    """A backbone could not be produced; the message says what to install or fix."""


def default_cache_root() -> Path:
    """``$ARENA_CACHE`` if set, else ``~/.cache/arena_core``."""
    env = os.environ.get("ARENA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "arena_core"


def read_marker(directory: Path) -> dict | None:
    """The completion marker of ``directory``; None when it is missing or unreadable."""
    try:
        return json.loads((directory / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_marker(directory: Path, payload: dict) -> None:
    """Mark ``directory`` complete (call it last, after everything else is written)."""
    (directory / COMPLETE_MARKER).write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
