"""The error every data problem raises, and how ids appear in its messages.

Kept apart so the readers of ids, schemas and texts can share them without importing each other.
"""

from __future__ import annotations


class DataError(ValueError):
    """Input that cannot be read without losing or inventing data; the message says where."""


def fmt_id(value) -> str:
    """An id as a person would write it (``7``, ``'abc'``), not ``np.int64(7)``."""
    return repr(value.item() if hasattr(value, "item") else value)


def show_ids(values, n: int = 5) -> str:
    """The first ``n`` ids for an error message, with ``...`` when there are more."""
    vals = list(values)
    return ", ".join(fmt_id(v) for v in vals[:n]) + (", ..." if len(vals) > n else "")
