"""The length signal every model must beat: "the longer response wins" as probabilities, and rows
bucketed by how much longer one response is, and the honest question: does a model beat it on the
same rows beyond the 95 % interval?

Human raters favour the longer answer often enough that response length alone scores well above
chance; :func:`length_baseline` turns that into a predictor (the CLI's ``arena baseline``, the
report's reference row, and the safety net ``arena predict`` writes before any model runs).
:func:`length_difference_buckets` groups rows by how much longer one response is, so a report can
show whether a model learned more than length. Lengths are counted in characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["VersusLength", "length_baseline", "length_difference_buckets", "versus_length"]


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


@dataclass
class VersusLength:
    """A model against "the longer answer wins" on the same labelled rows, with paired 95 % intervals.

    Paired (per-row differences) because both score the same rows: that interval is the one that
    says whether the gap is more than noise. ``gain_*`` > 0 means the model is better.
    """

    n: int
    accuracy: float
    log_loss: float
    length_accuracy: float
    length_log_loss: float
    gain_accuracy: float  # model - length
    gain_accuracy_half: float  # 95 % half-width of the paired difference
    gain_log_loss: float  # length - model (lower log loss is better)
    gain_log_loss_half: float

    @property
    def verdict(self) -> str:
        """Plain words: beats / is below / is not distinguishable from the length baseline."""
        acc = _side(self.gain_accuracy, self.gain_accuracy_half)
        ll = _side(self.gain_log_loss, self.gain_log_loss_half)
        if acc > 0 or (ll > 0 and acc >= 0):
            return "beats the length baseline beyond the 95 % interval"
        if acc < 0 or ll < 0:
            return "is WORSE than the length baseline beyond the 95 % interval"
        return "does NOT beat the length baseline beyond noise"

    def line(self, name: str) -> str:
        return (
            f"{name}: accuracy {self.accuracy:.3f} (length {self.length_accuracy:.3f}, {self.gain_accuracy:+.3f} "
            f"+/- {self.gain_accuracy_half:.3f}), log loss {self.log_loss:.3f} (length {self.length_log_loss:.3f}, "
            f"{-self.gain_log_loss:+.3f} +/- {self.gain_log_loss_half:.3f}) on {self.n} rows -> {self.verdict}"
        )


def _side(gain: float, half: float) -> int:
    return 1 if gain - half > 0 else -1 if gain + half < 0 else 0


def versus_length(frame: pd.DataFrame, probs: np.ndarray, with_tie: bool | None = None) -> VersusLength:
    """Compare ``probs`` (rows of ``frame``, which has ``label``) with the length baseline on the
    same rows. 2-class probabilities are scored on the rows without a tie; 3-class ones on every
    row against the tie-aware length heuristic (tie probability: the rows' own tie rate)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = frame["label"].to_numpy()
    k = probs.shape[1]
    keep = ~pd.isna(labels) & ((labels != 2) if k == 2 else True)
    labels = labels[keep].astype(np.int64)
    probs = probs[keep]
    tie_rate = float((labels == 2).mean()) if k == 3 and len(labels) else 0.0
    base = length_baseline(frame[keep], with_tie=k == 3, tie_prob=min(tie_rate, 0.99))
    base = base[["p_a", "p_b", "p_tie"][:k]].to_numpy()

    def per_row(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = np.clip(p, 1e-15, 1.0)
        p = p / p.sum(axis=1, keepdims=True)
        return (p.argmax(axis=1) == labels).astype(float), -np.log(p[np.arange(len(labels)), labels])

    hit_m, ll_m = per_row(probs)
    hit_b, ll_b = per_row(base)
    n = len(labels)

    def half(d: np.ndarray) -> float:
        return float(1.96 * d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")

    return VersusLength(
        n, float(hit_m.mean()), float(ll_m.mean()), float(hit_b.mean()), float(ll_b.mean()),
        float((hit_m - hit_b).mean()), half(hit_m - hit_b), float((ll_b - ll_m).mean()), half(ll_b - ll_m),
    )  # fmt: skip
