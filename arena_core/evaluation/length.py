"""The length signal every model must beat: "the longer response wins" as probabilities, and rows
bucketed by how much longer one response is.

Human raters favour the longer answer often enough that response length alone scores well above
chance; :func:`length_baseline` turns that into a predictor (the CLI's ``arena baseline``, the
report's reference row, and the safety net ``arena predict`` writes before any model runs).
:func:`length_difference_buckets` groups rows by how much longer one response is, so a report can
show whether a model learned more than length. Lengths are counted in characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["length_baseline", "length_difference_buckets"]


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
