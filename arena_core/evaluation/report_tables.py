"""The report's own numbers: calibration curve, ECE, side-by-side tables, position-bias inputs.

Everything here is a pure function of frames and arrays (no files, no plots), so the report's
steps (:mod:`arena_core.evaluation.report`) and its figures
(:mod:`arena_core.evaluation.report_plots`) share one definition of each number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from arena_core.evaluation.metrics import EvalResult

__all__ = [
    "BASELINE_NAME",
    "MAX_LANGUAGES",
    "ORDER_COLUMNS",
    "Breakdown",
    "Scored",
    "calibration_curve",
    "ece",
    "jsonable",
    "position_inputs",
    "split_stacked",
    "wide_table",
    "wilson_errors",
]

#: Name of the built-in length-baseline model in tables, plots and summary.json.
BASELINE_NAME = "length baseline"
#: Per-order probability columns (swapped pass already mapped back to the original A/B columns).
ORDER_COLUMNS = ("p_a_ab", "p_b_ab", "p_a_ba", "p_b_ba")
#: At most this many languages get their own bar; the rest are pooled.
MAX_LANGUAGES = 12


@dataclass
class Scored:
    """Every number the report shows, computed before a file is written (``report._score``)."""

    data: pd.DataFrame  # the labelled canonical frame as given
    labelled: pd.DataFrame  # its rows with a label
    models: dict[str, pd.DataFrame]  # name -> predictions, the length baseline last
    results: dict[str, EvalResult] = field(default_factory=dict)  # name -> evaluate()
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> calibration_curve()
    eces: dict[str, float] = field(default_factory=dict)
    bias: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> metrics.position_bias()
    bias_from: dict[str, str] = field(default_factory=dict)  # name -> where the swapped pass came from
    rows: list[dict[str, Any]] = field(default_factory=list)  # the headline table's rows
    headline: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_base(self) -> bool:
        return BASELINE_NAME in self.results


@dataclass
class Breakdown:
    """One grouping (language, length bucket): evaluate()'s per-group table for every model."""

    key: str  # the grouping column
    groups: list[str]  # in plot order
    counts: list[int]  # rows scored per group (the first model's)
    tables: dict[str, pd.DataFrame]  # model name -> evaluate(...).groups[key]
    language_counts: pd.Series | None = None  # languages only: labelled rows per language, every language
    other: str | None = None  # languages only: the pooled group's label


def wilson_errors(acc: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson interval half-widths (below, above): small groups must look uncertain."""
    import numpy as np

    acc, n = np.asarray(acc, float), np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1 + z**2 / n
        centre = (acc + z**2 / (2 * n)) / denom
        half = z * np.sqrt(acc * (1 - acc) / n + z**2 / (4 * n**2)) / denom
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    # Rounding can leave -1e-17 at accuracy 0 or 1; matplotlib refuses negative error bars.
    return np.clip(np.nan_to_num(acc - lo), 0, None), np.clip(np.nan_to_num(hi - acc), 0, None)


def jsonable(value: Any) -> Any:
    """NaN -> null and numpy scalars -> Python, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _binary_target(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(A wins), A won) the way evaluate scores: 2-class probs drop tie rows, rows renormalised."""
    import numpy as np

    if probs.shape[1] == 2:
        keep = labels != 2
        labels, probs = labels[keep], probs[keep]
    total = probs.sum(axis=1)
    p = np.divide(probs[:, 0], total, out=np.full(total.shape, 0.5), where=total > 0)
    return p, (labels == 0).astype(float)


def calibration_curve(labels: Any, probs: Any, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table of P(A wins): equal-width bins with n, mean predicted and observed share.

    With 2-class probabilities tie-labelled rows are left out (as in :func:`metrics.evaluate`);
    with 3-class probabilities a tie counts as "A did not win". Empty bins have n = 0 and NaNs.
    """
    import numpy as np
    import pandas as pd

    from arena_core.evaluation.metrics import _as_labels, _as_probs

    probs = _as_probs(probs)
    labels = _as_labels(labels, probs.shape[0], 3)  # tie labels allowed: 2-class probs drop them below
    p, y = _binary_target(labels, probs)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    n = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(idx, weights=p, minlength=n_bins) / n
        observed = np.bincount(idx, weights=y, minlength=n_bins) / n
    return pd.DataFrame(
        {"lo": edges[:-1], "hi": edges[1:], "n": n, "mean_pred": mean_pred, "observed": observed}
    )


def ece(table: pd.DataFrame) -> float:
    """Expected calibration error: count-weighted mean |observed - predicted| over bins."""
    import numpy as np

    n = table["n"].to_numpy(float)
    if n.sum() == 0:
        return float("nan")
    gap = np.abs(table["observed"] - table["mean_pred"]).fillna(0.0).to_numpy()
    return float((n * gap).sum() / n.sum())


def split_stacked(name: str, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A ``--save-probs`` file stacks several models (column ``model``): one entry per model."""
    if "model" not in df.columns or df["model"].nunique() <= 1:
        return {name: df}
    return {
        f"{name}/{m}": g.drop(columns="model").reset_index(drop=True)
        for m, g in df.groupby("model", sort=False)
    }


def wide_table(
    results: dict[str, pd.DataFrame], key: str, metric: str, order: list[str] | None = None
) -> pd.DataFrame:
    """One row per group, one column per model: the per-group numbers side by side."""
    import pandas as pd

    first = next(iter(results.values()))
    groups = order if order is not None else first[key].tolist()
    out = pd.DataFrame({key: groups})
    out["n"] = first.set_index(key)["n"].reindex(groups).fillna(0).astype(int).to_numpy()
    for name, table in results.items():
        out[name] = table.set_index(key)[metric].reindex(groups).astype(float).to_numpy()
    return out


def position_inputs(frame: pd.DataFrame, pred: pd.DataFrame, swapped: pd.DataFrame | None):
    """(probs_ab, probs_ba mapped back, where from) or None when the predictions carry no second order."""
    import numpy as np

    from arena_core.evaluation.metrics import align

    if swapped is not None:
        _, ab, _ = align(frame, pred)
        _, sw, _ = align(frame, swapped)
        if sw.shape[1] != ab.shape[1]:
            raise ValueError(
                f"swapped predictions have {sw.shape[1]} classes but the originals have {ab.shape[1]}"
            )
        ba = sw.copy()
        ba[:, [0, 1]] = sw[:, [1, 0]]  # swapped pass: its p_a is the original B
        return ab, ba, "swapped predictions file"
    if not set(ORDER_COLUMNS) <= set(pred.columns):
        return None
    _, _, sub = align(frame, pred)
    cols_ab, cols_ba = ["p_a_ab", "p_b_ab"], ["p_a_ba", "p_b_ba"]
    if {"p_tie_ab", "p_tie_ba"} <= set(pred.columns):
        cols_ab.append("p_tie_ab")
        cols_ba.append("p_tie_ba")
    by_id = pred.set_index("id").loc[sub["id"]]
    ab = by_id[cols_ab].to_numpy(float)
    ba = by_id[cols_ba].to_numpy(float)
    both = np.all(np.isfinite(ab), axis=1) & np.all(np.isfinite(ba), axis=1)
    return (
        ab[both],
        ba[both],
        f"per-order columns ({int(both.sum())} of {len(both)} rows scored in both orders)",
    )
