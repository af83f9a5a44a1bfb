"""Several training files as one frame, de-duplicated; and leakage of training rows into a test file.

Competition winners trained on several sources at once (WSDM train + LMSYS 55k + extra arena
pairs). The same conversation often appears in more than one of them, sometimes with A and B
exchanged; counting it twice over-weights it, and a training row that is also a test row makes
a validation score lie. Both checks use one key: the prompt plus the two responses as an
unordered pair.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.data.competition import load_competition_file
from arena_core.data.errors import DataError, show_ids

__all__ = ["CombinedSources", "Leakage", "find_leakage", "load_sources", "pair_keys"]

_SEP = "\x1f"


def _digest(*parts: str) -> str:
    return hashlib.sha1(_SEP.join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def pair_keys(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(ordered, unordered)`` content keys per row.

    ``ordered`` hashes prompt, A, B in that order; ``unordered`` hashes the prompt with the two
    responses sorted, so a row and its A/B swap share it.
    """
    ordered, unordered = [], []
    for p, a, b in zip(frame["prompt"], frame["response_a"], frame["response_b"]):
        ordered.append(_digest(p, a, b))
        lo, hi = (a, b) if a <= b else (b, a)
        unordered.append(_digest(p, lo, hi))
    return np.asarray(ordered, dtype=object), np.asarray(unordered, dtype=object)


@dataclass
class CombinedSources:
    """The combined canonical frame (with ``source`` and ``source_file``) and what was done to it."""

    frame: pd.DataFrame
    rows_read: dict[str, int]
    duplicates: Counter = field(default_factory=Counter)  # (dropped from, first seen in) -> rows
    conflicting: int = 0  # duplicates whose winner disagrees with the kept row's
    ids: str = "kept"  # "kept" | "as text" | "prefixed"

    @property
    def dropped(self) -> int:
        return int(sum(self.duplicates.values()))

    def summary(self) -> str:
        parts = [f"{len(self.frame)} rows from {len(self.rows_read)} source(s) ("]
        parts[0] += ", ".join(f"{k} {v}" for k, v in self.rows_read.items()) + ")"
        if self.dropped:
            detail = ", ".join(f"{a} vs {b}: {n}" for (a, b), n in sorted(self.duplicates.items()))
            parts.append(f"dropped {self.dropped} duplicate(s) across sources ({detail})")
            if self.conflicting:
                parts.append(f"{self.conflicting} of them had a different winner (the first source's kept)")
        else:
            parts.append("no duplicates across sources")
        if self.ids != "kept":
            parts.append(
                "ids made unique: " + ("written as text" if self.ids == "as text" else "'<source>:<id>'")
            )
        return "; ".join(parts)


def _source_names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        name = p.stem
        if name in names:
            name = f"{p.parent.name}/{p.stem}"
        while name in names:
            name += "'"
        names.append(name)
    return names


def _unique_ids(frames: list[pd.DataFrame], names: list[str]) -> str:
    """Make ids unique across ``frames`` in place; returns how (see :class:`CombinedSources`)."""
    ids = pd.concat([f["id"].astype(object) for f in frames], ignore_index=True)
    kinds = {type(v.item() if hasattr(v, "item") else v) for v in ids}
    if len(kinds) <= 1 and not ids.duplicated().any():
        return "kept"
    as_text = ids.astype(str)
    if not as_text.duplicated().any():
        for f in frames:
            f["id"] = f["id"].astype(str).astype(object)
        return "as text"
    for f, name in zip(frames, names):
        f["id"] = (name + ":" + f["id"].astype(str)).astype(object)
    return "prefixed"


