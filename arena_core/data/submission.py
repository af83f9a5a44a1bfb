"""Kaggle ``submission.csv`` files from predictions: the formats' tables, the LMSYS tie column, a safe write.

Two formats (columns in :data:`~arena_core.data.submission_checks.FORMATS`):

* ``"wsdm"`` (WSDM Cup - Multilingual Chatbot Arena): columns ``id,winner`` with ``winner`` in
  ``{model_a, model_b}``. The winner is the argmax of ``p_a`` vs ``p_b`` (``p_tie``, if present, is
  ignored); **an exact tie ``p_a == p_b`` goes to ``model_a``**, deterministically.
* ``"lmsys"`` (LMSYS - Chatbot Arena Human Preference): columns
  ``id,winner_model_a,winner_model_b,winner_tie`` holding probabilities that sum to 1 per row.
  **Predictions without ``p_tie`` (a 2-class model) get ``winner_tie = tie_rate``** and their
  ``p_a, p_b`` scaled by ``1 - tie_rate`` (:func:`add_tie_column`), with a warning: a tie column of
  0 scores a log loss of ~11 at LMSYS's ~31 % ties. ``arena predict`` passes the training data's tie
  rate from the run manifest; without one :data:`~arena_core.data.competition.LMSYS_TIE_RATE`.

:func:`write_submission` writes atomically (:mod:`~arena_core.data.atomic_write`): the temporary
file is validated (:mod:`~arena_core.data.submission_checks`) before it replaces the target, and a
failure at any step leaves any previous ``submission.csv`` untouched. :func:`load_test_file` reads
the test file a submission is for; a ``sample_submission.csv`` beside it gives the format
(:func:`detect_format`) and must list exactly the same ids (:func:`check_sample_ids`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from arena_core.data.atomic_write import SubmissionWriteError, write_atomically
from arena_core.data.competition import LMSYS_TIE_RATE, find_competition_file, load_competition_file
from arena_core.data.errors import DataError, show_ids
from arena_core.data.ids import PLAIN_INT_RE
from arena_core.data.submission_checks import (
    FORMATS,
    SubmissionError,
    check_fmt,
    id_texts,
    read_as_text,
    validate_submission,
)

__all__ = [
    "SampleSubmission",
    "add_tie_column",
    "check_sample_ids",
    "detect_format",
    "load_test_file",
    "read_sample_submission",
    "submission_frame",
    "write_submission",
]


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
    check_fmt(fmt)
    missing = [c for c in ("id", "p_a", "p_b") if c not in preds.columns]
    if missing:
        raise SubmissionError(f"predictions lack column(s) {missing}; expected id, p_a, p_b[, p_tie]")
    if fmt == "lmsys" and "p_tie" not in preds.columns:
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
        sub = _in_test_order(sub, test_ids)
    path = Path(path)
    if path.is_dir():
        raise SubmissionWriteError(
            f"{path}: is a directory; give the submission's file name, e.g. {path / 'submission.csv'}"
        )
    return write_atomically(
        path,
        write=lambda f: sub.to_csv(f, index=False, lineterminator="\n"),
        check=lambda tmp_name: validate_submission(tmp_name, test_ids, fmt),
    )


def _in_test_order(sub: pd.DataFrame, test_ids: Any) -> pd.DataFrame:
    """``sub``'s rows in the test ids' order when its ids are exactly the test ids; else as it is."""
    tid, _ = id_texts(test_ids)
    keys = sub["id"].astype(str)
    if not keys.duplicated().any() and set(keys) == set(tid):
        order = pd.Index(keys).get_indexer(tid)
        sub = sub.iloc[order].reset_index(drop=True)
    return sub


# --------------------------------------------------------------------------------------------------
# The test file a submission is for, and its sample submission
# --------------------------------------------------------------------------------------------------


class SampleSubmission(NamedTuple):
    """A competition's ``sample_submission.csv``: the format it asks for and the ids it lists."""

    fmt: str  # "wsdm" or "lmsys"
    ids: pd.Series  # int64 when every id is a plain integer, else str (object), in file order
    frame: pd.DataFrame  # the file, every cell as text


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
    df = read_as_text(path)
    try:
        fmt = detect_format(df.columns)
    except ValueError as exc:
        raise SubmissionError(f"{path}: {exc}") from None
    raw = df["id"]
    if len(raw) and raw.map(lambda v: bool(PLAIN_INT_RE.fullmatch(v)) and len(v) <= 18).all():
        ids = raw.astype(np.int64)
    else:
        ids = raw.astype(object)
    return SampleSubmission(fmt=fmt, ids=ids.rename("id"), frame=df)


def check_sample_ids(test_ids: Any, sample: SampleSubmission, sample_path, test_path) -> None:
    """Raise ``DataError`` unless the sample submission lists exactly the test file's ids, spelled alike.

    The submission is validated against the test ids, so this is what ties it to the sample: an id
    the reader changed (``000100`` read as ``100``) shows up here instead of in Kaggle's scorer.
    """
    tid, _ = id_texts(test_ids)
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


def load_test_file(
    test: str | os.PathLike | None, data_dir: str | os.PathLike | None, fmt: str | None = None
):
    """The test frame a submission is written for, and its format (given, or detected).

    ``test`` is the file itself; otherwise ``data_dir/test.parquet`` or ``data_dir/test.csv``. A
    ``sample_submission.csv`` beside it gives the format and must list the same ids.
    """
    test_path = Path(test) if test else find_competition_file(data_dir, "test")
    loaded = load_competition_file(test_path, verbose=True)
    sample_path = test_path.parent / "sample_submission.csv"
    if sample_path.is_file():
        sample = read_sample_submission(sample_path)
        check_sample_ids(loaded.frame["id"], sample, sample_path, test_path)
        return loaded.frame, fmt or sample.fmt
    return loaded.frame, fmt or ("lmsys" if loaded.report.schema == "lmsys" else "wsdm")
