"""``arena cv``: k-fold training with out-of-fold (OOF) predictions for every training row.

What won the arena competitions starts here: the OOF probabilities are an honest score (each row
is predicted by the fold model that never trained on it), the ground a temperature and ensemble
weights are fitted on, and the soft labels a smaller student is distilled from.

Layout of ``OUT``::

    OUT/folds.parquet        id, fold: the assignment (stratified by label and language)
    OUT/fold{i}/             one run directory per fold (arena train with train.fold=i), plus
    OUT/fold{i}/oof.parquet  its held-out rows scored by the inference engine (TTA as configured)
    OUT/oof.parquet          id, p_a, p_b[, p_tie], fold, label: every training row exactly once
    OUT/calibration.json     temperature fitted on the OOF (also copied into every fold run)
    OUT/cv_report.md         the CV table beside the length baseline; OUT/cv.json the numbers
    OUT/merged_folds/        with --merge-folds: one run carrying the folds' averaged adapters (and
                             the OOF temperature; refit it on held-out rows with arena calibrate),
                             scored.parquet: its raw predictions on --eval (or the training rows)

Resumable fold by fold: a fold whose ``oof.parquet`` exists is skipped; a fold with trainer
checkpoints but no result resumes from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.config import RunConfig, save_config
from arena_core.data.atomic_write import write_parquet_atomically
from arena_core.data.folds import assign_folds
from arena_core.evaluation.calibration import Calibration, apply_temperature, fit_calibration
from arena_core.evaluation.length import length_baseline
from arena_core.evaluation.metrics import EvalResult, evaluate
from arena_core.evaluation.tables import format_table
from arena_core.training.frames import as_file_list, training_frame
from arena_core.training.outdir import write_text_atomic

__all__ = ["CVResult", "merge_fold_runs", "oof_frame", "run_cv"]

PROB_COLS = ("p_a", "p_b", "p_tie")
MERGED = "merged_folds"


@dataclass
class CVResult:
    out_dir: Path
    oof: pd.DataFrame
    cv: EvalResult
    baseline: EvalResult
    calibration: Calibration
    folds_trained: list[int]
    folds_skipped: list[int]
    merged: dict | None = None
    report: str = ""
    per_fold: pd.DataFrame = field(default_factory=pd.DataFrame)


def _fold_assignment(frame: pd.DataFrame, cfg: RunConfig, out: Path) -> np.ndarray:
    """The trainer's fold logic; refuses to resume into an OUT made from other rows or settings."""
    folds = assign_folds(frame, cfg.train.n_folds, cfg.train.seed, cfg.train.fold_groups)
    path = out / "folds.parquet"
    mine = pd.DataFrame({"id": frame["id"].astype(str), "fold": folds})
    if path.is_file():
        before = pd.read_parquet(path)
        if not (before["id"].astype(str).tolist() == mine["id"].tolist() and (before["fold"] == folds).all()):
            raise ValueError(
                f"{path}: written for other rows or fold settings (train.n_folds, train.seed, "
                "train.fold_groups, the --train files); use a new --out, or the same data and settings to resume"
            )
    else:
        write_parquet_atomically(mine, path, "fold assignment")
    return folds


def _finished_run(run_dir: Path, cfg: RunConfig) -> bool:
    """A complete run of exactly this fold's config (killed while scoring): no need to train again."""
    from arena_core.config import config_to_dict
    from arena_core.models.runs import read_manifest

    weights = "adapter" if cfg.model.kind == "transformer" else "booster"
    if not (run_dir / "manifest.json").is_file() or not (run_dir / weights).is_dir():
        return False
    manifest = read_manifest(run_dir)
    return manifest.get("status", "complete") == "complete" and manifest.get("config") == config_to_dict(cfg)


def _oof_part(result, fold: int, labels: pd.Series) -> pd.DataFrame:
    part = result.frame()
    part["fold"] = fold
    part["label"] = labels.to_numpy(dtype=np.int64)
    return part


def oof_frame(out_dir: str | Path) -> pd.DataFrame:
    """``OUT/oof.parquet`` of a finished cv."""
    path = Path(out_dir) / "oof.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run 'arena cv --out {out_dir}' to the end first")
    return pd.read_parquet(path)


def _probs(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in PROB_COLS if c in frame.columns]].to_numpy(dtype=np.float64)


def _side_by_side(cv: EvalResult, base: EvalResult, col: str) -> pd.DataFrame:
    left = cv.groups[col][[col, "n", "accuracy", "log_loss"]]
    right = base.groups[col][[col, "accuracy", "log_loss"]].rename(
        columns={"accuracy": "baseline_accuracy", "log_loss": "baseline_log_loss"}
    )
    return left.merge(right, on=col, how="left")