def load_sources(paths, *, verbose: bool = False) -> CombinedSources:
    """Read one or more competition files (WSDM parquet, LMSYS csv, canonical parquet) into one frame.

    Every row keeps where it came from: ``source_file`` is the file's name and ``source`` the file's
    own ``source`` column where it has one, else the file's name. A row whose prompt and responses
    (either order) already appeared in an EARLIER file is dropped and counted; duplicates within one
    file are the file's business and kept. Ids stay as they are when unique across files; otherwise
    they become text, or ``<file name>:<id>`` when even the text collides. Ties stay labelled 2; the
    trainer drops or keeps them per ``model.num_labels``.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise DataError("no training file given")
    names = _source_names(paths)
    frames, rows_read = [], {}
    for path, name in zip(paths, names):
        frame = load_competition_file(path, verbose=verbose).frame
        frame["source"] = frame["source"].astype(str) if "source" in frame.columns else name
        frame["source_file"] = name
        frames.append(frame)
        rows_read[name] = len(frame)
    if len(frames) == 1:
        return CombinedSources(frames[0], rows_read)
    how = _unique_ids(frames, names)

    seen: dict[str, tuple[str, object, str]] = {}  # unordered key -> (source, label, ordered key)
    duplicates: Counter = Counter()
    conflicting = 0
    kept = []
    for frame, name in zip(frames, names):
        ordered, unordered = pair_keys(frame)
        labels = frame["label"].tolist()
        keep = np.ones(len(frame), dtype=bool)
        for i, (ok, uk) in enumerate(zip(ordered, unordered)):
            hit = seen.get(uk)
            if hit is not None and hit[0] != name:
                keep[i] = False
                duplicates[(name, hit[0])] += 1
                conflicting += _disagree(hit[1], hit[2], labels[i], ok)
            elif hit is None:
                seen[uk] = (name, labels[i], ok)
        kept.append(frame[keep])
    combined = pd.concat(kept, ignore_index=True)
    result = CombinedSources(combined, rows_read, duplicates, conflicting, how)
    if verbose:
        print(result.summary())
    return result


def _disagree(kept_label, kept_key: str, label, key: str) -> int:
    """1 when a dropped duplicate's winner differs from the kept row's (read in the kept row's A/B order)."""
    if pd.isna(kept_label) or pd.isna(label):
        return 0
    label = int(label)
    if key != kept_key:  # the duplicate shows B first: its "A wins" is the kept row's "B wins"
        label = {0: 1, 1: 0}.get(label, label)
    return int(int(kept_label) != label)


@dataclass
class Leakage:
    """Training rows that are also test rows: the same prompt and responses, as given or A/B swapped."""

    exact: pd.DataFrame  # columns train_id, test_id
    swapped: pd.DataFrame
    n_train: int
    n_test: int

    @property
    def total(self) -> int:
        """(training row, test row) pairs found."""
        return len(self.exact) + len(self.swapped)

    @property
    def rows(self) -> int:
        """Training rows that duplicate at least one test row."""
        return int(pd.concat([self.exact["train_id"], self.swapped["train_id"]]).nunique())

    def summary(self) -> str:
        if not self.total:
            return (
                f"no leakage: none of {self.n_train} training rows duplicates one of {self.n_test} test rows"
            )
        parts = []
        for kind, table in (("exactly", self.exact), ("with A/B swapped", self.swapped)):
            if len(table):
                parts.append(
                    f"{table['train_id'].nunique()} {kind} (train ids {show_ids(table['train_id'].unique())}; "
                    f"test ids {show_ids(table['test_id'].unique())})"
                )
        return f"LEAKAGE: {self.rows} of {self.n_train} training rows duplicate a test row: " + "; ".join(
            parts
        )


def find_leakage(train: pd.DataFrame, test: pd.DataFrame) -> Leakage:
    """Every (training row, test row) pair with the same prompt and responses, exactly or A/B swapped."""
    test_pos: dict[str, list[int]] = {}
    for j, (p, a, b) in enumerate(zip(test["prompt"], test["response_a"], test["response_b"])):
        test_pos.setdefault(_digest(p, a, b), []).append(j)
    exact, swapped = [], []
    test_ids = test["id"].tolist()
    for tid, p, a, b in zip(train["id"].tolist(), train["prompt"], train["response_a"], train["response_b"]):
        k, ks = _digest(p, a, b), _digest(p, b, a)
        exact += [(tid, test_ids[j]) for j in test_pos.get(k, ())]
        if ks != k:  # A == B: the swap is the same row, already counted as exact
            swapped += [(tid, test_ids[j]) for j in test_pos.get(ks, ())]
    cols = ["train_id", "test_id"]
    return Leakage(
        pd.DataFrame(exact, columns=cols), pd.DataFrame(swapped, columns=cols), len(train), len(test)
    )
