"""The one error every model-loading step raises, and the directory check they share.

Kept apart so precision, tokenizer, quantisation, LoRA and loading modules can all raise it without
importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ModelLoadError", "check_dir"]


class ModelLoadError(FileNotFoundError):
    """A backbone, tokenizer or adapter cannot be loaded; the message names the path or the missing piece."""


def check_dir(path: str | os.PathLike, what: str) -> Path:
    if not path:
        raise ModelLoadError(
            f"no {what} directory given (model.path is empty); set it to a local checkpoint directory"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"{what} directory not found: {p}")
    if not p.is_dir():
        raise ModelLoadError(f"{what} path is not a directory: {p}")
    return p
