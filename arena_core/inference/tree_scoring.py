"""Feature runs as ensemble members: pair features and a booster, on the CPU, in seconds.

They enter ``arena predict``, ``arena cv``'s out-of-fold scoring and ``arena calibrate`` through the
same :class:`~arena_core.inference.ensemble.Member` as a LoRA run, with a ``score`` function in
place of the engine. Both A/B orders are always averaged (it costs nothing), so the result reads
like a ``model+swap`` row of the engine and the same position-bias lines apply. The features of a
test frame are computed once and shared by every feature member and the stacker (``cache``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.encoding.features import FEATURE_SET, PairFeatures, pair_features
from arena_core.inference.result import PATHS, PredictionResult

__all__ = ["cached_features", "check_feature_set", "score_feature_run"]


def cached_features(frame: pd.DataFrame, cache: dict | None, progress: bool = False) -> PairFeatures:
    """The frame's pair features, computed once per ``cache`` (keyed by the feature set)."""
    key = ("pair_features", FEATURE_SET)
    if cache is not None and key in cache:
        return cache[key]
    feats = pair_features(frame, progress=progress and len(frame) > 5000)
    if cache is not None:
        cache[key] = feats
    return feats


def check_feature_set(fitted, names: list[str], run_dir: Path) -> None:
    """A booster trained on other columns (another feature set, other stack inputs) would read the
    wrong ones: refuse, naming the run."""
    from arena_core.models.booster import BoosterError

    if fitted.feature_set != FEATURE_SET or fitted.names != names:
        raise BoosterError(
            f"{run_dir}: trained on feature set {fitted.feature_set!r} ({len(fitted.names)} columns), this "
            f"arena_core computes {FEATURE_SET!r} ({len(names)} columns); retrain the run with it"
        )


def score_feature_run(
    run_dir: str | Path, frame: pd.DataFrame, cache: dict | None = None, progress: bool = False
) -> PredictionResult:
    """Every row of ``frame`` scored by a feature run, both orders averaged."""
    from arena_core.models.booster import load_booster, predict_both_orders

    start = time.monotonic()
    run_dir = Path(run_dir)
    fitted = load_booster(run_dir)
    feats = cached_features(frame, cache, progress)
    check_feature_set(fitted, feats.names, run_dir)
    probs, first, swapped = predict_both_orders(fitted, feats.values)
    n = len(frame)
    path = np.full(n, PATHS[0], dtype=object)
    coverage = {p: (n if p == PATHS[0] else 0) for p in PATHS}
    elapsed = time.monotonic() - start
    stats = {"rows": n, "elapsed_s": elapsed, "rows_scored": 2 * n, "rows_per_s": 2 * n / max(elapsed, 1e-9)}
    stats["tta"] = "swap"
    log = [f"feature run: {n} rows, both orders, {fitted.rounds} rounds, {elapsed:.1f}s"]
    return PredictionResult(frame["id"].to_numpy(), probs, path, coverage, first, swapped, stats, log)
