"""Scoring pairwise preference predictions: accuracy, log loss, the length baseline, per-group tables.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from arena_core.data.competition import show_ids

__all__ = [
    "PROB_COLUMNS",
    "EvalResult",
    "accuracy",
    "align",
    "evaluate",
    "length_baseline",
    "length_difference_buckets",
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
# Length baseline and length buckets
# --------------------------------------------------------------------------------------------------


def _log_length_ratio(frame: pd.DataFrame) -> np.ndarray:
    len_a = frame["response_a"].astype(str).str.len().to_numpy(dtype=np.float64)
    len_b = frame["response_b"].astype(str).str.len().to_numpy(dtype=np.float64)
    return np.log1p(len_b) - np.log1p(len_a)


def length_baseline(
    frame: pd.DataFrame,
    temperature: float = 2.0,
    with_tie: bool = False,
    tie_prob: float = 0.3,
) -> pd.DataFrame:
    """ "The longer response wins", as calibrated-ish probabilities.

    ``p_b = sigmoid(log((1 + len_b) / (1 + len_a)) / temperature)`` with lengths in characters;
    equal lengths give 0.5 / 0.5, and probabilities never reach 0 or 1 for finite lengths, so the
    log loss stays finite. ``temperature=2`` means a response twice as long wins with p ~ 0.59
    (on ``real_pref_dev.parquet`` minus hh-rlhf the best temperature is ~1-1.5; hh-rlhf "harmless"
    prefers the *shorter* answer, so 2 is a deliberately mild default).

    With ``with_tie=True`` a constant ``p_tie = tie_prob`` is added and ``p_a, p_b`` are scaled by
    ``1 - tie_prob``. The ``id`` column keeps its dtype; rows keep the frame's order.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if with_tie and not 0.0 <= tie_prob < 1.0:
        raise ValueError(f"tie_prob must lie in [0, 1), got {tie_prob}")
    x = _log_length_ratio(frame) / temperature
    p_b = 1.0 / (1.0 + np.exp(-x))
    p_a = 1.0 - p_b
    out = pd.DataFrame({"id": frame["id"].reset_index(drop=True), "p_a": p_a, "p_b": p_b})
    if with_tie:
        out["p_a"] *= 1.0 - tie_prob
        out["p_b"] *= 1.0 - tie_prob
        out["p_tie"] = tie_prob
    return out


def length_difference_buckets(
    frame: pd.DataFrame,
    n_buckets: int = 5,
    edges: Sequence[float] | None = None,
) -> pd.Series:
    """Bucket each row by the relative length difference of the two responses.

    ``r = (len_b - len_a) / max(len_a, len_b)`` (characters; 0 when both are empty) lies in
    ``[-1, 1]``: negative means B is shorter. By default ``[-1, 1]`` is cut into ``n_buckets``
    equal-width intervals (use an odd number so that "about equal" is the middle bucket);
    pass ``edges`` (increasing, covering the values) to choose your own. Returns an ordered
    categorical Series named ``length_bucket`` on the frame's index, with labels such as
    ``"[-20%, +20%)"``; the last interval is closed on the right.
    """
    len_a = frame["response_a"].astype(str).str.len().to_numpy(dtype=np.float64)
    len_b = frame["response_b"].astype(str).str.len().to_numpy(dtype=np.float64)
    denom = np.maximum(np.maximum(len_a, len_b), 1.0)
    r = (len_b - len_a) / denom
    if edges is None:
        if n_buckets < 1:
            raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
        cuts = np.linspace(-1.0, 1.0, n_buckets + 1)
    else:
        cuts = np.asarray(edges, dtype=np.float64)
        if cuts.ndim != 1 or cuts.size < 2 or np.any(np.diff(cuts) <= 0):
            raise ValueError("edges must be a strictly increasing sequence of at least two numbers")
        if r.size and (r.min() < cuts[0] or r.max() > cuts[-1]):
            raise ValueError(f"edges [{cuts[0]}, {cuts[-1]}] do not cover the relative differences [-1, 1]")

    def pct(v: float) -> str:
        s = f"{v * 100:+.0f}%"
        return "0%" if s in ("+0%", "-0%") else s

    labels = [
        f"[{pct(lo)}, {pct(hi)}{']' if i == len(cuts) - 2 else ')'}"
        for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:]))
    ]
    idx = np.searchsorted(cuts, r, side="right") - 1
    idx = np.clip(idx, 0, len(labels) - 1)  # r == last edge goes in the last (closed) bucket
    cat = pd.Categorical.from_codes(idx, categories=labels, ordered=True)
    return pd.Series(cat, index=frame.index, name="length_bucket")