def _report(
    cv: EvalResult, base: EvalResult, cal: Calibration, calibrated: EvalResult, per_fold, k, merged
) -> str:
    rows = [
        {"predictions": "OOF (cv)", "n": cv.n, "accuracy": cv.accuracy, "log_loss": cv.log_loss},
        {
            "predictions": f"OOF, temperature {cal.temperature:.3f}",
            "n": calibrated.n,
            "accuracy": calibrated.accuracy,
            "log_loss": calibrated.log_loss,
        },
        {"predictions": "length baseline", "n": base.n, "accuracy": base.accuracy, "log_loss": base.log_loss},
    ]
    if merged and merged.get("metrics"):
        m = merged["metrics"]
        rows.append(
            {
                "predictions": f"merged folds on {merged['scored_on']}",
                "n": m["n"],
                "accuracy": m["accuracy"],
                "log_loss": m["log_loss"],
            }
        )
    parts = [f"## cross-validation, {k} folds\n", format_table(pd.DataFrame(rows), markdown=True)]
    for col in ("source", "language"):
        if col in cv.groups:
            parts += [
                f"\n### per {col} (OOF beside the length baseline)\n",
                format_table(_side_by_side(cv, base, col), markdown=True),
            ]
    parts += ["\n### per fold\n", format_table(per_fold, markdown=True)]
    notes = list(cv.notes)
    if merged and merged.get("note"):
        notes.append(merged["note"])
    if notes:
        parts.append("\n" + "\n".join(f"- {n}" for n in notes))
    return "\n".join(parts) + "\n"


