"""``arena calibrate``: fit a run's temperature on labelled rows it did not train on, and store it.

The probabilities are scored the way ``arena predict`` will score the test set (the engine, the
run's TTA), so the temperature fits what it will be applied to; or they come ready-made from a
predictions file (``arena cv``'s ``oof.parquet``, ``arena predict --save-probs``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.evaluation.calibration import Calibration, fit_calibration

__all__ = ["calibrate_run"]


def _member(probs_file: Path, run_name: str) -> pd.DataFrame:
    from arena_core.inference.weights import read_member_probs

    members = read_member_probs(probs_file)
    if run_name in members:
        return members[run_name]
    if len(members) == 1:
        return next(iter(members.values()))
    raise ValueError(f"{probs_file}: holds models {list(members)}; none is named {run_name!r}")


def calibrate_run(
    run_dir: str | Path,
    data_file: str | Path | None = None,
    probs_file: str | Path | None = None,
    *,
    tta: str | None = None,
    devices=None,
    progress: bool = False,
) -> Calibration:
    """Fit ``run_dir``'s temperature and write ``RUN_DIR/calibration.json``.

    ``probs_file`` given: its probabilities, with labels from ``data_file`` or, when that is
    None, from the file's own ``label`` column. Otherwise the run scores ``data_file`` first.
    """
    from arena_core.data.competition import load_competition_file
    from arena_core.evaluation.metrics import align
    from arena_core.models.runs import read_run_config

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if probs_file is not None:
        preds = _member(Path(probs_file), run_dir.name)
        if data_file is not None:
            frame = load_competition_file(data_file).frame
        elif "label" in preds.columns:
            frame = preds[["id", "label"]]
        else:
            raise ValueError(f"{probs_file}: has no label column; give the labelled data file too")
        where = str(probs_file)
    else:
        if data_file is None:
            raise ValueError("give a labelled data file to score, or a predictions file")
        from arena_core.inference.members import score_runs

        frame = load_competition_file(data_file).frame
        frame = frame[frame["label"].notna()].reset_index(drop=True)
        if frame.empty:
            raise ValueError(f"{data_file}: has no labelled rows to fit a temperature on")
        preds = score_runs(
            [run_dir], frame, cfg.predict, tta=tta, devices=devices, calibrate=False, progress=progress
        ).frame()
        where = f"{data_file} (tta={tta or cfg.predict.tta})"
    preds = preds[[c for c in ("id", "p_a", "p_b", "p_tie") if c in preds.columns]]
    labels, probs, _ = align(frame.assign(label=frame["label"].astype("Int64")), preds)
    if not np.isfinite(probs).all():
        raise ValueError(f"{where}: probabilities contain NaN/inf")
    cal = fit_calibration(labels, probs, fitted_on=where)
    cal.save(run_dir)
    return cal
