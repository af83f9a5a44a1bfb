"""``arena train`` for the feature run kind (``model.kind: features``): LightGBM over pair features.

The same contract as a LoRA run, so every later command takes either: the rows come through
:func:`~arena_core.training.frames.training_frame` and :func:`~arena_core.training.frames.split_rows`
(the folds ``arena cv`` uses), the run directory holds ``manifest.json`` (config, data fingerprint,
versions, metrics, training winner counts) and ``config.yaml``, and the model sits in ``booster/``
(see :mod:`~arena_core.models.booster`). No base model, no GPU: seconds on a CPU.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.config import ConfigError, RunConfig
from arena_core.encoding.features import FEATURE_SET, describe, pair_features
from arena_core.training.frames import as_file_list, split_rows, training_frame
from arena_core.training.outdir import (
    OutputLock,
    TrainError,
    TrainResult,
    check_output_dir,
    write_text_atomic,
)

__all__ = ["prompt_groups", "sanity_warnings", "train_feature_run"]


def prompt_groups(frame: pd.DataFrame) -> np.ndarray:
    """One integer per distinct prompt: rows of one prompt stay on one side of an inner split."""
    return pd.factorize(frame["prompt"].astype(str))[0]


def sanity_warnings(metrics: dict, num_labels: int, where: str) -> list[str]:
    """Plain warnings for a run that ends worse than guessing, or decides by position."""
    out = []
    uniform = math.log(num_labels)
    ll = metrics.get("log_loss")
    if ll is not None and np.isfinite(ll) and ll > uniform:
        out.append(
            f"{where}: eval log loss {ll:.4f} is above uniform guessing ({uniform:.4f}): the run learned "
            "nothing usable; do not submit it"
        )
    flip = metrics.get("eval_flip_rate")
    if flip is not None and np.isfinite(flip) and flip > 0.5:
        out.append(f"{where}: A/B flip rate {flip:.3f} > 0.5: the run decides mostly by position")
    return out


def _eval_metrics(fitted, values: np.ndarray, labels: np.ndarray) -> dict:
    from arena_core.evaluation.metrics import accuracy, log_loss, position_bias
    from arena_core.models.booster import predict_both_orders

    probs, first, swapped = predict_both_orders(fitted, values)
    return {
        "accuracy": accuracy(labels, probs),
        "log_loss": log_loss(labels, probs),
        "eval_flip_rate": position_bias(first, swapped)["flip_rate"],
    }


def train_feature_run(
    cfg: RunConfig,
    train_file,
    out_dir: str | Path,
    *,
    eval_file: str | Path | None = None,
    soft_labels=None,
    merge: bool = False,
) -> TrainResult:
    """Train ``cfg.booster`` on the pair features of ``train_file`` and write a run directory."""
    from arena_core.models.booster import fit_booster
    from arena_core.models.runs import data_fingerprint, write_manifest

    if soft_labels is not None:
        raise ConfigError(
            "--soft-labels: a feature run (model.kind=features) trains on winners only; distil into a LoRA run"
        )
    if merge:
        raise ConfigError("--merge: a feature run has no adapter to merge (model.kind=features)")
    started = time.monotonic()
    out = Path(out_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # launched with torchrun (the training notebook on 2 GPUs)
        print("a feature run trains in one CPU process: rank 0 trains, this rank has nothing to do")
        return TrainResult(out, {}, 0, 0)
    check_output_dir(out)
    files = as_file_list(train_file)
    frame = training_frame(files, cfg.model.num_labels, verbose=True)
    given_eval = training_frame(eval_file, cfg.model.num_labels, True) if eval_file else None
    train_frame, eval_frame = split_rows(frame, cfg, given_eval)
    shown = " + ".join(map(str, files))
    if len(train_frame) == 0:
        raise ValueError(f"{shown}: no training rows left after the split")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainError(f"{out}: cannot be created ({exc.strerror or exc})", exit_code=1) from exc
    with OutputLock(out):
        print(f"features ({FEATURE_SET}) of {len(train_frame)} training and {len(eval_frame)} eval rows")
        feats = pair_features(train_frame, progress=len(train_frame) > 5000)
        labels = train_frame["label"].to_numpy(dtype=np.int64)
        eval_feats = pair_features(eval_frame) if len(eval_frame) else None
        eval_labels = eval_frame["label"].to_numpy(dtype=np.int64) if len(eval_frame) else None
        # The eval fold picks the rounds only when asked to (train.select_best); arena cv turns that
        # off, and the rounds then come from an inner split of the training rows.
        valid = (eval_feats.values, eval_labels) if eval_feats is not None and cfg.train.select_best else None
        fitted = fit_booster(
            feats.values,
            labels,
            feats.anti,
            feats.names,
            cfg.booster,
            num_labels=cfg.model.num_labels,
            seed=cfg.train.seed,
            feature_set=FEATURE_SET,
            valid=valid,
            groups=prompt_groups(train_frame),
        )
        metrics: dict = {
            "train_rows": len(train_frame),
            "eval_rows": len(eval_frame),
            "rounds": fitted.rounds,
        }
        if eval_feats is not None:
            metrics.update(_eval_metrics(fitted, eval_feats.values, eval_labels))
        metrics["train_seconds"] = round(time.monotonic() - started, 2)
        warnings = sanity_warnings(metrics, cfg.model.num_labels, f"run {out}")
        fitted.save(out)
        import yaml

        from arena_core.config import config_to_dict

        write_text_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        write_manifest(
            out,
            cfg,
            base_path=None,
            fingerprint=data_fingerprint(frame),
            metrics=metrics,
            extra={
                "status": "complete",
                "kind": "features",
                "features": describe(),
                "train_file": shown,
                "eval_file": str(eval_file) if eval_file else None,
                "eval_fingerprint": data_fingerprint(given_eval) if given_eval is not None else None,
                "train_labels": frame.attrs.get("winner_counts", {}),
                "warnings": warnings,
            },
        )
    shown_metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    print(f"run written to {out}: {shown_metrics}")
    for line in warnings:
        print(f"WARNING: {line}")
    return TrainResult(out, metrics, len(train_frame), len(eval_frame), warnings)
