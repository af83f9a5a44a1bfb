"""What :func:`~arena_core.inference.engine.predict_probs` returns: every row's probabilities and
the path that made them.

Each row takes the best the passes gave it, in this order (:data:`PATHS`): both A/B orders combined
(``model+swap``), one order (``model``), the shortened re-encoding (``model@short``), else the
fallback probabilities (``fallback``, e.g. the length heuristic). The passes' own probabilities stay
in the result for position-bias analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arena_core.inference.combine import combine
from arena_core.inference.fallback import fallback_array

__all__ = ["PATHS", "PredictionResult", "choose_rows"]

PATHS = ("model+swap", "model", "model@short", "fallback")


@dataclass
class PredictionResult:
    """Probabilities for every row, in the encoded (frame) order, and how each was produced."""

    ids: np.ndarray
    probs: np.ndarray  # (n, k): columns p_a, p_b[, p_tie]
    path: np.ndarray  # per row, one of PATHS
    coverage: dict[str, int]
    probs_first: np.ndarray  # full-length pass in the shown order; NaN where not scored
    probs_swapped: np.ndarray  # swapped pass mapped back to original columns; NaN where not scored
    stats: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    def frame(self) -> pd.DataFrame:
        """``id, p_a, p_b[, p_tie]`` with the ids' own type (int64, or str values in an object column)."""
        cols = {
            "id": pd.Series(self.ids, dtype=self.ids.dtype),
            "p_a": self.probs[:, 0],
            "p_b": self.probs[:, 1],
        }
        if self.n_classes == 3:
            cols["p_tie"] = self.probs[:, 2]
        return pd.DataFrame(cols)

    def analysis_frame(self) -> pd.DataFrame:
        """``frame()`` plus each order's probabilities (``p_a_ab``... ``p_b_ba``, swapped pass mapped
        back to the original columns, NaN where that order was not scored) for position-bias analysis."""
        df = self.frame()
        names = ("p_a", "p_b", "p_tie")[: self.n_classes]
        for suffix, arr in (("ab", self.probs_first), ("ba", self.probs_swapped)):
            for j, name in enumerate(names):
                df[f"{name}_{suffix}"] = arr[:, j]
        return df


def _pass_probs(keys: list, results: dict[str, dict], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pass's probabilities in ``keys`` order (shown, swapped, short); NaN rows where it did not run.

    ``results`` maps pass kind -> row id -> log-probabilities (``short``: with the max_length used).
    """
    nan = np.full((len(keys), k), np.nan)
    first, swapped, short = nan.copy(), nan.copy(), nan.copy()
    for i, key in enumerate(keys):
        if key in results["fwd"]:
            first[i] = np.exp(results["fwd"][key])
        if key in results["swap"]:
            swapped[i] = np.exp(results["swap"][key])
        if key in results["short"]:
            short[i] = np.exp(results["short"][key][0])
    return first, swapped, short


def choose_rows(
    keys: list, results: dict[str, dict], k: int, ensemble_mode: str, fallback_probs
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(probs, path, first, swapped)`` for rows ``keys``: each row from the best path that reached it.

    Both orders are combined as ``ensemble_mode`` says; ``fallback_probs`` (see
    :func:`~arena_core.inference.fallback.fallback_array`) fills the rows no pass reached.
    """
    n = len(keys)
    first, swapped, short = _pass_probs(keys, results, k)
    has_first, has_swap, has_short = (np.isfinite(a).all(axis=1) for a in (first, swapped, short))
    probs = (
        combine([first, swapped], None, ensemble_mode, mask=[has_first, has_swap])
        if n
        else np.full((n, k), np.nan)
    )
    path = np.full(n, "fallback", dtype=object)
    path[has_first | has_swap] = "model"
    path[has_first & has_swap] = "model+swap"
    use_short = ~(has_first | has_swap) & has_short
    probs[use_short] = short[use_short]
    path[use_short] = "model@short"
    fb = path == "fallback"
    if fb.any():
        probs[fb] = fallback_array(fallback_probs, keys, k, rows=np.flatnonzero(fb))
    return probs, path, first, swapped
