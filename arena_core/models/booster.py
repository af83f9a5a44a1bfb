"""Gradient-boosted trees over pair features (LightGBM): trained on both A/B orders, saved as text.

Why LightGBM and why text: every Kaggle image has it, it trains on CPU in seconds, and its text
model format loads on any 4.x release, so a run trained here scores the same on the competition's
image; nothing is pickled. Why both orders: the trees see every row as shown and swapped (labels
swapped with it), and :func:`predict_both_orders` averages a row's prediction with its swapped
one mapped back, so exchanging A and B exchanges ``p_a`` and ``p_b`` exactly.

Files, in ``RUN_DIR/booster/``: ``model.txt`` (LightGBM's text format) and ``booster.json`` (the
feature names, which of them flip sign under a swap, the class count, the rounds kept, the
LightGBM version that wrote it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_core.config import BoosterConfig

__all__ = [
    "BOOSTER_DIR",
    "FittedBooster",
    "booster_params",
    "fit_booster",
    "load_booster",
    "predict_both_orders",
    "swap_labels",
]

BOOSTER_DIR = "booster"
MODEL_FILE = "model.txt"
META_FILE = "booster.json"


class BoosterError(ValueError):
    """A booster folder that is missing or does not match the features it is given; names the file."""


def booster_params(cfg: BoosterConfig, num_labels: int, seed: int, n_rows: int = 0) -> dict:
    """LightGBM parameters: deterministic for a seed, quiet, one objective per class count.

    Threads: ``booster.num_threads``, or when 0 one thread per 20,000 rows up to every core: on a
    few thousand rows a second thread saves nothing, and OpenMP threads that wait for each other on
    a busy machine (CI, a notebook beside a GPU job) turn seconds into minutes."""
    params = {
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": cfg.bagging_freq,
        "lambda_l2": cfg.lambda_l2,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    params["num_threads"] = cfg.num_threads or max(1, min(os.cpu_count() or 1, 1 + n_rows // 20_000))
    if num_labels == 2:
        params.update(objective="binary", metric="binary_logloss")
    else:
        params.update(objective="multiclass", num_class=num_labels, metric="multi_logloss")
    return params


def swap_labels(labels: np.ndarray) -> np.ndarray:
    """Winners of the swapped rows: A <-> B, a tie stays a tie."""
    out = np.asarray(labels).copy()
    out[labels == 0], out[labels == 1] = 1, 0
    return out


def _both(values: np.ndarray, anti: np.ndarray, labels: np.ndarray | None):
    from arena_core.encoding.features import swap_matrix

    x = np.vstack([values, swap_matrix(values, anti)])
    y = None if labels is None else np.concatenate([labels, swap_labels(labels)])
    return x, y


@dataclass
class FittedBooster:
    """A trained booster and what it needs to score: feature names, anti mask, classes."""

    booster: object  # lightgbm.Booster
    names: list[str]
    anti: np.ndarray
    num_labels: int
    rounds: int
    feature_set: str
    history: dict

    def save(self, run_dir: str | Path) -> Path:
        import lightgbm

        folder = Path(run_dir) / BOOSTER_DIR
        folder.mkdir(parents=True, exist_ok=True)
        text = self.booster.model_to_string(num_iteration=self.rounds)
        meta = {
            "feature_set": self.feature_set,
            "names": self.names,
            "anti": [bool(a) for a in self.anti],
            "num_labels": self.num_labels,
            "rounds": self.rounds,
            "lightgbm": lightgbm.__version__,
            "history": self.history,
        }
        from arena_core.data.atomic_write import write_atomically

        for name, body in ((MODEL_FILE, text), (META_FILE, json.dumps(meta, indent=2))):
            write_atomically(
                folder / name, lambda f, b=body: f.write(b), lambda _: None, what=f"booster {name}"
            )
        return folder

    def raw_probs(self, values: np.ndarray) -> np.ndarray:
        """Probabilities for rows as given (one order): ``(n, num_labels)``."""
        out = np.asarray(self.booster.predict(values, num_iteration=self.rounds), dtype=np.float64)
        if self.num_labels == 2:
            out = np.column_stack([1.0 - out, out])
        return out


def fit_booster(
    values: np.ndarray,
    labels: np.ndarray,
    anti: np.ndarray,
    names: list[str],
    cfg: BoosterConfig,
    *,
    num_labels: int,
    seed: int,
    feature_set: str,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    groups: np.ndarray | None = None,
    log=print,
) -> FittedBooster:
    """Train on both orders of ``values``; stop early on ``valid`` (both orders) when given, else on
    an inner tenth of the rows (whole ``groups`` at a time, so one prompt never sits on both sides)
    and refit on every row with the rounds found."""
    import lightgbm

    params = booster_params(cfg, num_labels, seed, 2 * len(labels))
    labels = np.asarray(labels, dtype=np.int64)
    if valid is None and cfg.early_stopping_rounds > 0 and len(labels) >= 50:
        keys = np.asarray(groups if groups is not None else np.arange(len(labels)))
        codes = np.unique(keys, return_inverse=True)[1]
        inner = (np.random.default_rng(seed).permutation(codes.max() + 1) % 10 == 0)[codes]
        if inner.any() and (~inner).any():
            probe = fit_booster(
                values[~inner], labels[~inner], anti, names, cfg,
                num_labels=num_labels, seed=seed, feature_set=feature_set,
                valid=(values[inner], labels[inner]), log=lambda *_: None,
            )  # fmt: skip
            log(f"booster: {probe.rounds} rounds chosen on an inner tenth of the training rows; refit on all")
            fixed = BoosterConfig(**{**cfg.__dict__, "max_rounds": probe.rounds, "early_stopping_rounds": 0})
            refit = fit_booster(
                values, labels, anti, names, fixed,
                num_labels=num_labels, seed=seed, feature_set=feature_set, log=lambda *_: None,
            )  # fmt: skip
            refit.history = {**probe.history, "refit_rounds": probe.rounds}
            return refit
    x, y = _both(values, anti, labels)
    train_set = lightgbm.Dataset(x, label=y, feature_name=list(names), free_raw_data=True)
    callbacks, sets, set_names, evals = [], [], [], {}
    if valid is not None:
        xv, yv = _both(valid[0], anti, np.asarray(valid[1], dtype=np.int64))
        sets, set_names = [lightgbm.Dataset(xv, label=yv, reference=train_set)], ["eval"]
        callbacks.append(lightgbm.record_evaluation(evals))
        if cfg.early_stopping_rounds > 0:
            callbacks.append(lightgbm.early_stopping(cfg.early_stopping_rounds, verbose=False))
    try:
        booster = lightgbm.train(
            params,
            train_set,
            num_boost_round=max(1, int(cfg.max_rounds)),
            valid_sets=sets,
            valid_names=set_names,
            callbacks=callbacks,
        )
    except lightgbm.basic.LightGBMError as exc:  # a bad booster.* value, mostly: one line, not a traceback
        raise BoosterError(
            f"LightGBM refused to train ({exc}); check the booster section of the config"
        ) from None
    rounds = int(booster.best_iteration or booster.current_iteration())
    history = {}
    if evals:
        curve = next(iter(evals["eval"].values()))
        history = {"eval_logloss_both_orders": float(curve[rounds - 1]), "rounds_tried": len(curve)}
    log(
        f"booster: {rounds} rounds"
        + (f", eval log loss {history['eval_logloss_both_orders']:.4f}" if history else "")
    )
    return FittedBooster(
        booster, list(names), np.asarray(anti, dtype=bool), num_labels, rounds, feature_set, history
    )


def predict_both_orders(
    fitted: FittedBooster, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(probs, first, swapped)``: the mean of the shown order and the swapped order mapped back."""
    from arena_core.encoding.features import swap_matrix

    first = fitted.raw_probs(values)
    swapped = fitted.raw_probs(swap_matrix(values, fitted.anti))[:, [1, 0, 2][: fitted.num_labels]]
    return 0.5 * (first + swapped), first, swapped


