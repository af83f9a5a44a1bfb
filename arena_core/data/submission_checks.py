"""What Kaggle accepts as a submission, checked the way its scorer reads the file, before any upload.

The two formats' columns live here (:data:`FORMATS`), with :func:`validate_submission`, which reads
the CSV back as Kaggle does - every cell as the text that appears in the file - and compares ids in
the test file's type: integer test ids must appear as plain integers (``123``, not ``0123`` or
``123.0``); string test ids must appear exactly (``00123`` stays ``00123``). Every finding is listed
in one :class:`SubmissionError`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arena_core.data.errors import show_ids
from arena_core.data.ids import PLAIN_INT_RE

__all__ = ["FORMATS", "SubmissionError", "check_fmt", "id_texts", "read_as_text", "validate_submission"]

#: Column layout of each supported submission format.
FORMATS: dict[str, tuple[str, ...]] = {
    "wsdm": ("id", "winner"),
    "lmsys": ("id", "winner_model_a", "winner_model_b", "winner_tie"),
}
WINNER_VALUES: tuple[str, str] = ("model_a", "model_b")
SUM_TOLERANCE = 1e-6  # |row sum - 1| allowed in the lmsys format

_SHOW = 5
_NUMERIC_INT_RE = re.compile(r"[+-]?[0-9]+(\.0*)?")
# Strings that pandas (and so Kaggle's scorer) reads as NaN by default.
_NA_STRINGS = frozenset(
    [
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    ]
)


class SubmissionError(ValueError):
    """A submission that Kaggle would reject or mis-score. ``problems`` lists each finding."""

    def __init__(self, message: str, problems: Sequence[str] | None = None):
        super().__init__(message)
        self.problems = list(problems) if problems is not None else [message]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def check_fmt(fmt: str) -> tuple[str, ...]:
    """The columns of submission format ``fmt``; ValueError naming the known ones otherwise."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown submission format {fmt!r}; expected one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def _rows(positions: Iterable[int], values: Sequence[Any] | None = None, n: int = _SHOW) -> str:
    """'row 3 (file line 4): 'x', ...' with 1-based data rows; the header is file line 1."""
    pos = list(positions)
    parts = []
    for p in pos[:n]:
        text = f"row {p + 1} (file line {p + 2})"
        if values is not None:
            text += f": {values[p]!r}"
        parts.append(text)
    return ", ".join(parts) + (", ..." if len(pos) > n else "")


def _is_na(text: str) -> bool:
    return text.strip() in _NA_STRINGS


