"""Scoring pairwise preference predictions: accuracy, log loss, position bias, and per-group tables.

Conventions shared with the rest of ``arena_core``:

* labels are integers ``0`` (response A wins), ``1`` (response B wins), ``2`` (tie);
* probabilities are an ``(n, k)`` array with ``k == 2`` (columns ``p_a, p_b``) or ``k == 3``
  (``p_a, p_b, p_tie``), in that column order;
* a predictions frame has columns ``id``, ``p_a``, ``p_b`` and optionally ``p_tie``, and is joined to
  the canonical data frame **by id, never by position** (see :func:`align`).

Decisions a caller must know:

* ``argmax`` ties go to the lowest column, i.e. to **A** (same rule as :mod:`arena_core.data.submission`).
* With 2-class probabilities, rows labelled ``2`` (tie) cannot be scored: :func:`evaluate` excludes
  them from accuracy / log loss and reports how many were excluded. With 3-class probabilities every
  labelled row is scored.
* :func:`log_loss` clips to ``[eps, 1 - eps]`` and renormalises each row before taking logs, like
  Kaggle's metric, so a hard 0 for the true class costs ``-log(eps)`` rather than infinity.

The length baseline every model is compared with lives in :mod:`~arena_core.evaluation.length`;
:func:`evaluate`'s result and its printing in :mod:`~arena_core.evaluation.tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arena_core.data.errors import show_ids
from arena_core.evaluation.id_types import id_kind_mismatch
from arena_core.evaluation.tables import EvalResult

__all__ = [
    "PROB_COLUMNS",
    "EvalResult",
    "accuracy",
    "align",
    "evaluate",
    "log_loss",
    "position_bias",
    "predictions_to_array",
]

#: Probability columns of a predictions frame, in class order (0 = A, 1 = B, 2 = tie).
PROB_COLUMNS: tuple[str, str, str] = ("p_a", "p_b", "p_tie")

_SHOW = 5  # how many offending ids an error message lists


# --------------------------------------------------------------------------------------------------
# Core metrics
# --------------------------------------------------------------------------------------------------


def _as_probs(probs: Any) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"probs must be an (n, 2) or (n, 3) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
        raise ValueError(f"probs contain NaN/inf in {bad.size} row(s), first rows: {bad[:_SHOW].tolist()}")
    if np.any(arr < 0):
        raise ValueError("probs contain negative values")
    return arr


def _as_labels(labels: Any, n: int, k: int) -> np.ndarray:
    if isinstance(labels, pd.Series):
        if labels.isna().any():
            raise ValueError("labels contain missing values; drop unlabelled rows first (see align())")
        labels = labels.to_numpy(dtype=np.int64)
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"labels must be a 1-D array of length {n} (rows of probs), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        as_int = arr.astype(np.int64)
        if not np.array_equal(as_int, arr):
            raise ValueError("labels must be integers 0 (A), 1 (B) or 2 (tie)")
        arr = as_int
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(
            f"labels must lie in [0, {k - 1}] for {k}-class probs, got values {sorted(set(arr.tolist()))}"
        )
    return arr


def accuracy(labels: Any, probs: Any) -> float:
    """Share of rows whose argmax class equals the label (argmax ties go to the lower class, A).

    Returns ``nan`` for zero rows.
    """
    p = _as_probs(probs)
    y = _as_labels(labels, p.shape[0], p.shape[1])
    if y.size == 0:
        return float("nan")
    return float(np.mean(np.argmax(p, axis=1) == y))


def log_loss(labels: Any, probs: Any, eps: float = 1e-15) -> float:
    """Mean negative log likelihood of the labels (natural log).

    Probabilities are clipped to ``[eps, 1 - eps]`` and each row renormalised to sum to 1 first
    (Kaggle's convention), so rows need not sum to exactly 1. Returns ``nan`` for zero rows.
    """
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    p = _as_probs(probs)
    y = _as_labels(labels, p.shape[0], p.shape[1])
    if y.size == 0:
        return float("nan")
    p = np.clip(p, eps, 1.0 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(y.size), y])))


# --------------------------------------------------------------------------------------------------
# Joining predictions to labels
# --------------------------------------------------------------------------------------------------


def predictions_to_array(preds: pd.DataFrame) -> np.ndarray:
    """The ``(n, 2)`` or ``(n, 3)`` probability array of a predictions frame (``p_tie`` if present)."""
    missing = [c for c in PROB_COLUMNS[:2] if c not in preds.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}; expected id, p_a, p_b[, p_tie]")
    cols = list(PROB_COLUMNS if "p_tie" in preds.columns else PROB_COLUMNS[:2])
    return preds[cols].to_numpy(dtype=np.float64)


def align(
    frame: pd.DataFrame,
    preds: pd.DataFrame,
    *,
    data_file: str | Path | None = None,
    pred_file: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Join predictions to the labelled rows of ``frame`` by ``id``.

    Returns ``(labels, probs, frame_subset)``: the labelled rows of ``frame`` in the frame's order
    (index reset), their int64 labels and the matching ``(n, 2|3)`` probabilities.

    Raises ``ValueError`` when the ids do not match: every labelled id must have exactly one
    prediction; predictions for ids not in the frame are "unknown"; duplicated ids on either side
    are refused. Predictions for ids that are in the frame but unlabelled are ignored. Ids are
    compared exactly, so ids of another kind (``"123"`` vs ``123``) are reported as such, naming
    ``data_file`` and ``pred_file`` when given (see :mod:`~arena_core.evaluation.id_types`), rather
    than as a wholesale mismatch.
    """
    for name, df in (("frame", frame), ("predictions", preds)):
        if "id" not in df.columns:
            raise ValueError(f"{name} has no 'id' column")
    if "label" not in frame.columns:
        raise ValueError("frame has no 'label' column")

    wanted = frame["id"][frame["label"].notna()]
    mismatch = id_kind_mismatch(wanted if len(wanted) else frame["id"], preds["id"], data_file, pred_file)
    if mismatch:
        raise ValueError(mismatch)

    dup_f = frame["id"][frame["id"].duplicated()].unique()
    if dup_f.size:
        raise ValueError(f"frame has {dup_f.size} duplicated id(s): {show_ids(dup_f)}")
    dup_p = preds["id"][preds["id"].duplicated()].unique()
    problems = []
    if dup_p.size:
        problems.append(f"{dup_p.size} duplicated prediction id(s): {show_ids(dup_p)}")

    labelled = frame[frame["label"].notna()].reset_index(drop=True)
    pred_ids = pd.Index(preds["id"])
    missing = labelled["id"][~labelled["id"].isin(pred_ids)]
    if missing.size:
        problems.append(f"{missing.size} labelled id(s) have no prediction: {show_ids(missing)}")
    unknown = preds["id"][~preds["id"].isin(frame["id"])]
    if unknown.size:
        problems.append(f"{unknown.size} prediction id(s) are not in the frame: {show_ids(unknown)}")
    if problems:
        raise ValueError("predictions do not match the labelled ids: " + "; ".join(problems))

    probs_all = predictions_to_array(preds)
    pos = pd.Index(preds["id"]).get_indexer(labelled["id"])
    probs = probs_all[pos]
    if not np.all(np.isfinite(probs)):
        bad = labelled["id"][~np.all(np.isfinite(probs), axis=1)]
        raise ValueError(f"{bad.size} prediction(s) contain NaN/inf: {show_ids(bad)}")
    labels = labelled["label"].to_numpy(dtype=np.int64)
    return labels, probs, labelled


# --------------------------------------------------------------------------------------------------
# Evaluation report
# --------------------------------------------------------------------------------------------------


def _scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Metrics of one group. With 2-class probs, tie rows are excluded (and counted)."""
    if probs.shape[1] == 2:
        keep = labels != 2
        n_ties = int((~keep).sum())
        labels, probs = labels[keep], probs[keep]
    else:
        n_ties = 0
    n = int(labels.size)
    pred = np.argmax(probs, axis=1) if n else np.empty(0, dtype=np.int64)
    return {
        "n": n,
        "ties_excluded": n_ties,
        "accuracy": accuracy(labels, probs) if n else float("nan"),
        "log_loss": log_loss(labels, probs) if n else float("nan"),
        "pred_a_share": float(np.mean(pred == 0)) if n else float("nan"),
        "true_a_share": float(np.mean(labels == 0)) if n else float("nan"),
    }


def evaluate(
    frame: pd.DataFrame,
    preds: pd.DataFrame,
    by: Sequence[str] | str | None = ("source", "language"),
    *,
    data_file: str | Path | None = None,
    pred_file: str | Path | None = None,
) -> EvalResult:
    """Score ``preds`` against the labelled rows of ``frame`` overall and per group.

    Grouping columns missing from the frame are skipped and noted (``source`` silently: it is optional).
    Groups of any size are shown, with their ``n``. ``data_file`` / ``pred_file``: the files the
    frames were read from, named when their ids cannot be matched.
    """
    labels, probs, sub = align(frame, preds, data_file=data_file, pred_file=pred_file)
    k = probs.shape[1]
    if isinstance(by, str):
        by = (by,)
    by = tuple(by or ())

    overall = pd.DataFrame([{"group": "all", **_scores(labels, probs)}])
    groups: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for col in by:
        if col not in sub.columns:
            if col != "source":  # optional by design (competition files have none): not worth a line
                notes.append(f"grouping column {col!r} is not in the frame; skipped")
            continue
        groups[col] = _group_table(sub[col], labels, probs)
    n_ties = int(overall["ties_excluded"].iloc[0])
    notes += _scoring_notes(k, n_ties, int(overall["n"].iloc[0]))
    return EvalResult(overall=overall, groups=groups, n_classes=k, n_ties_excluded=n_ties, notes=notes)


def _group_table(values: pd.Series, labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """One row of scores per value of a grouping column (missing values as ``<missing>``), largest first."""
    col = values.name
    keys = values.astype("object").where(values.notna(), "<missing>").astype(str).to_numpy()
    rows = []
    for key in pd.unique(keys):
        m = keys == key
        rows.append({col: key, **_scores(labels[m], probs[m])})
    table = pd.DataFrame(rows)
    # largest groups first; all-tie groups (n == 0) last
    return table.sort_values(["n", col], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def _scoring_notes(k: int, n_ties: int, n: int) -> list[str]:
    """What a reader must know to read the numbers: ties left out or scored, nothing scorable."""
    notes = []
    if k == 2:
        if n_ties:
            notes.append(
                f"{n_ties} tie-labelled row(s) excluded from accuracy and log loss "
                "(predictions have no p_tie column)"
            )
    else:
        notes.append("3-class probabilities: tie-labelled rows are scored")
    if n == 0:
        notes.append("no scorable rows: metrics are NaN")
    return notes


# --------------------------------------------------------------------------------------------------
# Position bias (A/B swap test-time augmentation)
# --------------------------------------------------------------------------------------------------


def position_bias(probs_ab: Any, probs_ba: Any) -> dict[str, float]:
    """How much a model's answer depends on which response is shown first.

    ``probs_ab``: probabilities with the original order (A shown first). ``probs_ba``: probabilities
    from the swapped pass, **already mapped back** so that column 0 still means "original A wins"
    (and column 1 "original B wins", column 2 tie). Returns:

    * ``n``;
    * ``flip_rate``: share of rows whose argmax decision differs between the two passes;
    * ``mean_abs_diff``: mean total-variation distance between the two rows,
      ``0.5 * sum(|p_ab - p_ba|)`` (for 2 classes this is ``|Δ p_a|``);
    * ``mean_p_first``: mean probability that the response *shown first* wins, over both passes
      (``p_ab[:, 0]`` and ``p_ba[:, 1]``); ``mean_p_second`` likewise for the one shown second;
    * ``first_minus_second``: their difference; ~0 for a position-blind model, positive when the
      model favours whatever it reads first.
    """
    a = _as_probs(probs_ab)
    b = _as_probs(probs_ba)
    if a.shape != b.shape:
        raise ValueError(f"probs_ab and probs_ba must have the same shape, got {a.shape} and {b.shape}")
    n = a.shape[0]
    if n == 0:
        nan = float("nan")
        return {
            "n": 0,
            "flip_rate": nan,
            "mean_abs_diff": nan,
            "mean_p_first": nan,
            "mean_p_second": nan,
            "first_minus_second": nan,
        }
    flips = np.argmax(a, axis=1) != np.argmax(b, axis=1)
    tv = 0.5 * np.abs(a - b).sum(axis=1)
    p_first = np.concatenate([a[:, 0], b[:, 1]])
    p_second = np.concatenate([a[:, 1], b[:, 0]])
    return {
        "n": int(n),
        "flip_rate": float(flips.mean()),
        "mean_abs_diff": float(tv.mean()),
        "mean_p_first": float(p_first.mean()),
        "mean_p_second": float(p_second.mean()),
        "first_minus_second": float(p_first.mean() - p_second.mean()),
    }
