"""The chain that won the arena competitions, measured end to end on real preference pairs:

    arena cv (k folds) -> OOF probabilities -> temperature fitted on the OOF -> student distilled
    from the OOF soft labels

on a sample of ``real_pref_dev.parquet``: the sample is split once into a training part and a
held-out part no step ever trains on. The teacher is ``arena cv`` on the training part (its folds'
adapters averaged with --merge-folds); the students train on the same rows and budget, one on hard
labels only, one with ``--soft-labels`` from the teacher's OOF. Every number on the held-out part
is beside the length baseline.

    python benchmarks/bench_distill_chain.py --data ../shared/data/real_pref_dev.parquet
    python benchmarks/bench_distill_chain.py --data ... --rows 24 --folds 2 --steps 1 --max-length 128  # smoke
    python benchmarks/bench_distill_chain.py --tiny --rows 60                                           # seconds

Gemma-3 270M (``arena_core.models.backbones.gemma3_270m_checkpoint``) is both teacher and student
here: a CPU cannot train a larger teacher. Scale up with --rows, --steps, --max-length, --folds.
Prints a Markdown table and writes WORK/results.md and WORK/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena_core.config import load_config  # noqa: E402
from arena_core.data.competition import LABEL_NAMES, load_competition_file  # noqa: E402
from arena_core.evaluation.calibration import Calibration, apply_temperature  # noqa: E402
from arena_core.evaluation.length import length_baseline  # noqa: E402
from arena_core.evaluation.metrics import evaluate  # noqa: E402
from arena_core.evaluation.tables import format_table  # noqa: E402
from arena_core.inference.members import score_runs  # noqa: E402
from arena_core.training.cv import run_cv  # noqa: E402
from arena_core.training.trainer import train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        default="../shared/data/real_pref_dev.parquet",
        help="WSDM-schema pairs with a source column (default: %(default)s, from the repository root)",
    )
    p.add_argument("--work", default="bench_distill_out", help="working folder (default: %(default)s)")
    p.add_argument("--rows", type=int, default=240, help="rows sampled from --data (default: %(default)s)")
    p.add_argument("--holdout", type=float, default=0.25, help="share held out from every step")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--steps", type=int, default=48, help="optimizer steps per fold and per student")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch", type=int, default=4, help="per-device batch size (items)")
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument(
        "--alpha", type=float, default=0.5, help="train.distill_alpha: weight of the hard-label CE"
    )
    p.add_argument("--temperature", type=float, default=2.0, help="train.distill_temperature")
    p.add_argument("--tta", default="swap", choices=["none", "swap"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-hard-student", action="store_true", help="train only the distilled student")
    p.add_argument("--tiny", action="store_true", help="a tiny random Gemma-2 instead of Gemma-3 270M")
    return p.parse_args(argv)


def sample(path: str, rows: int, holdout: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``rows`` rows stratified by source, split into (train, held out) the same way every run."""
    df = pd.read_parquet(path)
    df = df[df["winner"].isin(LABEL_NAMES[:2])].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    share = min(1.0, rows / len(df))
    picked = []
    for _, idx in sorted(df.groupby("source").indices.items()):
        n = max(1, round(share * len(idx)))
        picked += rng.choice(idx, size=min(n, len(idx)), replace=False).tolist()
    picked = rng.permutation(picked)[:rows]
    df = df.iloc[picked].reset_index(drop=True)
    cut = int(round(len(df) * (1 - holdout)))
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True)


def score(run_dir: Path, frame: pd.DataFrame, tta: str) -> pd.DataFrame:
    """Raw (uncalibrated) engine probabilities of one run on ``frame``."""
    return score_runs([run_dir], frame, tta=tta, devices=["cpu"], calibrate=False).frame()


