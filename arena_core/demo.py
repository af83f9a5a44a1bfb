"""``arena demo``: the main job end to end on an embedded default, with no GPU and no downloads."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .demo_data import SYNTHETIC_NOTE, make_demo_competition


def _step(n: int, total: int, text: str) -> None:
    print(f"\n[{n}/{total}] {text}", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from .cli import main as arena

    out = Path(args.out)
    started = time.time()
    total = 4
    _step(1, total, "building a small competition folder")
    data_dir = make_demo_competition(out / "competition", seed=args.seed)
    print(f"  {data_dir}/: train.parquet, test.parquet, sample_submission.csv")
    print(f"  NOTE: {SYNTHETIC_NOTE}")

    _step(2, total, "validating the competition files")
    rc = arena(["validate", str(data_dir / "train.parquet"), str(data_dir / "test.parquet")])
    if rc:
        return rc

    submission = out / "submission.csv"
    _step(3, total, "length-heuristic baseline submission")
    rc = arena(["baseline", "--data-dir", str(data_dir), "--out", str(submission)])
    if rc:
        return rc

    _step(4, total, "scoring the length baseline on the held-back test labels")
    rc = arena(["evaluate", "--data", str(data_dir / "test_labels.parquet")])
    if rc:
        return rc

    print(f"\ndone in {time.time() - started:.0f}s")
    print(f"  submission: {submission} (valid: every test id exactly once)")
    print(f"  competition folder: {data_dir}")
    return 0
