"""The rows a training run (or a cross-validation) trains on, built one way for both.

``arena train`` and ``arena cv`` must see the same frame in the same order, or a fold
assignment computed by one would not match the other's: both come through
:func:`training_frame`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.config import RunConfig
from arena_core.data.competition import LABEL_NAMES
from arena_core.data.folds import assign_folds
from arena_core.data.sources import load_sources

__all__ = ["as_file_list", "split_rows", "training_frame"]


def as_file_list(train_files) -> list[Path]:
    """One path or several, as a list (``arena train --train A --train B``)."""
    if isinstance(train_files, (str, Path)):
        return [Path(train_files)]
    return [Path(p) for p in train_files]


def _describe(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else " + ".join(str(f) for f in files)


def training_frame(train_files, num_labels: int, verbose: bool = False, soft_labels=None) -> pd.DataFrame:
    """Every row of ``train_files`` (de-duplicated across files), ties dropped for 2 classes.

    Without ``soft_labels`` every row needs a winner. With them (a file, see
    :func:`~arena_core.training.distill.read_soft_labels`) the frame gains ``soft_a, soft_b[,
    soft_tie]`` and rows without a winner are kept when they have a soft label.

    ``frame.attrs["winner_counts"]`` holds the winners counted before ties were dropped.
    """
    files = as_file_list(train_files)
    frame = load_sources(files, verbose=verbose).frame
    where = _describe(files)
    if soft_labels is not None:
        from arena_core.training.distill import attach_soft_labels, read_soft_labels

        soft = read_soft_labels(soft_labels)
        frame = attach_soft_labels(frame, soft, num_labels, str(soft_labels), verbose)
    elif frame["label"].isna().any():
        missing = frame.loc[frame["label"].isna(), "id"]
        raise ValueError(
            f"{where}: {len(missing)} row(s) without a winner (e.g. id {missing.iloc[0]!r}); "
            "training needs a labelled file"
        )
    # before ties are dropped: inference takes its tie probability from these counts when a
    # submission needs a tie column a 2-class model does not predict (the manifest keeps them)
    counts = {name: int((frame["label"] == i).sum()) for i, name in enumerate(LABEL_NAMES)}
    if num_labels == 2:
        ties = int((frame["label"] == 2).sum())
        if ties:
            if verbose:
                print(
                    f"{where}: dropping {ties} tie rows "
                    "(model.num_labels=2; set model.num_labels=3 to model ties)"
                )
            frame = frame[frame["label"].fillna(-1) != 2].reset_index(drop=True)
    frame.attrs["winner_counts"] = counts
    return frame


def split_rows(frame: pd.DataFrame, cfg: RunConfig, eval_frame: pd.DataFrame | None):
    """(train, eval): ``eval_frame`` when given, else the held-out fold of the labelled rows (the
    split ``arena cv`` uses); rows without a winner (soft labels only) always train."""
    if eval_frame is not None:
        return frame, eval_frame
    if cfg.train.fold < 0:
        return frame, frame.iloc[:0]
    labelled = frame["label"].notna().to_numpy()
    folds = np.full(len(frame), -1)
    folds[labelled] = assign_folds(frame[labelled], cfg.train.n_folds, cfg.train.seed, cfg.train.fold_groups)
    held = folds == cfg.train.fold
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)
