"""Several trained runs over one test set, one after another, combined per row id.

Why one at a time: two large models never share GPU memory, so each member is loaded only when
its turn comes and freed before the next. The time left is shared among the members still to run;
the combination maths lives in :mod:`~arena_core.inference.combine`.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arena_core.config import EncodingConfig, PredictConfig, RunConfig
from arena_core.evaluation.calibration import Calibration, apply_temperature
from arena_core.inference.combine import combine, normalise_weights
from arena_core.inference.encoding_cache import encode_cached, make_reencoder
from arena_core.inference.engine import PredictionResult, predict_probs
from arena_core.inference.fallback import fallback_array, fallback_classes
from arena_core.inference.scoring import Scorer

__all__ = ["EnsembleResult", "Member", "RunInfo", "check_runs", "predict_ensemble", "save_probs"]


@dataclass
class RunInfo:
    """What a run directory says about itself before any weights are loaded."""

    run_dir: Path
    manifest_path: Path
    manifest: dict
    config: RunConfig

    @property
    def num_labels(self) -> int:
        return int(self.config.model.num_labels)


def check_runs(
    run_dirs: Sequence[str | os.PathLike],
    weights: Sequence[float] | None = None,
    bases: Sequence[str | os.PathLike] = (),
) -> list[RunInfo]:
    """Every check on an ensemble that needs no model: seconds here instead of a failure after hours.

    Weights (one per run, finite, non-negative, not all zero), each run's manifest and config, its
    weights folder (adapter/ or merged/), an adapter run's base (found, and the one it was trained
    on), and one class count (2 or 3) across the runs. Each failure is one line naming the file or
    option; a later member's missing base no longer shows only after the earlier members scored.
    """
    from arena_core.models.booster import BOOSTER_DIR
    from arena_core.models.runs import (
        MANIFEST,
        RunError,
        base_mismatch,
        locate_base,
        read_manifest,
        read_run_config,
    )

    if not run_dirs:
        raise ValueError("need at least one model run")
    if weights is not None:
        w = [float(x) for x in weights]
        if len(w) != len(run_dirs):
            raise ValueError(f"--weights has {len(w)} value(s) for {len(run_dirs)} --model run(s)")
        if not all(np.isfinite(w)) or min(w) < 0:
            raise ValueError(f"--weights must be finite and non-negative, got {w}")
        if sum(w) <= 0:
            raise ValueError(f"--weights are all zero ({w}): no run would count")
    infos = []
    for run_dir in map(Path, run_dirs):
        manifest = read_manifest(run_dir)
        config = read_run_config(run_dir, manifest)
        if config.model.kind != "transformer":
            if not (run_dir / BOOSTER_DIR).is_dir():
                raise RunError(
                    f"{run_dir}: a {config.model.kind} run without {BOOSTER_DIR}/; is it complete?"
                )
        elif not (run_dir / "merged").is_dir() and not (run_dir / "adapter").is_dir():
            raise RunError(f"{run_dir}: neither adapter/ nor merged/ found; is it a complete run directory?")
        elif not (run_dir / "merged").is_dir():
            # the base loading will use (``bases``: mounted bases matched by config hash, --base-dir)
            problem = base_mismatch(manifest, locate_base(run_dir, list(bases)), f"run {run_dir}")
            if problem:
                raise RunError(problem)
        infos.append(RunInfo(run_dir, run_dir / MANIFEST, manifest, config))
    if len({i.num_labels for i in infos}) > 1:
        shown = ", ".join(f"{i.manifest_path}: model.num_labels={i.num_labels}" for i in infos)
        raise ValueError(f"cannot ensemble 2-class and 3-class models: {shown}")
    return infos


@dataclass
class Member:
    """One run of an ensemble. ``load()`` returns ``(scorers, tokenizer, encoding_config)``; it is
    called only when the member's turn comes, so two large models never share GPU memory.

    A member that scores without the engine (a feature run) gives ``score(frame, cache)`` instead,
    returning its :class:`PredictionResult` directly; ``load`` is then never called."""

    name: str
    load: Callable[[], tuple[list[Scorer], Any, EncodingConfig]] | None
    weight: float = 1.0
    # Applied to the member's model-scored rows before combining (see evaluation.calibration).
    calibration: Calibration | None = None
    score: Callable[[pd.DataFrame, dict], PredictionResult] | None = None


@dataclass
class EnsembleResult:
    """The combined probabilities per row id, and each member's own result (for the report and
    :func:`save_probs`)."""

    ids: np.ndarray
    probs: np.ndarray
    members: dict[str, PredictionResult]
    coverage: dict[str, int]
    log: list[str]

    def frame(self) -> pd.DataFrame:
        cols = {
            "id": pd.Series(self.ids, dtype=self.ids.dtype),
            "p_a": self.probs[:, 0],
            "p_b": self.probs[:, 1],
        }
        if self.probs.shape[1] == 3:
            cols["p_tie"] = self.probs[:, 2]
        return pd.DataFrame(cols)

    def long_frame(self) -> pd.DataFrame:
        """Per-model probabilities (and the ensemble's) stacked: id, model, p_a, p_b[, p_tie], per-order
        columns (``p_a_ab``... ``p_b_ba``; members only), path."""
        parts = []
        for name, res in self.members.items():
            part = res.analysis_frame()
            part.insert(1, "model", name)
            part["path"] = res.path.astype(str)
            parts.append(part)
        if len(self.members) != 1:
            part = self.frame()
            part.insert(1, "model", "ensemble")
            part["path"] = "ensemble"
            parts.append(part)
        return pd.concat(parts, ignore_index=True)


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def predict_ensemble(
    members: Sequence[Member],
    frame: pd.DataFrame,
    cfg: PredictConfig | None = None,
    *,
    tta: str | None = None,
    deadline: float | None = None,
    fallback_probs=None,
    progress: bool = True,
    encode_cache: dict | None = None,
) -> EnsembleResult:
    """Run each member in turn over ``frame`` and combine per id (``cfg.ensemble_mode``, member weights).

    The time left is shared equally among the members still to run, after reserving the load
    time measured on the first member for each later one. A row is combined over the members that
    scored it (weights renormalised); a row none scored gets the fallback.
    """
    cfg = cfg or PredictConfig()
    if not members:
        raise ValueError("need at least one model")
    if len({m.name for m in members}) != len(members):
        raise ValueError(f"member names must be unique, got {[m.name for m in members]}")
    cache = {} if encode_cache is None else encode_cache
    keys = frame["id"].tolist()
    results: dict[str, PredictionResult] = {}
    log: list[str] = []
    load_s: float | None = None
    for i, member in enumerate(members):
        later = len(members) - i - 1
        if deadline is not None and time.monotonic() + (load_s or 0.0) >= deadline:
            log.append(f"[{member.name}] skipped: no time left to load it")
            continue
        if member.score is not None:  # a feature run: seconds on the CPU, no engine
            res = member.score(frame, cache)
        else:
            t = time.monotonic()
            scorers, tokenizer, encoding = member.load()
            load_s = load_s if load_s is not None else time.monotonic() - t
            encoded = encode_cached(frame, tokenizer, encoding, cache)
            log.append(f"[{member.name}] {encoded.summary()}")
            member_deadline = None
            if deadline is not None:
                share = (deadline - time.monotonic() - load_s * later) / (later + 1)
                member_deadline = time.monotonic() + max(share, 0.0)
            res = predict_probs(
                scorers,
                encoded,
                cfg,
                tta=tta,
                deadline=member_deadline,
                fallback_probs=fallback_probs,
                progress=progress,
                reencode=make_reencoder(frame, tokenizer, encoding),
            )
            del scorers
        if res.ids.tolist() != keys:
            raise RuntimeError(f"[{member.name}] result ids differ from the frame's ids")
        log += [f"[{member.name}] {line}" for line in res.log]
        if member.calibration is not None:
            scored = res.path != "fallback"
            res.probs[scored] = apply_temperature(res.probs[scored], member.calibration.temperature)
            log.append(f"[{member.name}] applied {member.calibration.summary()}")
        results[member.name] = res
        _free_memory()
    names = list(results)
    if names:
        ks = {results[m].n_classes for m in names}
        if len(ks) != 1:
            raise ValueError(
                f"cannot ensemble 2-class and 3-class models: {{{', '.join(f'{m}: {results[m].n_classes}' for m in names)}}}"
            )
        k = ks.pop()
        weights = normalise_weights(
            [next(m.weight for m in members if m.name == nm) for nm in names], len(names)
        )
        mask = [results[m].path != "fallback" for m in names]
        probs = combine([results[m].probs for m in names], weights, cfg.ensemble_mode, mask=mask)
        n_models = np.sum(mask, axis=0)
    else:
        k = fallback_classes(fallback_probs)
        probs = np.full((len(keys), k), np.nan)
        n_models = np.zeros(len(keys), dtype=int)
    fb = n_models == 0
    if fb.any():
        probs[fb] = fallback_array(fallback_probs, keys, k, rows=np.flatnonzero(fb))
    if len(names) == 1:
        coverage = dict(results[names[0]].coverage)
    else:
        coverage = {"all models": int((n_models == len(members)).sum())}
        coverage["some models"] = int(((n_models > 0) & (n_models < len(members))).sum())
        coverage["fallback"] = int(fb.sum())
    log.append("ensemble coverage: " + ", ".join(f"{k_} {v}" for k_, v in coverage.items()))
    return EnsembleResult(frame["id"].to_numpy(), probs, results, coverage, log)


def save_probs(
    result: EnsembleResult | PredictionResult, path: str | os.PathLike, name: str = "model"
) -> Path:
    """Per-model probabilities as parquet: id, model, p_a, p_b[, p_tie], per-order columns, path."""
    if isinstance(result, PredictionResult):
        df = result.analysis_frame()
        df.insert(1, "model", name)
        df["path"] = result.path.astype(str)
    else:
        df = result.long_frame()
    from arena_core.data.atomic_write import write_parquet_atomically

    return write_parquet_atomically(df, path, "per-model probabilities")
