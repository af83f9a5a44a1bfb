"""Writing and validating Kaggle ``submission.csv`` files.

Two formats:

* ``"wsdm"`` (WSDM Cup - Multilingual Chatbot Arena): columns ``id,winner`` with ``winner`` in
  ``{model_a, model_b}``. The winner is the argmax of ``p_a`` vs ``p_b`` (``p_tie``, if present, is
  ignored); **an exact tie ``p_a == p_b`` goes to ``model_a``**, deterministically.
* ``"lmsys"`` (LMSYS - Chatbot Arena Human Preference): columns
  ``id,winner_model_a,winner_model_b,winner_tie`` holding probabilities that sum to 1 per row.
  **Predictions without ``p_tie`` (a 2-class model) get ``winner_tie = tie_rate``** and their
  ``p_a, p_b`` scaled by ``1 - tie_rate`` (:func:`add_tie_column`), with a warning: a tie column of
  0 scores a log loss of ~11 at LMSYS's ~31 % ties. ``arena predict`` passes the training data's tie
  rate from the run manifest; without one :data:`~arena_core.data.competition.LMSYS_TIE_RATE`.

Files are written atomically: a temporary file in the target directory is written, flushed and
fsynced, validated, and only then moved over the target with :func:`os.replace`. A failure at any
step removes the temporary file and leaves any previous ``submission.csv`` untouched.

Validation reads the CSV back the way Kaggle does - every cell as the text that appears in the file -
and compares ids in the test file's type: integer test ids must appear as plain integers
(``123``, not ``0123`` or ``123.0``); string test ids must appear exactly (``00123`` stays
``00123``).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from arena_core.data.competition import show_ids

__all__ = [
    "FORMATS",
    "add_tie_column",
    "SampleSubmission",
    "SubmissionError",
    "SubmissionWriteError",
    "check_sample_ids",
    "check_writable",
    "detect_format",
    "read_sample_submission",
    "submission_frame",
    "validate_submission",
    "write_submission",
]

#: Column layout of each supported submission format.
FORMATS: dict[str, tuple[str, ...]] = {
    "wsdm": ("id", "winner"),
    "lmsys": ("id", "winner_model_a", "winner_model_b", "winner_tie"),
}
WINNER_VALUES: tuple[str, str] = ("model_a", "model_b")
SUM_TOLERANCE = 1e-6  # |row sum - 1| allowed in the lmsys format

_SHOW = 5
_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)")
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


class SampleSubmission(NamedTuple):
    fmt: str  # "wsdm" or "lmsys"
    ids: pd.Series  # int64 when every id is a plain integer, else str (object), in file order
    frame: pd.DataFrame  # the file, every cell as text


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _check_fmt(fmt: str) -> tuple[str, ...]:
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


def _read_as_text(path_or_frame: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
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


def _test_ids_as_text(test_ids: Any) -> tuple[list[str], str]:
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
# Validation
# --------------------------------------------------------------------------------------------------


def _check_ids(ids: pd.Series, test_ids: Any | None, problems: list[str]) -> None:
    sid = ids.tolist()
    empty = [i for i, v in enumerate(sid) if v.strip() in _NA_STRINGS]
    empty_set = set(empty)
    if empty:
        problems.append(f"{len(empty)} empty/NaN id(s): {_rows(empty, sid)}")
    dups = ids[ids.duplicated()].unique().tolist()
    if dups:
        problems.append(f"{len(dups)} duplicated id(s): {show_ids(dups)}")
    if test_ids is None:
        return
    tid, kind = _test_ids_as_text(test_ids)
    tset = set(tid)
    # Key used for the coverage comparison: after a type problem is reported, ids that only differ
    # in spelling are matched, so missing/extra list only genuinely absent/unknown ids.
    keys = list(sid)
    if kind == "integer":
        bad = [i for i, v in enumerate(sid) if i not in empty_set and not _INT_RE.fullmatch(v)]
        if bad:
            problems.append(
                f"id type differs from the test file: test ids are integers but {len(bad)} submission id(s) "
                f"are not written as plain integers: {_rows(bad, sid)}"
            )
            for i in bad:
                c = _canonical_int(sid[i])
                if c is not None:
                    keys[i] = c
    else:
        unmatched_test = tset.difference(sid)
        if unmatched_test:
            by_int: dict[str, str] = {}
            for t in unmatched_test:
                c = _canonical_int(t)
                if c is not None:
                    by_int.setdefault(c, t)
            respelled = [i for i, v in enumerate(sid) if v not in tset and v.strip() in by_int]
            if respelled:
                examples = ", ".join(f"{sid[i]!r} for {by_int[sid[i].strip()]!r}" for i in respelled[:_SHOW])
                problems.append(
                    f"id type differs from the test file: test ids are strings but {len(respelled)} submission "
                    f"id(s) look like integers that lost their spelling (e.g. leading zeros): {examples}"
                    + (", ..." if len(respelled) > _SHOW else "")
                    + "; keep ids as strings exactly as in the test file"
                )
                for i in respelled:
                    keys[i] = by_int[sid[i].strip()]
    kset = set(keys)
    missing = [t for t in tid if t not in kset]
    if missing:
        problems.append(f"{len(missing)} test id(s) missing from the submission: {show_ids(missing)}")
    extra = [sid[i] for i, k in enumerate(keys) if k not in tset and i not in empty_set]
    if extra:
        problems.append(f"{len(extra)} submission id(s) are not test ids: {show_ids(extra)}")


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
    expected = _check_fmt(fmt)
    df = _read_as_text(path_or_frame)
    name = "submission" if isinstance(path_or_frame, pd.DataFrame) else str(path_or_frame)

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

    problems: list[str] = []
    if len(df) == 0:
        problems.append("the submission has no rows")

    # NaN / empty cells in value columns
    for col in expected[1:]:
        na = [i for i, v in enumerate(df[col]) if v.strip() in _NA_STRINGS]
        if na:
            problems.append(f"{len(na)} NaN/empty value(s) in column {col!r}: {_rows(na, df[col].tolist())}")

    _check_ids(df["id"], test_ids, problems)

    if fmt == "wsdm":
        vals = df["winner"].tolist()
        illegal = [i for i, v in enumerate(vals) if v not in WINNER_VALUES and v.strip() not in _NA_STRINGS]
        if illegal:
            problems.append(
                f"{len(illegal)} illegal winner value(s) (allowed: {', '.join(WINNER_VALUES)}): "
                f"{_rows(illegal, vals)}"
            )
    else:
        prob_cols = list(expected[1:])
        nums = {}
        for col in prob_cols:
            raw = df[col].tolist()
            num = pd.to_numeric(df[col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
            non_numeric = [i for i, v in enumerate(raw) if np.isnan(num[i]) and v.strip() not in _NA_STRINGS]
            if non_numeric:
                problems.append(
                    f"{len(non_numeric)} non-numeric value(s) in {col!r}: {_rows(non_numeric, raw)}"
                )
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

    if problems:
        raise SubmissionError(
            f"{name} is not a valid {fmt} submission:\n" + "\n".join(f"  - {p}" for p in problems), problems
        )


# --------------------------------------------------------------------------------------------------
# Building and writing
# --------------------------------------------------------------------------------------------------


def add_tie_column(preds: pd.DataFrame, tie_rate: float) -> pd.DataFrame:
    """2-class predictions as 3-class ones: ``p_tie = tie_rate``, ``p_a`` and ``p_b`` scaled by ``1 - tie_rate``.

    The calibrated choice when only the tie base rate is known: a constant tie probability equal
    to the rate minimises the expected log loss of the tie column, and A vs B keep their odds.
    """
    if not 0.0 <= tie_rate < 1.0:
        raise ValueError(f"tie rate must lie in [0, 1), got {tie_rate}")
    out = preds.copy()
    out["p_a"] = out["p_a"].astype(np.float64) * (1.0 - tie_rate)
    out["p_b"] = out["p_b"].astype(np.float64) * (1.0 - tie_rate)
    out["p_tie"] = float(tie_rate)
    return out


def submission_frame(preds: pd.DataFrame, fmt: str = "wsdm", tie_rate: float | None = None) -> pd.DataFrame:
    """The submission table for ``preds`` (columns ``id, p_a, p_b[, p_tie]``), ids untouched, same order.

    LMSYS format without ``p_tie``: a tie column from ``tie_rate`` (default ``LMSYS_TIE_RATE``), warned.
    """
    _check_fmt(fmt)
    missing = [c for c in ("id", "p_a", "p_b") if c not in preds.columns]
    if missing:
        raise SubmissionError(f"predictions lack column(s) {missing}; expected id, p_a, p_b[, p_tie]")
    if fmt == "lmsys" and "p_tie" not in preds.columns:
        from arena_core.data.competition import LMSYS_TIE_RATE

        rate = LMSYS_TIE_RATE if tie_rate is None else tie_rate
        warnings.warn(
            f"2-class predictions for the lmsys format: winner_tie = {rate:g} for every row and p_a, p_b scaled "
            f"by {1 - rate:g} (a tie column of 0 would score a log loss of ~11 on LMSYS's ties)",
            stacklevel=2,
        )
        preds = add_tie_column(preds, rate)
    prob_cols = ["p_a", "p_b"] + (["p_tie"] if "p_tie" in preds.columns else [])
    probs = preds[prob_cols].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.all(np.isfinite(probs), axis=1))
    if bad.size:
        raise SubmissionError(
            f"{bad.size} prediction row(s) contain NaN/inf probabilities, ids: {show_ids(preds['id'].iloc[bad].tolist())}"
        )
    ids = preds["id"].reset_index(drop=True)
    if fmt == "wsdm":
        winner = np.where(probs[:, 1] > probs[:, 0], "model_b", "model_a")  # exact tie -> model_a
        return pd.DataFrame({"id": ids, "winner": winner})
    return pd.DataFrame(
        {"id": ids, "winner_model_a": probs[:, 0], "winner_model_b": probs[:, 1], "winner_tie": probs[:, 2]}
    )


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SubmissionWriteError(OSError):
    """The submission could not be written (read-only place, disk full, a directory in the way).

    The message names the file and says that any previous file there is unchanged.
    """


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _tmp_prefix(path: Path, pid: int | None = None) -> str:
    return f".{path.name}.{os.getpid() if pid is None else pid}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def _sweep_stale_tmp(path: Path) -> list[Path]:
    """Remove temporary files a killed writer (SIGKILL, power loss) left beside ``path``.

    Temporary names carry the writer's pid, so only files of processes that no longer run go.
    """
    removed = []
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[^/]*\.tmp")
    with suppress(OSError):
        for entry in path.parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                with suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Fail now, in seconds, when ``path`` cannot be written later (a directory, a read-only place).

    Used before hours of scoring; makes the missing parent folders, writes and removes a probe file.
    """
    path = Path(path)
    if path.is_dir():
        raise SubmissionWriteError(f"{path}: {what} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise SubmissionWriteError(f"{path}: {what} cannot be written there: {_why(exc)}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise SubmissionWriteError(f"{path}: {what} exists and is read-only")
    return path


def write_submission(
    preds: pd.DataFrame,
    path: str | os.PathLike,
    fmt: str = "wsdm",
    test_ids: Any | None = None,
    tie_rate: float | None = None,
) -> Path:
    """Write ``preds`` as a Kaggle submission CSV at ``path``, atomically; returns the path.

    ``tie_rate``: see :func:`submission_frame` (LMSYS format, predictions without ``p_tie``).

    The file is validated (:func:`validate_submission`) before it replaces ``path``; with
    ``test_ids`` the id coverage and type are checked too and rows are written in the test ids'
    order (when the sets match). On any failure :class:`SubmissionError` (content) or
    :class:`SubmissionWriteError` (I/O: read-only, disk full, a directory at ``path``) is raised, no
    temporary file is left behind and an existing file at ``path`` is not modified.
    """
    sub = submission_frame(preds, fmt, tie_rate)
    if test_ids is not None:
        tid, _ = _test_ids_as_text(test_ids)
        keys = sub["id"].astype(str)
        if not keys.duplicated().any() and set(keys) == set(tid):
            order = pd.Index(keys).get_indexer(tid)
            sub = sub.iloc[order].reset_index(drop=True)

    path = Path(path)
    if path.is_dir():
        raise SubmissionWriteError(
            f"{path}: is a directory; give the submission's file name, e.g. {path / 'submission.csv'}"
        )
    kept = "the previous file is unchanged" if path.exists() else "nothing was written"
    cannot = f"{path}: cannot write the submission there"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_tmp(path)
    except OSError as exc:
        raise SubmissionWriteError(f"{cannot}: {_why(exc)}; {kept}") from None
    tmp_name = None  # set inside the try, so an interrupt right after mkstemp still removes the file
    try:
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise SubmissionWriteError(f"{cannot}: {_why(exc)}; {kept}") from None
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            sub.to_csv(f, index=False, lineterminator="\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)
        validate_submission(tmp_name, test_ids, fmt)
        os.replace(tmp_name, path)
    except BaseException as exc:
        if tmp_name is not None:
            with suppress(OSError):
                os.unlink(tmp_name)
        if isinstance(exc, OSError) and not isinstance(exc, SubmissionWriteError):
            raise SubmissionWriteError(
                f"{path}: writing the submission failed: {_why(exc)}; {kept}"
            ) from None
        raise
    _fsync_dir(path.parent)
    return path


# --------------------------------------------------------------------------------------------------
# Sample submission
# --------------------------------------------------------------------------------------------------


def detect_format(columns: Iterable[str]) -> str:
    """'wsdm' or 'lmsys' from a header (exact column set), else ValueError."""
    cols = [str(c).strip() for c in columns]
    for fmt, expected in FORMATS.items():
        if sorted(cols) == sorted(expected):
            return fmt
    raise ValueError(f"cannot detect the submission format from columns {cols}; known: {FORMATS}")


def read_sample_submission(path: str | os.PathLike) -> SampleSubmission:
    """Read a competition's ``sample_submission.csv``: its format, its ids and the raw table.

    ``ids`` are int64 when every id is written as a plain integer, otherwise strings exactly as they
    appear (so ``"00123"`` keeps its zeros) - i.e. the type to pass as ``test_ids``.
    """
    df = _read_as_text(path)
    try:
        fmt = detect_format(df.columns)
    except ValueError as exc:
        raise SubmissionError(f"{path}: {exc}") from None
    raw = df["id"]
    if len(raw) and raw.map(lambda v: bool(_INT_RE.fullmatch(v)) and len(v) <= 18).all():
        ids = raw.astype(np.int64)
    else:
        ids = raw.astype(object)
    return SampleSubmission(fmt=fmt, ids=ids.rename("id"), frame=df)


def check_sample_ids(test_ids: Any, sample: SampleSubmission, sample_path, test_path) -> None:
    """Raise ``DataError`` unless the sample submission lists exactly the test file's ids, spelled alike.

    The submission is validated against the test ids, so this is what ties it to the sample: an id
    the reader changed (``000100`` read as ``100``) shows up here instead of in Kaggle's scorer.
    """
    from arena_core.data.competition import DataError

    tid, _ = _test_ids_as_text(test_ids)
    sid = sample.frame["id"].tolist()
    tset, sset = set(tid), set(sid)
    not_in_sample = [t for t in tid if t not in sset]
    not_in_test = [v for v in sid if v not in tset]
    if not_in_sample or not_in_test:
        parts = []
        if not_in_sample:
            parts.append(f"{len(not_in_sample)} test id(s) not in the sample: {show_ids(not_in_sample)}")
        if not_in_test:
            parts.append(
                f"{len(not_in_test)} sample id(s) not in {Path(test_path).name}: {show_ids(not_in_test)}"
            )
        raise DataError(f"{sample_path}: ids differ from {test_path}: " + "; ".join(parts))


def competition_format(data_dir: str | os.PathLike, schema: str) -> str:
    """The format a competition expects: from its sample_submission.csv, else from the test schema."""
    sample = Path(data_dir) / "sample_submission.csv"
    if sample.is_file():
        return read_sample_submission(sample).fmt
    return "lmsys" if schema == "lmsys" else "wsdm"


def load_test_file(
    test: str | os.PathLike | None, data_dir: str | os.PathLike | None, fmt: str | None = None
):
    """The test frame a submission is written for, and its format (given, or detected).

    ``test`` is the file itself; otherwise ``data_dir/test.parquet`` or ``data_dir/test.csv``. A
    ``sample_submission.csv`` beside it gives the format and must list the same ids.
    """
    from arena_core.data.competition import find_competition_file, load_competition_file

    test_path = Path(test) if test else find_competition_file(data_dir, "test")
    loaded = load_competition_file(test_path, verbose=True)
    sample_path = test_path.parent / "sample_submission.csv"
    if sample_path.is_file():
        sample = read_sample_submission(sample_path)
        check_sample_ids(loaded.frame["id"], sample, sample_path, test_path)
        return loaded.frame, fmt or sample.fmt
    return loaded.frame, fmt or ("lmsys" if loaded.report.schema == "lmsys" else "wsdm")
