"""Folds for held-out scores: stratified by label and language, each prompt's rows kept together.

``arena train`` holds out one fold, ``arena cv`` predicts every fold from the others, ``arena stack``
reuses them: a row that is scored must come from a fold whose model never saw it, nor its question.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FOLD_GROUPS", "assign_folds"]


#: How rows are kept together across folds: "prompt" (rows with the same prompt text share a fold)
#: or "none" (each row on its own).
FOLD_GROUPS = ("prompt", "none")


def assign_folds(
    frame: pd.DataFrame, n_splits: int = 5, seed: int = 42, groups: str = "prompt"
) -> np.ndarray:
    """K folds stratified by label and language, with every prompt's rows in one fold (``groups``).

    Rows sharing a prompt (MT-Bench: 1232 judged pairs over 160 questions; LMSYS: the same "hi" many
    times) would otherwise sit on both sides of a split, and the held-out score would reward
    remembering the question. Where no prompt repeats, or with ``groups="none"``, each stratum is
    dealt round-robin from a rotating start (so small languages don't all land in fold 0); prompt
    groups are dealt largest first to the fold with the fewest rows of their stratum.
    """
    if groups not in FOLD_GROUPS:
        raise ValueError(f"train.fold_groups must be one of {', '.join(FOLD_GROUPS)}, got {groups!r}")
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    if len(frame) < n_splits:
        raise ValueError(f"cannot split {len(frame)} rows into {n_splits} folds")
    rng = np.random.default_rng(seed)
    label = frame["label"].astype("Int64").fillna(-1).astype(int).astype(str)
    strata = label + "|" + frame["language"].astype(str)
    group_ids = np.arange(len(frame))
    if groups == "prompt":
        group_ids = pd.factorize(frame["prompt"].astype(str).str.strip())[0]
    if len(np.unique(group_ids)) == len(frame):
        return _deal_rows(strata, n_splits, rng)
    return _deal_groups(group_ids, strata, n_splits, rng)


def _deal_rows(strata: pd.Series, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    folds = np.empty(len(strata), dtype=np.int64)
    offset = 0
    for _, idx in sorted(strata.groupby(strata).indices.items()):
        idx = rng.permutation(idx)
        folds[idx] = (np.arange(len(idx)) + offset) % n_splits
        offset = (offset + len(idx)) % n_splits
    return folds


def _deal_groups(
    group_ids: np.ndarray, strata: pd.Series, n_splits: int, rng: np.random.Generator
) -> np.ndarray:
    """Whole groups to folds: a group's stratum is its first row's language, and its label when it
    is a single row; within a stratum the largest groups go first, each to the fold with the fewest
    rows of that stratum (then the fewest rows overall)."""
    n_groups = int(group_ids.max()) + 1
    if n_groups < n_splits:
        raise ValueError(
            f"cannot split {n_groups} distinct prompt(s) into {n_splits} folds; use fewer folds or "
            "train.fold_groups=none"
        )
    sizes = np.bincount(group_ids, minlength=n_groups)
    first = pd.Series(np.arange(len(group_ids))).groupby(group_ids).first().to_numpy()
    language = strata.str.split("|", n=1).str[1].to_numpy()
    key = np.where(sizes > 1, "group|" + language[first], strata.to_numpy()[first])
    group_fold = np.empty(n_groups, dtype=np.int64)
    total = np.zeros(n_splits, dtype=np.int64)
    for stratum in sorted(set(key.tolist())):
        members = rng.permutation(np.flatnonzero(key == stratum))
        members = members[np.argsort(-sizes[members], kind="stable")]
        here = np.zeros(n_splits, dtype=np.int64)
        for g in members:
            fold = int(np.lexsort((total, here))[0])  # fewest of this stratum, then fewest overall
            group_fold[g] = fold
            here[fold] += sizes[g]
            total[fold] += sizes[g]
    return group_fold[group_ids]