# --------------------------------------------------------------------------------------------------
# Joining predictions to labels
# --------------------------------------------------------------------------------------------------


def _id_kind(values: pd.Series) -> str:
    """'integer', 'string', 'float', 'mixed' or the dtype name, for error messages and checks."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        kinds = set()
        for v in values:
            if isinstance(v, str):
                kinds.add("string")
            elif isinstance(v, (bool, np.bool_)):
                kinds.add("bool")
            elif isinstance(v, (int, np.integer)):
                kinds.add("integer")
            elif isinstance(v, (float, np.floating)):
                kinds.add("float")
            else:
                kinds.add(type(v).__name__)
            if len(kinds) > 1:
                return "mixed"
        return kinds.pop() if kinds else "string"
    return str(dtype)


def predictions_to_array(preds: pd.DataFrame) -> np.ndarray:
    """The ``(n, 2)`` or ``(n, 3)`` probability array of a predictions frame (``p_tie`` if present)."""
    missing = [c for c in PROB_COLUMNS[:2] if c not in preds.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {missing}; expected id, p_a, p_b[, p_tie]")
    cols = list(PROB_COLUMNS if "p_tie" in preds.columns else PROB_COLUMNS[:2])
    return preds[cols].to_numpy(dtype=np.float64)


def align(frame: pd.DataFrame, preds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Join predictions to the labelled rows of ``frame`` by ``id``.

    Returns ``(labels, probs, frame_subset)``: the labelled rows of ``frame`` in the frame's order
    (index reset), their int64 labels and the matching ``(n, 2|3)`` probabilities.

    Raises ``ValueError`` when the ids do not match: every labelled id must have exactly one
    prediction; predictions for ids not in the frame are "unknown"; duplicated ids on either side
    are refused. Predictions for ids that are in the frame but unlabelled are ignored. Ids are
    compared exactly, so a type mismatch (``"123"`` vs ``123``) is reported as such rather than as
    a wholesale mismatch.
    """
    for name, df in (("frame", frame), ("predictions", preds)):
        if "id" not in df.columns:
            raise ValueError(f"{name} has no 'id' column")
    if "label" not in frame.columns:
        raise ValueError("frame has no 'label' column")

    kind_f, kind_p = _id_kind(frame["id"]), _id_kind(preds["id"])
    if kind_f != kind_p or "mixed" in (kind_f, kind_p):
        raise ValueError(
            f"id type mismatch: frame ids are {kind_f} (e.g. {show_ids(frame['id'], 2)}) but prediction ids "
            f"are {kind_p} (e.g. {show_ids(preds['id'], 2)}); convert one side, e.g. "
            "preds['id'] = preds['id'].astype(frame['id'].dtype)"
        )

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