def row(name: str, frame: pd.DataFrame, preds: pd.DataFrame, secs: float | None = None) -> dict:
    res = evaluate(frame, preds, by=())
    out = {"predictions": name, "n": res.n, "accuracy": res.accuracy, "log_loss": res.log_loss}
    out["seconds"] = f"{secs:.0f}" if secs is not None else "-"
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data}: not found; pass --data PATH/real_pref_dev.parquet")
    t_all = time.monotonic()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train_df, held_df = sample(args.data, args.rows, args.holdout, args.seed)
    train_df.to_parquet(work / "train.parquet", index=False)
    held_df.to_parquet(work / "heldout.parquet", index=False)
    train_frame = load_competition_file(work / "train.parquet").frame
    held = load_competition_file(work / "heldout.parquet").frame
    print(
        f"{len(train_frame)} training rows, {len(held)} held out (sources: {held['source'].value_counts().to_dict()})"
    )

    if args.tiny:
        from arena_core.models.backbones import make_tiny_gemma2

        model_dir = make_tiny_gemma2(work / "tiny-gemma2")
    else:
        from arena_core.models.gemma3 import gemma3_270m_checkpoint

        model_dir = gemma3_270m_checkpoint()
    overrides = [
        f"model.path={model_dir}",
        f"encoding.max_length={args.max_length}",
        f"train.max_steps={args.steps}",
        f"train.per_device_batch_size={args.batch}",
        f"train.gradient_accumulation_steps={args.grad_accum}",
        f"train.learning_rate={args.lr}",
        f"train.n_folds={args.folds}",
        f"train.eval_steps={args.steps}",
        f"train.save_steps={args.steps}",
        f"train.logging_steps={max(1, args.steps // 5)}",
        f"train.seed={args.seed}",
        f"lora.r={args.lora_r}",
        f"lora.alpha={2 * args.lora_r}",
        f"predict.tta={args.tta}",
        "predict.token_budget=4096",
    ]
    cfg = load_config(REPO / "configs" / "tiny-cpu.yaml", overrides)
    if args.max_length < 256:
        cfg.encoding.min_part_tokens = min(cfg.encoding.min_part_tokens, 8)

    # 1. teacher: k folds -> OOF -> temperature; merged folds scored on the held-out part
    t = time.monotonic()
    cv = run_cv(
        cfg,
        [work / "train.parquet"],
        work / "cv",
        merge_folds=True,
        eval_file=work / "heldout.parquet",
        devices=["cpu"],
    )
    t_cv = time.monotonic() - t
    temperature = cv.calibration.temperature
    teacher = pd.read_parquet(cv.merged["predictions"])  # merged folds on the held-out part, raw
    teacher_cal = teacher.copy()
    teacher_cal[["p_a", "p_b"]] = apply_temperature(teacher[["p_a", "p_b"]].to_numpy(), temperature)

    # 2. students on the same rows and budget: hard labels only, and distilled from the OOF
    students = {}
    kinds = [("distilled", True)] if args.skip_hard_student else [("hard labels", False), ("distilled", True)]
    for name, soft in kinds:
        scfg = load_config(REPO / "configs" / "tiny-cpu.yaml", overrides)
        scfg.encoding.min_part_tokens = cfg.encoding.min_part_tokens
        scfg.train.fold = -1
        scfg.train.distill_alpha = args.alpha
        scfg.train.distill_temperature = args.temperature
        out = work / ("student_distilled" if soft else "student_hard")
        t = time.monotonic()
        train(scfg, work / "train.parquet", out, soft_labels=work / "cv" / "oof.parquet" if soft else None)
        students[name] = (score(out, held, args.tta), time.monotonic() - t)

    # 3. the table: OOF on the training part, everything else on the held-out part
    base_train = length_baseline(train_frame)
    oof = cv.oof[["id", "p_a", "p_b"]]
    oof_cal = oof.copy()
    oof_cal[["p_a", "p_b"]] = apply_temperature(oof[["p_a", "p_b"]].to_numpy(), temperature)
    rows_train = [
        row("length baseline", train_frame, base_train),
        row(f"teacher OOF ({args.folds} folds)", train_frame, oof, t_cv),
        row(f"teacher OOF, temperature {temperature:.2f}", train_frame, oof_cal),
    ]
    rows_held = [
        row("length baseline", held, length_baseline(held)),
        row("teacher: merged folds", held, teacher),
        row(f"teacher: merged folds, OOF temperature {temperature:.2f}", held, teacher_cal),
    ]
    rows_held += [row(f"student: {name}", held, p, s) for name, (p, s) in students.items()]
    cal = Calibration.load(work / "cv")
    header = (
        f"model {'tiny random Gemma-2' if args.tiny else 'Gemma-3 270M'}, {len(train_frame)} training rows, "
        f"{len(held)} held out, {args.folds} folds, {args.steps} steps x {args.batch * args.grad_accum} items, "
        f"max_length {args.max_length}, lr {args.lr}, LoRA r {args.lora_r}, tta {args.tta}, distill alpha "
        f"{args.alpha} T {args.temperature}; {cal.summary() if cal else ''}"
    )
    text = (
        f"{header}\n\n**out of fold, training part**\n\n{format_table(pd.DataFrame(rows_train), markdown=True)}\n\n"
        f"**held-out part**\n\n{format_table(pd.DataFrame(rows_held), markdown=True)}\n\n"
        f"total {(time.monotonic() - t_all) / 60:.1f} min on {platform.machine()} "
        f"({os.cpu_count()} CPUs), torch threads {__import__('torch').get_num_threads()}\n"
    )
    (work / "results.md").write_text(text, encoding="utf-8")
    (work / "results.json").write_text(
        json.dumps({"args": vars(args), "oof": rows_train, "heldout": rows_held}, indent=2, default=float),
        encoding="utf-8",
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
