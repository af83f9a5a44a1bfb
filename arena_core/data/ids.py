"""Ids exactly as the file spells them: int64 only where that changes nothing, else text.

A submission must repeat every test id character for character, so ids are never repaired:
``000100`` stays text, floats past 2**53 and undecodable bytes are refused by row.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.data.errors import DataError

#: An integer id as a CSV spells it plainly: no sign but ``-``, no leading zeros, no ``.0``.
PLAIN_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)")
_INT64 = np.iinfo(np.int64)
FLOAT_EXACT_LIMIT = 2**53  # above this a float64 cannot hold every integer: neighbouring ids collapse


def _encodable(value: str) -> bool:
    """False for text holding lone surrogates (undecodable CSV bytes kept by surrogateescape)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_int(value: str) -> bool:
    """A plain integer spelling (no leading zeros, sign only '-', no exponent) that fits int64."""
    return bool(PLAIN_INT_RE.fullmatch(value)) and _INT64.min <= int(value) <= _INT64.max


def normalise_ids(df: pd.DataFrame, path: Path) -> pd.Series:
    """Ids exactly as the file spells them: int64 only where that changes nothing, else text.

    Text ids (every CSV id) become int64 only when the whole column is clean integers, so
    ``000100`` or ``1e3`` stay as written and the submission repeats them character for character.
    """
    ids = df["id"]
    null_rows = np.flatnonzero(ids.isna().to_numpy())
    if len(null_rows):
        raise DataError(f"{path}: column 'id' is empty at row(s) {null_rows[:5].tolist()} (0-based)")
    if pd.api.types.is_bool_dtype(ids):
        raise DataError(f"{path}: column 'id' holds booleans; expected integers or text")
    if pd.api.types.is_integer_dtype(ids):
        return ids.astype("int64")
    if pd.api.types.is_float_dtype(ids):
        vals = ids.to_numpy(dtype=np.float64)
        frac = ~np.isfinite(vals) | (vals != np.floor(vals))
        if frac.any():
            bad = np.flatnonzero(frac)[:5]
            raise DataError(
                f"{path}: column 'id' holds non-integer numbers, e.g. {ids.iloc[bad].tolist()} at row(s) {bad.tolist()}"
            )
        big = np.flatnonzero(np.abs(vals) > FLOAT_EXACT_LIMIT)
        if big.size:
            raise DataError(
                f"{path}: column 'id' holds float ids above 2**53 ({big.size} row(s), e.g. {vals[big[0]]:.0f} at row "
                f"{int(big[0])}); a float loses precision there (neighbouring integers collapse into one), so these "
                "ids may already differ from the original ones: store the id column as int64 or text"
            )
        return ids.astype("int64")
    values = [v.item() if isinstance(v, np.generic) else v for v in ids]
    kinds = Counter(type(v).__name__ for v in values)
    undecodable = []
    for i, v in enumerate(values):
        if isinstance(v, bytes):
            try:
                values[i] = v.decode("utf-8")
            except UnicodeDecodeError:
                undecodable.append(i)
        elif isinstance(v, str) and not _encodable(v):
            undecodable.append(i)
    if undecodable:
        shown = [values[i] for i in undecodable[:3]]
        raise DataError(
            f"{path}: column 'id', row(s) {undecodable[:5]} (0-based): not valid UTF-8 ({shown}); ids must "
            "stay exact, so they are not repaired"
        )
    if set(kinds) - {"str", "bytes", "int"}:
        odd = [(i, v) for i, v in enumerate(values) if not isinstance(v, (str, int))][:5]
        raise DataError(
            f"{path}: column 'id' mixes types {dict(kinds)}; first values that are neither text nor integers "
            f"(row, value): {odd}"
        )
    texts = [v for v in values if isinstance(v, str)]
    if all(_clean_int(v) for v in texts):
        return pd.Series([int(v) for v in values], dtype="int64")
    if "int" in kinds:
        odd = [(i, v) for i, v in enumerate(values) if isinstance(v, int)][:5]
        raise DataError(
            f"{path}: column 'id' mixes integers and text that is not a plain integer {dict(kinds)}; first "
            f"integers (row, value): {odd}"
        )
    return pd.Series(values, dtype=object)


def check_duplicate_ids(ids: pd.Series, path: Path) -> None:
    dup_mask = ids.duplicated(keep=False).to_numpy()
    if dup_mask.any():
        dups = ids[dup_mask]
        examples = {}
        for row, value in zip(np.flatnonzero(dup_mask), dups):
            examples.setdefault(value, []).append(int(row))
            if len(examples) >= 5 and value not in examples:
                break
        shown = "; ".join(f"id {k!r} at rows {v}" for k, v in list(examples.items())[:5])
        raise DataError(f"{path}: column 'id' has {dups.nunique()} duplicated id(s): {shown}")