def read_as_text(path_or_frame: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text that appears (or would appear) in the CSV file."""
    if isinstance(path_or_frame, pd.DataFrame):
        buf = io.StringIO()
        path_or_frame.to_csv(buf, index=False)
        buf.seek(0)
        source: Any = buf
        name = "submission frame"
    else:
        source = Path(path_or_frame)
        name = str(source)
        if not source.is_file():
            raise SubmissionError(f"{name}: no such file")
    try:
        return pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise SubmissionError(f"{name} is empty (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{name} is not a readable CSV file: {exc}") from None


def id_texts(test_ids: Any) -> tuple[list[str], str]:
    """Test ids as their CSV text, and their kind: 'integer' or 'string'."""
    if isinstance(test_ids, pd.DataFrame):
        if "id" not in test_ids.columns:
            raise ValueError("test_ids is a DataFrame without an 'id' column")
        test_ids = test_ids["id"]
    if isinstance(test_ids, pd.Series):
        s = test_ids
    elif isinstance(test_ids, (np.ndarray, pd.Index)):
        s = pd.Series(test_ids)
    else:  # any iterable, e.g. a list or a generator
        s = pd.Series(list(test_ids))
    if s.isna().any():
        raise ValueError("test_ids contain missing values")
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise ValueError("test_ids are booleans; expected integers or strings")
    if pd.api.types.is_integer_dtype(dtype):
        return [str(int(v)) for v in s], "integer"
    if pd.api.types.is_float_dtype(dtype):
        vals = s.to_numpy(dtype=np.float64)
        if np.all(np.isfinite(vals)) and np.all(vals == np.round(vals)):
            return [str(int(v)) for v in vals], "integer"  # e.g. ints upcast by a NaN elsewhere
        raise ValueError("test_ids are non-integral floats; expected integers or strings")
    kinds = {type(v) for v in s}
    if kinds <= {str}:
        return list(s), "string"
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in s):
        return [str(int(v)) for v in s], "integer"
    raise ValueError(
        f"test_ids mix types {sorted(k.__name__ for k in kinds)}; expected all integers or all strings"
    )


def _canonical_int(text: str) -> str | None:
    """'0123' / '123.0' / '+123' -> '123'; None when the text is not an integer in any spelling."""
    t = text.strip()
    if not _NUMERIC_INT_RE.fullmatch(t):
        return None
    return str(int(t.split(".")[0]))


# --------------------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------------------


def _integer_spelling(sid: list[str], empty: set[int], keys: list[str]) -> list[str]:
    """Integer test ids: submission ids not written as plain integers. Their ``keys`` become the
    integer they spell, so the coverage check lists only ids that are genuinely absent or unknown."""
    bad = [i for i, v in enumerate(sid) if i not in empty and not PLAIN_INT_RE.fullmatch(v)]
    if not bad:
        return []
    for i in bad:
        c = _canonical_int(sid[i])
        if c is not None:
            keys[i] = c
    return [
        f"id type differs from the test file: test ids are integers but {len(bad)} submission id(s) "
        f"are not written as plain integers: {_rows(bad, sid)}"
    ]


def _string_spelling(sid: list[str], tset: set[str], keys: list[str]) -> list[str]:
    """String test ids: submission ids that are a test id which lost its spelling (``123`` for
    ``00123``). Their ``keys`` become that test id, as in :func:`_integer_spelling`."""
    unmatched_test = tset.difference(sid)
    if not unmatched_test:
        return []
    by_int: dict[str, str] = {}
    for t in unmatched_test:
        c = _canonical_int(t)
        if c is not None:
            by_int.setdefault(c, t)
    respelled = [i for i, v in enumerate(sid) if v not in tset and v.strip() in by_int]
    if not respelled:
        return []
    for i in respelled:
        keys[i] = by_int[sid[i].strip()]
    examples = ", ".join(f"{sid[i]!r} for {by_int[sid[i].strip()]!r}" for i in respelled[:_SHOW])
    return [
        f"id type differs from the test file: test ids are strings but {len(respelled)} submission "
        f"id(s) look like integers that lost their spelling (e.g. leading zeros): {examples}"
        + (", ..." if len(respelled) > _SHOW else "")
        + "; keep ids as strings exactly as in the test file"
    ]


def _id_problems(ids: pd.Series, test_ids: Any | None) -> list[str]:
    """Empty and duplicated ids; with ``test_ids``, ids spelled unlike the test ids' type, then
    test ids missing from the submission and submission ids that are not test ids."""
    problems = []
    sid = ids.tolist()
    empty = [i for i, v in enumerate(sid) if _is_na(v)]
    empty_set = set(empty)
    if empty:
        problems.append(f"{len(empty)} empty/NaN id(s): {_rows(empty, sid)}")
    dups = ids[ids.duplicated()].unique().tolist()
    if dups:
        problems.append(f"{len(dups)} duplicated id(s): {show_ids(dups)}")
    if test_ids is None:
        return problems
    tid, kind = id_texts(test_ids)
    tset = set(tid)
    keys = list(sid)  # what each submission id is matched to the test ids by
    if kind == "integer":
        problems += _integer_spelling(sid, empty_set, keys)
    else:
        problems += _string_spelling(sid, tset, keys)
    kset = set(keys)
    missing = [t for t in tid if t not in kset]
    if missing:
        problems.append(f"{len(missing)} test id(s) missing from the submission: {show_ids(missing)}")
    extra = [sid[i] for i, k in enumerate(keys) if k not in tset and i not in empty_set]
    if extra:
        problems.append(f"{len(extra)} submission id(s) are not test ids: {show_ids(extra)}")
    return problems


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


def _check_columns(df: pd.DataFrame, expected: tuple[str, ...], fmt: str, name: str) -> None:
    """Raise at once unless the header is exactly the format's columns (nothing else can be read)."""
    cols = list(df.columns)
    missing_cols = [c for c in expected if c not in cols]
    extra_cols = [c for c in cols if c not in expected]
    if missing_cols or extra_cols:
        msg = f"{name}: wrong columns for the {fmt} format: expected {list(expected)}, got {cols}"
        if missing_cols:
            msg += f"; missing {missing_cols}"
        if extra_cols:
            msg += f"; unexpected {extra_cols}"
        raise SubmissionError(msg)


def _empty_values(df: pd.DataFrame, value_cols: Sequence[str]) -> list[str]:
    problems = []
    for col in value_cols:
        na = [i for i, v in enumerate(df[col]) if _is_na(v)]
        if na:
            problems.append(f"{len(na)} NaN/empty value(s) in column {col!r}: {_rows(na, df[col].tolist())}")
    return problems


def _winner_problems(df: pd.DataFrame) -> list[str]:
    vals = df["winner"].tolist()
    illegal = [i for i, v in enumerate(vals) if v not in WINNER_VALUES and not _is_na(v)]
    if not illegal:
        return []
    return [
        f"{len(illegal)} illegal winner value(s) (allowed: {', '.join(WINNER_VALUES)}): {_rows(illegal, vals)}"
    ]


def _probability_problems(df: pd.DataFrame, prob_cols: Sequence[str]) -> list[str]:
    """Per column: non-numbers, values outside [0, 1]; then rows not summing to 1."""
    problems = []
    nums = {}
    for col in prob_cols:
        raw = df[col].tolist()
        num = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        non_numeric = [i for i, v in enumerate(raw) if np.isnan(num[i]) and not _is_na(v)]
        if non_numeric:
            problems.append(f"{len(non_numeric)} non-numeric value(s) in {col!r}: {_rows(non_numeric, raw)}")
        out_of_range = np.flatnonzero(~np.isnan(num) & ((num < 0) | (num > 1)))
        if out_of_range.size:
            problems.append(
                f"{out_of_range.size} probability(ies) in {col!r} not in [0, 1]: "
                f"{_rows(out_of_range.tolist(), raw)}"
            )
        nums[col] = num
    mat = np.column_stack([nums[c] for c in prob_cols]) if len(df) else np.zeros((0, 3))
    sums = mat.sum(axis=1)
    off = np.flatnonzero(np.isfinite(sums) & (np.abs(sums - 1.0) > SUM_TOLERANCE))
    if off.size:
        shown = ", ".join(f"row {i + 1} sums to {sums[i]:.6g}" for i in off[:_SHOW])
        problems.append(
            f"{off.size} row(s) whose probabilities do not sum to 1 (tolerance {SUM_TOLERANCE:g}): {shown}"
            + (", ..." if off.size > _SHOW else "")
        )
    return problems


def validate_submission(
    path_or_frame: str | os.PathLike | pd.DataFrame,
    test_ids: Any | None,
    fmt: str = "wsdm",
) -> None:
    """Raise :class:`SubmissionError` unless the submission is one Kaggle would accept and score.

    ``path_or_frame``: a CSV path, or a DataFrame (checked as the CSV it would be written as).
    ``test_ids``: the test file's ids (sequence, Series, or a frame with an ``id`` column) in their
    own type; ``None`` skips the coverage/type checks (duplicates and content are still checked).
    Checks columns (exact set), empty/NaN cells, duplicated / missing / extra ids, id spelling
    against the test ids' type, winner values (wsdm) and probabilities in [0, 1] summing to 1
    within ``SUM_TOLERANCE`` (lmsys). All findings are listed in one message.
    """
    expected = check_fmt(fmt)
    df = read_as_text(path_or_frame)
    name = "submission" if isinstance(path_or_frame, pd.DataFrame) else str(path_or_frame)
    _check_columns(df, expected, fmt, name)

    problems = ["the submission has no rows"] if len(df) == 0 else []
    problems += _empty_values(df, expected[1:])
    problems += _id_problems(df["id"], test_ids)
    problems += _winner_problems(df) if fmt == "wsdm" else _probability_problems(df, expected[1:])
    if problems:
        raise SubmissionError(
            f"{name} is not a valid {fmt} submission:\n" + "\n".join(f"  - {p}" for p in problems), problems
        )
