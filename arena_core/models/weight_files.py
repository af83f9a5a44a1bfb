"""Is a ``.safetensors`` file whole? Its header lists every tensor's byte range, so a write cut off
mid-file (a killed save, a partial upload) shows without reading the tensors. Resume uses it to skip
a broken checkpoint, the bundle checks to refuse a broken run."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["safetensors_problem"]


def safetensors_problem(path: Path) -> str | None:
    """A truncated or foreign .safetensors file, as a message naming it; None when the header adds up."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return f"{path}: not a safetensors file (header length {n}, file size {size})"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        return f"{path}: unreadable safetensors header ({exc})"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    if 8 + n + max(ends, default=0) != size:
        return f"{path}: truncated or padded ({size} bytes, header describes {8 + n + max(ends, default=0)})"
    return None