def run_cv(
    cfg: RunConfig,
    train_files,
    out_dir: str | Path,
    *,
    tta: str | None = None,
    merge_folds: bool = False,
    eval_file: str | Path | None = None,
    devices=None,
    progress: bool = False,
) -> CVResult:
    """Train ``cfg.train.n_folds`` folds on ``train_files`` and write OOF predictions, the CV table
    and an OOF-fitted temperature under ``out_dir`` (see the module docstring for the layout)."""
    from arena_core.inference.members import score_runs
    from arena_core.training.trainer import train

    files = as_file_list(train_files)
    if merge_folds and cfg.model.kind != "transformer":
        raise ValueError(
            f"--merge-folds averages LoRA adapters; a {cfg.model.kind} run has none (predict with the fold "
            "runs as an ensemble, or train one run on every row with train.fold=-1)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = training_frame(files, cfg.model.num_labels, verbose=True)
    k = cfg.train.n_folds
    folds = _fold_assignment(frame, cfg, out)
    save_config(cfg, out / "config.yaml")
    tta = tta or cfg.predict.tta

    trained, skipped, parts = [], [], []
    for fold in range(k):
        fold_dir = out / f"fold{fold}"
        part_path = fold_dir / "oof.parquet"
        held = frame[folds == fold].reset_index(drop=True)
        if part_path.is_file() and (fold_dir / "manifest.json").is_file():
            print(f"[cv] fold {fold}: already done ({part_path}), skipped")
            skipped.append(fold)
            parts.append(pd.read_parquet(part_path))
            continue
        fold_cfg = copy.deepcopy(cfg)
        fold_cfg.train.fold = fold
        fold_cfg.train.select_best = False  # the held-out rows are OOF rows: they must not pick the model
        if _finished_run(fold_dir, fold_cfg):
            print(f"[cv] fold {fold}: trained already ({fold_dir}); scoring its held-out rows")
        else:
            print(
                f"[cv] fold {fold} of {k}: training on {int((folds != fold).sum())} rows, {len(held)} held out"
            )
            resume = any((fold_dir / "checkpoints").glob("checkpoint-*"))
            result = train(fold_cfg, files, fold_dir, resume=resume)
            if result.n_eval != len(held):  # the trainer split the same frame the same way, or a bug
                raise RuntimeError(
                    f"fold {fold}: the trainer held out {result.n_eval} rows, cv expected {len(held)}"
                )
            trained.append(fold)
        scored = score_runs(
            [fold_dir], held, fold_cfg.predict, tta=tta, devices=devices, calibrate=False, progress=progress
        )
        part = _oof_part(scored, fold, held["label"])
        write_parquet_atomically(part, part_path, "fold OOF predictions")
        parts.append(part)

    oof = pd.concat(parts, ignore_index=True)
    ids = oof["id"].astype(str)
    want = frame["id"].astype(str)
    if ids.duplicated().any() or set(ids) != set(want) or len(ids) != len(want):
        raise RuntimeError(
            f"OOF predictions cover {ids.nunique()} distinct of {len(want)} training rows "
            f"({int(ids.duplicated().sum())} repeated); delete {out}/fold*/oof.parquet and rerun"
        )
    oof = oof.set_index(ids).loc[want.tolist()].reset_index(drop=True)
    oof["id"] = frame["id"].to_numpy()
    write_parquet_atomically(oof, out / "oof.parquet", "OOF predictions")

    preds = oof[["id", *[c for c in PROB_COLS if c in oof.columns]]]
    cv = evaluate(frame, preds)
    with_tie = "p_tie" in oof.columns
    base = evaluate(frame, length_baseline(frame, with_tie=with_tie))
    cal = fit_calibration(oof["label"].to_numpy(), _probs(oof), fitted_on=f"the OOF predictions of {out}")
    calibrated_preds = preds.copy()
    calibrated_preds[[c for c in PROB_COLS if c in preds.columns]] = apply_temperature(
        _probs(preds), cal.temperature
    )
    calibrated = evaluate(frame, calibrated_preds)
    cal.save(out)
    for fold in range(k):
        cal.save(out / f"fold{fold}")
    per_fold = pd.DataFrame(
        [
            {
                "fold": f,
                **{
                    m: evaluate(frame[folds == f], preds[folds == f], by=()).overall[m].iloc[0]
                    for m in ("n", "accuracy", "log_loss")
                },
            }
            for f in range(k)
        ]
    )
    print(f"[cv] {cal.summary()}")

    merged = None
    if merge_folds:
        merged = merge_fold_runs(out, k, frame, eval_file, tta=tta, devices=devices, progress=progress)
        cal.save(out / MERGED)
    report = _report(cv, base, cal, calibrated, per_fold, k, merged)
    (out / "cv_report.md").write_text(report, encoding="utf-8")
    summary = {
        "folds": k,
        "rows": len(frame),
        "oof": cv.to_dict()["overall"],
        "oof_calibrated": calibrated.to_dict()["overall"],
        "length_baseline": base.to_dict()["overall"],
        "temperature": cal.temperature,
        "per_fold": per_fold.to_dict(orient="records"),
        "merged_folds": merged,
        "train_files": [str(f) for f in files],
    }
    (out / "cv.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    print(report)
    return CVResult(out, oof, cv, base, cal, trained, skipped, merged, report, per_fold)


def merge_fold_runs(
    out: Path, k: int, frame: pd.DataFrame, eval_file=None, *, tta=None, devices=None, progress=False
) -> dict:
    """Average the folds' adapters into ``OUT/merged_folds`` (see :mod:`arena_core.models.adapters`)
    and score it: on ``eval_file`` when given, else on the training rows (in-sample, said so)."""
    from arena_core.data.competition import load_competition_file
    from arena_core.inference.members import score_runs
    from arena_core.models.adapters import average_adapters
    from arena_core.models.runs import data_fingerprint, read_manifest, read_run_config, write_manifest

    runs = [out / f"fold{i}" for i in range(k)]
    dest = out / MERGED
    shutil.rmtree(dest, ignore_errors=True)
    adapter_cfg = average_adapters([r / "adapter" for r in runs], dest / "adapter")
    shutil.copytree(runs[0] / "tokenizer", dest / "tokenizer")
    first = read_manifest(runs[0])
    cfg = read_run_config(runs[0], first)
    cfg.train.fold = -1
    cfg.lora.r, cfg.lora.alpha = int(adapter_cfg["r"]), int(round(adapter_cfg["lora_alpha"]))
    save_config(cfg, dest / "config.yaml")
    base_path = first["base_model"]["path"]
    info: dict = {"run_dir": str(dest), "averaged": [str(r) for r in runs], "rank": int(adapter_cfg["r"])}
    write_manifest(
        dest,
        cfg,
        base_path=base_path,
        fingerprint=data_fingerprint(frame),
        metrics={},
        extra={"merged_folds": info},
    )
    if eval_file:
        data = load_competition_file(eval_file).frame
        data = data[data["label"].notna()].reset_index(drop=True)
        info["scored_on"] = str(eval_file)
    else:
        data = frame
        info["scored_on"] = "the training rows"
        info["note"] = (
            "merged folds scored on the training rows: each row was seen by k-1 of the k folds, so this "
            "score is optimistic; pass --eval FILE for an honest one"
        )
    if cfg.model.num_labels == 2:
        data = data[data["label"] != 2].reset_index(drop=True)
    scored = score_runs(
        [dest], data, cfg.predict, tta=tta, devices=devices, calibrate=False, progress=progress
    )
    preds = scored.frame()
    write_parquet_atomically(preds, dest / "scored.parquet", "merged-folds predictions")
    info["predictions"] = str(dest / "scored.parquet")
    result = evaluate(data, preds, by=())
    info["metrics"] = {"n": result.n, "accuracy": result.accuracy, "log_loss": result.log_loss}
    manifest = read_manifest(dest)
    manifest["metrics"] = info["metrics"]
    write_text_atomic(dest / "manifest.json", json.dumps(manifest, indent=2, default=str))
    print(
        f"[cv] merged {k} fold adapters into {dest} (rank {info['rank']}): {info['metrics']} on {info['scored_on']}"
    )
    return info
