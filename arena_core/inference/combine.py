"""Pure maths for combining probabilities: A/B swap mapping and weighted ensembles.

Kept apart from the engine so the rules that decide a submission's numbers (which column means
what after a swap, how weights and missing members are handled, prob vs logit averaging) are
small, exact and tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ENSEMBLE_MODES", "combine", "log_softmax", "normalise_weights", "softmax", "swap_columns"]

ENSEMBLE_MODES = ("prob", "logit")
# log(0) guard for logit averaging of probabilities that underflowed to exactly 0.
_EPS = 1e-12


def swap_columns(probs: np.ndarray) -> np.ndarray:
    """Map scores of the swapped order (B shown first) back to original columns.

    In the swapped order column 0 means "the response shown first wins", i.e. original B, so
    ``[first, second]`` -> ``[second, first]`` and ``[first, second, tie]`` -> ``[second, first, tie]``.
    The mapping is its own inverse. Works on probabilities, log-probabilities and logits alike.
    """
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"expected an (n, 2) or (n, 3) array, got shape {arr.shape}")
    order = [1, 0] + ([2] if arr.shape[1] == 3 else [])
    return arr[:, order]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable: max-subtracted)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64; equals the logits up to a per-row constant."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def normalise_weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    """``n`` non-negative weights summing to 1 (equal weights when ``None``)."""
    if n <= 0:
        raise ValueError("need at least one member to combine")
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"got {w.size} weight(s) for {n} member(s)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def combine(
    prob_list: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
    mode: str = "prob",
    mask: Sequence[np.ndarray] | np.ndarray | None = None,
) -> np.ndarray:
    """Weighted average of several ``(n, k)`` probability arrays, row by row.

    ``mode="prob"``: arithmetic mean of probabilities. ``mode="logit"``: mean of log-probabilities
    (= logits up to a per-row constant), then softmax, i.e. a normalised geometric mean; a
    constant logit offset that is ``+c`` in one member and ``-c`` in another cancels exactly.

    ``mask`` (``(m, n)`` booleans) says which member scored which row; a row's weights are
    renormalised over the members that scored it. A row no member scored comes back as NaN, so
    the caller must fill it (the engine fills it from its fallback).
    """
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"ensemble mode must be one of {ENSEMBLE_MODES}, got {mode!r}")
    if len(prob_list) == 0:
        raise ValueError("need at least one member to combine")
    arrs = [np.asarray(p, dtype=np.float64) for p in prob_list]
    shape = arrs[0].shape
    if len(shape) != 2 or shape[1] not in (2, 3) or any(a.shape != shape for a in arrs):
        raise ValueError(f"members must share one (n, 2|3) shape, got {[a.shape for a in arrs]}")
    stack = np.stack(arrs)  # (m, n, k)
    w = normalise_weights(weights, len(arrs))
    have = np.ones(stack.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if have.shape != stack.shape[:2]:
        raise ValueError(f"mask must have shape {stack.shape[:2]}, got {have.shape}")
    have = have & np.all(np.isfinite(stack), axis=2)
    row_w = have * w[:, None]  # (m, n)
    total = row_w.sum(axis=0)
    covered = total > 0
    row_w = np.divide(row_w, total, out=np.zeros_like(row_w), where=covered)
    values = np.where(have[:, :, None], stack, 0.0)
    if mode == "logit":
        values = np.where(have[:, :, None], np.log(np.clip(values, _EPS, None)), 0.0)
    mean = np.einsum("mn,mnk->nk", row_w, values)
    out = softmax(mean) if mode == "logit" else mean / np.clip(mean.sum(axis=1, keepdims=True), _EPS, None)
    out[~covered] = np.nan
    return out