def load_booster(run_dir: str | Path) -> FittedBooster:
    """The booster of a feature or stack run; a clear error naming the file when it is missing or torn."""
    import lightgbm

    folder = Path(run_dir) / BOOSTER_DIR
    model_file, meta_file = folder / MODEL_FILE, folder / META_FILE
    for f in (model_file, meta_file):
        if not f.is_file():
            raise BoosterError(f"{f}: missing; is {run_dir} a complete feature run written by 'arena train'?")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        names, anti, k, rounds = meta["names"], meta["anti"], int(meta["num_labels"]), int(meta["rounds"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BoosterError(f"{meta_file}: unreadable ({exc}); the run is damaged") from None
    try:
        booster = lightgbm.Booster(model_str=model_file.read_text(encoding="utf-8"))
    except lightgbm.basic.LightGBMError as exc:
        raise BoosterError(f"{model_file}: LightGBM cannot read it ({exc}); the run is damaged") from None
    if booster.num_feature() != len(names):
        raise BoosterError(f"{model_file}: {booster.num_feature()} features, {meta_file} names {len(names)}")
    return FittedBooster(
        booster,
        list(names),
        np.asarray(anti, dtype=bool),
        k,
        rounds,
        meta.get("feature_set", "?"),
        meta.get("history", {}),
    )
