"""Fallback probabilities for the rows no model scored (deadline reached, OOM on a single row).

Kept apart because the engine and the ensemble driver fill such rows the same way: from a frame
``id, p_a, p_b[, p_tie]`` (e.g. ``length.length_baseline``), an array in encoded order, or uniform
when none was given, mapped to the model's 2 or 3 classes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FALLBACK_TIE", "choose_tie_rate", "fallback_array", "fallback_classes", "training_tie_rate"]

# A 2-class fallback used for a 3-class model gets this tie probability (the rest scaled down).
FALLBACK_TIE = 1.0 / 3.0


def training_tie_rate(manifest: dict) -> float | None:
    """Share of ties in the run's training file (counted before a 2-class run dropped them); None if unrecorded."""
    labels = manifest.get("train_labels") or {}
    try:
        counts = {k: int(labels.get(k, 0)) for k in ("model_a", "model_b", "tie")}
    except (TypeError, ValueError):
        return None
    total = sum(counts.values())
    return counts["tie"] / total if total else None


def choose_tie_rate(manifests: dict) -> tuple[float, str]:
    """The tie probability for an LMSYS submission's rows without a modelled tie, and where it came from.

    ``manifests``: ``{manifest path: manifest}``. The runs' training tie rate when recorded and
    non-zero (their mean); else LMSYS's known rate: training data without ties (WSDM) says nothing
    about how often LMSYS users pick a tie.
    """
    from arena_core.data.competition import LMSYS_TIE_RATE

    rates = {str(where): training_tie_rate(m) for where, m in manifests.items()}
    known = {where: r for where, r in rates.items() if r}
    if known:
        shown = ", ".join(f"{where}: {r:.3f}" for where, r in known.items())
        return float(np.mean(list(known.values()))), f"the training data's tie rate ({shown})"
    why = "the training data had no ties" if any(r == 0 for r in rates.values()) else "no run records one"
    return LMSYS_TIE_RATE, f"LMSYS's known tie rate ({why})"


def fallback_classes(fallback) -> int:
    """How many classes the fallback gives (2 when there is none: uniform over A and B)."""
    if isinstance(fallback, pd.DataFrame):
        return 3 if "p_tie" in fallback.columns else 2
    return 2 if fallback is None else int(np.asarray(fallback).shape[1])


def fallback_array(fallback, keys: list, k: int, rows=None) -> np.ndarray:
    """Fallback probabilities as an ``(n, k)`` array (uniform when none was given).

    ``keys`` are ALL row ids in encoded order; ``rows`` (positions into ``keys``, default all)
    picks the rows that need the fallback. A frame is looked up by id, an array by position, so
    an array given for every row also serves when only some rows fall back.
    """
    pos_rows = np.arange(len(keys)) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(pos_rows)
    if fallback is None:
        return np.full((n, k), 1.0 / k)
    if isinstance(fallback, pd.DataFrame):
        cols = ["p_a", "p_b"] + (["p_tie"] if "p_tie" in fallback.columns else [])
        wanted = [keys[i] for i in pos_rows]
        pos = pd.Index(fallback["id"]).get_indexer(wanted) if n else np.zeros(0, dtype=np.int64)
        if (pos < 0).any():
            missing = [wanted[i] for i in np.flatnonzero(pos < 0)[:5]]
            raise ValueError(f"fallback_probs lack {int((pos < 0).sum())} row id(s), e.g. {missing}")
        arr = fallback[cols].to_numpy(dtype=np.float64)[pos]
    else:
        arr = np.asarray(fallback, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != len(keys) or arr.shape[1] not in (2, 3):
            raise ValueError(
                f"fallback_probs array must be (n_rows={len(keys)}, 2|3) in encoded order, got {arr.shape}"
            )
        arr = arr[pos_rows]
    if arr.shape[1] == k:
        return arr
    if arr.shape[1] == 2 and k == 3:
        return np.column_stack([arr * (1.0 - FALLBACK_TIE), np.full(n, FALLBACK_TIE)])
    if arr.shape[1] == 3 and k == 2:
        two = arr[:, :2]
        return two / np.clip(two.sum(axis=1, keepdims=True), 1e-12, None)
    raise ValueError(f"fallback_probs have {arr.shape[1]} columns, the model {k}")
