"""Soft labels: a teacher's probabilities as training targets (distillation, pseudo-labels).

The winners of both arena competitions trained students on their teachers' probabilities: the
out-of-fold predictions of a large model on the labelled rows (``arena cv``'s ``oof.parquet``),
and its predictions on extra unlabelled pairs (``arena predict --save-probs``). This module reads
such a file, checks it, and joins it to the training rows by id; the loss that uses it is
:class:`~arena_core.training.loss.DistillLoss`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.data.errors import DataError, show_ids
from arena_core.evaluation.predictions_io import read_prob_table

__all__ = [
    "SOFT_COLUMNS",
    "attach_soft_labels",
    "read_soft_labels",
    "soft_fingerprint",
    "soft_targets",
    "swap_soft",
]

#: Columns of the training frame that hold a row's soft label (NaN where it has none).
SOFT_COLUMNS = ("soft_a", "soft_b", "soft_tie")
_SUM_TOLERANCE = 1e-3


def swap_soft(probs: np.ndarray) -> np.ndarray:
    """The soft label of the same pair shown with B first: ``[p_a, p_b(, p_tie)]`` -> ``[p_b, p_a(, p_tie)]``."""
    arr = np.asarray(probs)
    return arr[..., [1, 0, *range(2, arr.shape[-1])]]


def read_soft_labels(path: str | Path) -> pd.DataFrame:
    """``id, p_a, p_b[, p_tie]`` from ``arena cv``'s ``oof.parquet`` or ``arena predict --save-probs``.

    A ``--save-probs`` file of an ensemble gives its ``ensemble`` rows; of one model, that model's.
    Probabilities must be finite, non-negative and sum to 1 per row (within 1e-3; then renormalised).
    """
    path = Path(path)
    df = read_prob_table(path, "arena cv's oof.parquet or arena predict --save-probs", DataError)
    if "model" in df.columns:
        models = [m for m in pd.unique(df["model"]) if m != "ensemble"]
        if "ensemble" in set(df["model"]):
            df = df[df["model"] == "ensemble"]
        elif len(models) == 1:
            df = df[df["model"] == models[0]]
        else:
            raise DataError(
                f"{path}: holds several models {models} and no ensemble rows; pick one file per teacher"
            )
    cols = ["p_a", "p_b"] + (["p_tie"] if "p_tie" in df.columns else [])
    df = df[["id", *cols]].reset_index(drop=True)
    if df["id"].duplicated().any():
        raise DataError(
            f"{path}: column 'id' has duplicated id(s): {show_ids(df['id'][df['id'].duplicated()])}"
        )
    probs = df[cols].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
    bad |= np.abs(probs.sum(axis=1) - 1.0) > _SUM_TOLERANCE
    if bad.any():
        raise DataError(
            f"{path}: {int(bad.sum())} row(s) are not probabilities (finite, >= 0, summing to 1), "
            f"ids {show_ids(df['id'][bad])}"
        )
    df[cols] = probs / probs.sum(axis=1, keepdims=True)
    return df


def attach_soft_labels(
    frame: pd.DataFrame, soft: pd.DataFrame, num_labels: int, where: str, verbose: bool = True
) -> pd.DataFrame:
    """``frame`` with ``soft_a, soft_b[, soft_tie]`` from ``soft`` (joined on the ids as text).

    For a 2-class model a teacher's ``p_tie`` is dropped and the rest renormalised; a 2-column
    teacher cannot teach a 3-class model. Rows without a winner must have a soft label.
    """
    k = 3 if "p_tie" in soft.columns else 2
    if num_labels == 3 and k == 2:
        raise DataError(
            f"{where}: has no p_tie column; a 3-class model (model.num_labels=3) needs 3-class soft labels"
        )
    probs = soft[["p_a", "p_b", "p_tie"][:num_labels]].to_numpy(dtype=np.float64)
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    pos = pd.Index(soft["id"].astype(str)).get_indexer(frame["id"].astype(str))
    out = frame.copy()
    for j, col in enumerate(SOFT_COLUMNS[:num_labels]):
        out[col] = np.where(pos >= 0, probs[np.maximum(pos, 0), j], np.nan)
    has_soft = pos >= 0
    orphan = ~has_soft & out["label"].isna().to_numpy()
    if orphan.any():
        raise DataError(
            f"{where}: {int(orphan.sum())} training row(s) have neither a winner nor a soft label, "
            f"ids {show_ids(out['id'][orphan])}"
        )
    if not has_soft.any():
        raise DataError(f"{where}: none of its ids matches a training row (e.g. {show_ids(soft['id'], 3)})")
    unused = len(soft) - int(has_soft.sum())
    if not verbose:
        return out
    print(
        f"{where}: soft labels for {int(has_soft.sum())} of {len(out)} training rows"
        + (f" ({int(out['label'].isna().sum())} without a winner)" if out["label"].isna().any() else "")
        + (f"; {unused} soft label(s) match no training row (ties dropped, or other data)" if unused else "")
    )
    return out


def soft_targets(frame: pd.DataFrame) -> np.ndarray | None:
    """The ``(n, k)`` soft labels of a training frame (NaN rows where none), or None without any."""
    cols = [c for c in SOFT_COLUMNS if c in frame.columns]
    return frame[cols].to_numpy(dtype=np.float64) if cols else None


def soft_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the soft labels joined to the rows, so resume notices a different teacher."""
    soft = soft_targets(frame)
    return hashlib.sha256(np.ascontiguousarray(np.round(soft, 9)).tobytes()).hexdigest()