@dataclass
class EvalResult:
    """Result of :func:`evaluate`.

    ``overall`` is a one-row DataFrame and ``groups`` maps each grouping column to a DataFrame with
    one row per value (sorted by ``n`` descending). Columns: the group value, ``n`` (rows scored),
    ``ties_excluded`` (tie-labelled rows left out because the probabilities have no tie column),
    ``accuracy``, ``log_loss``, ``pred_a_share`` (share of scored rows predicted "A wins") and
    ``true_a_share`` (share of scored rows where A actually won).
    """

    overall: pd.DataFrame
    groups: dict[str, pd.DataFrame]
    n_classes: int
    n_ties_excluded: int
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(self.overall["accuracy"].iloc[0])

    @property
    def log_loss(self) -> float:
        return float(self.overall["log_loss"].iloc[0])

    @property
    def n(self) -> int:
        return int(self.overall["n"].iloc[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.iloc[0].to_dict(),
            "groups": {k: v.to_dict(orient="records") for k, v in self.groups.items()},
            "n_classes": self.n_classes,
            "n_ties_excluded": self.n_ties_excluded,
            "notes": list(self.notes),
        }

    def _render(self, markdown: bool) -> str:
        parts = []
        for title, table in [("overall", self.overall), *self.groups.items()]:
            heading = f"### {title}" if markdown else title
            parts.append(heading + "\n\n" + format_table(table, markdown=markdown))
        if self.notes:
            parts.append("\n".join(("- " if markdown else "* ") + n for n in self.notes))
        return "\n\n".join(parts) + "\n"

    def to_markdown(self) -> str:
        return self._render(markdown=True)

    def to_text(self) -> str:
        return self._render(markdown=False)

    def __str__(self) -> str:
        return self.to_text()


def evaluate(
    frame: pd.DataFrame,
    preds: pd.DataFrame,
    by: Sequence[str] | str | None = ("source", "language"),
) -> EvalResult:
    """Score ``preds`` against the labelled rows of ``frame`` overall and per group.

    Grouping columns missing from the frame (``source`` is optional) are skipped and noted.
    Groups of any size are shown, with their ``n``.
    """
    labels, probs, sub = align(frame, preds)
    k = probs.shape[1]
    if isinstance(by, str):
        by = (by,)
    by = tuple(by or ())

    overall = pd.DataFrame([{"group": "all", **_scores(labels, probs)}])
    groups: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    for col in by:
        if col not in sub.columns:
            notes.append(f"grouping column {col!r} is not in the frame; skipped")
            continue
        keys = sub[col].astype("object").where(sub[col].notna(), "<missing>").astype(str).to_numpy()
        rows = []
        for key in pd.unique(keys):
            m = keys == key
            rows.append({col: key, **_scores(labels[m], probs[m])})
        table = pd.DataFrame(rows)
        # largest groups first; all-tie groups (n == 0) last
        table = table.sort_values(["n", col], ascending=[False, True], kind="mergesort").reset_index(
            drop=True
        )
        groups[col] = table

    n_ties = int(overall["ties_excluded"].iloc[0])
    if k == 2:
        if n_ties:
            notes.append(
                f"{n_ties} tie-labelled row(s) excluded from accuracy and log loss "
                "(predictions have no p_tie column)"
            )
    else:
        notes.append("3-class probabilities: tie-labelled rows are scored")
    if int(overall["n"].iloc[0]) == 0:
        notes.append("no scorable rows: metrics are NaN")
    return EvalResult(overall=overall, groups=groups, n_classes=k, n_ties_excluded=n_ties, notes=notes)


# --------------------------------------------------------------------------------------------------
# Table formatting (no tabulate dependency)
# --------------------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4f}"
    return str(v)


def format_table(table: pd.DataFrame, markdown: bool = False) -> str:
    """Render a DataFrame as an aligned plain-text or GitHub-markdown table.

    Numbers are right-aligned (floats with 4 decimals, NaN as ``-``), text left-aligned.
    """
    headers = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c].dtype) for c in table.columns]
    body = [[_cell(v) for v in row] for row in table.itertuples(index=False, name=None)]
    if markdown:
        body = [[c.replace("|", "\\|") for c in row] for row in body]
        headers = [h.replace("|", "\\|") for h in headers]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    # markdown needs at least 3 dashes per column
    widths = [max(w, 3) for w in widths] if markdown else widths

    def fmt(cells: list[str]) -> list[str]:
        return [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]

    if markdown:
        lines = ["| " + " | ".join(fmt(headers)) + " |"]
        lines.append(
            "| "
            + " | ".join(("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric))
            + " |"
        )
        lines += ["| " + " | ".join(fmt(r)) + " |" for r in body]
    else:
        lines = ["  ".join(fmt(headers)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(fmt(r)).rstrip() for r in body]
    return "\n".join(lines)


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
