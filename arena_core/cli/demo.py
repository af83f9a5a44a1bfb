"""``arena demo``: the main job end to end on an embedded default, with no GPU and no downloads.

A real pretrained Gemma-family model (Gemma-3 270M, shipped on the package index as GGUF and
converted once into a cached Hugging Face checkpoint) is fine-tuned with LoRA for a few CPU
minutes, predicts the test rows with swap TTA, and is packed into a Kaggle bundle; a report
compares it with the length baseline. With ``--quick`` a tiny random Gemma-2 stands in for it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from arena_core.data.synthetic import SYNTHETIC_NOTE, make_demo_competition

# A few CPU minutes on 2 cores: short rows, a dozen optimiser steps.
#: The demo bundle's Kaggle id: a placeholder, so nothing built by the demo uploads under it by accident.
DEMO_DATASET_ID = "arena-demo/arena-core-demo-bundle"
DEMO_TRAIN_OVERRIDES = [
    "encoding.max_length=128",
    "encoding.min_part_tokens=16",
    "train.max_steps=12",
    "train.per_device_batch_size=8",
    "train.gradient_accumulation_steps=1",
    "train.learning_rate=3e-4",
    "train.swap_augmentation=random",
    "train.n_folds=10",
    "train.fold=0",
    "train.eval_steps=1000",
    "train.save_steps=1000",
    "train.logging_steps=2",
    "lora.r=8",
    "lora.alpha=16",
]


def _step(n: int, total: int, text: str) -> None:
    print(f"\n[{n}/{total}] {text}", flush=True)


def _check(rc: int, what: str) -> None:
    if rc:
        raise SystemExit(f"arena demo: step '{what}' failed (exit code {rc}); see the messages above")


def _backbone(out: Path, quick: bool) -> Path:
    from arena_core.models.backbones import make_tiny_gemma2
    from arena_core.models.gemma3 import gemma3_270m_checkpoint

    if quick:
        return make_tiny_gemma2(out / "tiny-gemma2")
    return gemma3_270m_checkpoint(progress=True)


def _repo_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


QUALITY_RESULT = Path("benchmarks") / "results" / "quality.json"


def real_quality_lines(results_file: Path | None, run_dir: Path | None = None) -> list[str]:
    """What a model trained this way scores on real human preferences, beside the synthetic smoke number.

    From the committed benchmark result (benchmarks/bench_quality.py) and, when the demo trained on a
    real ``--train`` file, from that run's own held-out rows. Never fails: a missing or unreadable
    result says "not measured yet".
    """
    lines = []
    if run_dir is not None:
        try:
            metrics = json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))["metrics"]
            lines.append(
                f"  your --train file, {metrics['eval_rows']} held-out rows: accuracy {metrics['accuracy']:.3f}, "
                f"log loss {metrics['log_loss']:.3f}"
            )
        except (OSError, ValueError, KeyError, TypeError):
            lines.append("  your --train file: no held-out rows were scored")
    try:
        report = json.loads(Path(results_file).read_text(encoding="utf-8"))
        s, head = report["settings"], report["headline"]
        best, base = head["best_fine_tuned"], head["length_baseline"]
        lines.append(
            f"  real pairs ({best['n']} held out from {Path(s['data']).name}, {s['model_name']}, "
            f"{best['steps']} steps on {s['train_rows']} pairs): {best['name']}: accuracy {best['accuracy']:.3f}, "
            f"log loss {best['log_loss']:.3f}; length baseline {base['accuracy']:.3f} / {base['log_loss']:.3f}"
            " (docs/benchmarks.md)"
        )
        # plain words: is the gap larger than the accuracy's own 95 % interval on these n rows?
        half = 1.96 * math.sqrt(max(base["accuracy"] * (1 - base["accuracy"]), 1e-9) / best["n"])
        gap = best["accuracy"] - base["accuracy"]
        verdict = "beats" if gap > half else "is below" if gap < -half else "does not beat"
        lines.append(
            f"  -> at that scale the fine-tuned model {verdict} the length baseline beyond noise "
            f"({gap:+.3f} accuracy, 95 % interval +/-{half:.3f})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        lines.append(
            "  real pairs: not measured yet (python benchmarks/bench_quality.py writes "
            f"{QUALITY_RESULT.as_posix()}; see docs/benchmarks.md)"
        )
    return lines


SYNTHETIC_ROWS_NOTE = (
    "made-up test rows of the synthetic competition (their prompts never occur in training; "
    "no row is shared with it)"
)


def synthetic_headline(labels_file: Path, probs_file: Path) -> list[str]:
    """One line per model in ``probs_file`` (members and ensemble) against the length baseline."""
    import pandas as pd

    from arena_core.data.competition import load_competition_file
    from arena_core.evaluation.length import versus_length

    frame = load_competition_file(labels_file).frame
    probs = pd.read_parquet(probs_file)
    lines = []
    for name, rows in probs.groupby("model", sort=False):
        cols = [c for c in ("p_a", "p_b", "p_tie") if c in rows.columns and rows[c].notna().all()]
        aligned = rows.set_index(rows["id"].astype(str)).loc[frame["id"].astype(str), cols].to_numpy()
        lines.append(versus_length(frame, aligned).line(str(name)))
    return lines


FEATURES_RESULT = Path("benchmarks") / "results" / "features.json"


def feature_quality_lines(results_file: Path | None) -> list[str]:
    """The feature model's in-domain CV rows on real pairs (benchmarks/bench_features.py); never fails."""
    try:
        tables = json.loads(Path(results_file).read_text(encoding="utf-8"))["tables"]
        lines = []
        for title, rows in tables.items():
            if title.startswith("in-domain"):
                r = rows[0]
                lines.append(
                    f"  feature model, {title.split(', ', 1)[1]}: accuracy {r['accuracy']:.3f} vs length "
                    f"{r['length_accuracy']:.3f}, log loss {r['log_loss']:.3f} vs {r['length_log_loss']:.3f} "
                    f"({r['n']} rows, 5-fold CV) -> {r['verdict']}"
                )
        return lines
    except (OSError, TypeError, ValueError, KeyError, IndexError):
        return [
            f"  feature model on real pairs: not measured yet (python benchmarks/bench_features.py writes {FEATURES_RESULT.as_posix()})"
        ]


def run_demo(args: argparse.Namespace, arena: Callable[[list[str]], int]) -> int:
    """The demo's steps, each an ``arena`` command run through ``arena`` (``cli.main.main``, passed in
    by the caller so this module does not import the parser that imports it)."""
    from arena_core.kaggle.bundle import build_bundle, check_metadata

    # The demo trains in this process: on a machine with several GPUs, one on purpose (a single
    # training process that sees two is refused, see arena_core.training.processes). Set before
    # anything initialises CUDA; a value the user exported wins.
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    out = Path(args.out)
    started = time.time()
    total = 9
    _step(1, total, "building a small competition folder")
    data_dir = make_demo_competition(out / "competition", n_train=400, n_test=60, seed=args.seed)
    print(f"  {data_dir}/: train.parquet, test.parquet, sample_submission.csv")
    print(f"  NOTE: {SYNTHETIC_NOTE}")
    train_file = Path(args.train) if args.train else data_dir / "train.parquet"

    _step(2, total, "validating the competition files")
    test_file = str(data_dir / "test.parquet")
    check = ["validate", str(train_file), test_file]
    if not args.train:  # stop if a training row is also a test row: the score would be on seen rows
        check += ["--against", test_file, "--strict"]
    _check(arena(check), "validate")

    _step(3, total, "length-heuristic baseline (the safety net every submission starts from)")
    baseline_sub = out / "baseline_submission.csv"
    _check(arena(["baseline", "--data-dir", str(data_dir), "--out", str(baseline_sub)]), "baseline")

    _step(4, total, "feature model: gradient-boosted trees over the pair features (seconds on the CPU)")
    features_dir = out / "runs" / "demo-features"
    _check(
        arena(
            ["train", "--train", str(train_file), "--out", str(features_dir), "--set", "model.kind=features"]
        ),
        "train features",
    )

    _step(
        5,
        total,
        "backbone: "
        + ("tiny random Gemma-2 (--quick)" if args.quick else "Gemma-3 270M from the package index"),
    )
    model_dir = _backbone(out, args.quick)
    print(f"  checkpoint: {model_dir}")

    _step(6, total, "LoRA fine-tuning on CPU (a smoke run: a dozen steps)")
    run_dir = out / "runs" / "demo-lora"
    if run_dir.exists():  # the demo owns --out: an earlier (perhaps interrupted) demo run starts over
        import shutil

        print(f"  removing the earlier demo run {run_dir}: the demo starts its own run over")
        shutil.rmtree(run_dir)
    root = _repo_root()
    cmd = ["train", "--model", str(model_dir), "--train", str(train_file), "--out", str(run_dir)]
    if root and (root / "configs" / "tiny-cpu.yaml").is_file():
        cmd += ["--config", str(root / "configs" / "tiny-cpu.yaml")]
    for item in DEMO_TRAIN_OVERRIDES:
        cmd += ["--set", item]
    _check(arena(cmd), "train")

    _step(7, total, "predicting the test rows: the LoRA model (swap TTA) and the feature model, ensembled")
    submission = out / "submission.csv"
    probs = out / "probs.parquet"
    _check(
        arena(
            [
                "predict",
                "--data-dir",
                str(data_dir),
                "--model",
                str(run_dir),
                "--model",
                str(features_dir),
                "--tta",
                "swap",
                "--out",
                str(submission),
                "--save-probs",
                str(probs),
            ]
        ),
        "predict",
    )

    _step(
        8,
        total,
        "building the offline Kaggle bundle (wheels + runs + base weights) and checking its metadata",
    )
    bundle_dir = out / "bundle"
    requirements = root / "requirements-offline.txt" if root else None
    if args.no_download or requirements is None or not requirements.is_file():
        print(
            "  --no-download: the bundle carries only the arena_core wheel (no bitsandbytes); fine for fp16/bf16 runs"
        )
        requirements = None
    report = build_bundle(
        bundle_dir,
        [run_dir, features_dir],
        python="3.11",  # today's image: the competition-era one (3.10, transformers 4.47) predates Gemma-3
        include_base=model_dir,
        dataset_id=DEMO_DATASET_ID,
        title="arena_core demo bundle",
        requirements=requirements,
        download=requirements is not None,
        repo_root=root,
        overwrite=True,
    )
    print(report.summary())
    check_metadata(bundle_dir / "dataset-metadata.json", kind="dataset")
    print("  dataset-metadata.json accepted by the kaggle package's validation")

    _step(9, total, "report: both models and their ensemble vs the length baseline")
    report_dir = out / "report"
    _check(
        arena(
            [
                "report",
                "--data",
                str(data_dir / "test_labels.parquet"),
                "--pred",
                str(probs),
                "--out",
                str(report_dir),
            ]
        ),
        "report",
    )

    minutes = (time.time() - started) / 60
    print("\n" + "=" * 72)
    print(f"arena demo finished in {minutes:.1f} min. Everything is under {out}/:")
    print(f"  submission.csv        {submission}  (valid: every test id exactly once)")
    print(f"  run directories       {run_dir}  (LoRA: adapter, tokenizer, config.yaml, manifest.json)")
    print(f"                        {features_dir}  (feature model: booster/model.txt, LightGBM text)")
    print(
        f"  Kaggle bundle         {bundle_dir}  (dataset id {DEMO_DATASET_ID}: a placeholder, not your account)"
    )
    print(
        "                        to upload it, build it under your Kaggle name: python build_dataset.py "
        f"--run {run_dir} --run {features_dir} --base {model_dir} --python 3.11 "
        f"--dataset-id YOUR_KAGGLE_NAME/arena-core-demo --out {bundle_dir} --overwrite --upload"
    )
    print(f"  report                {report_dir / 'report.md'}  (+ PNG plots)")
    print(f"  per-row probabilities {probs}")
    print(f"On the {SYNTHETIC_ROWS_NOTE} (paired 95 % intervals against 'the longer answer wins'):")
    for line in synthetic_headline(data_dir / "test_labels.parquet", probs):
        print("  " + line)
    print("Quality on real human preferences (the number above is synthetic):")
    results = root / QUALITY_RESULT if root else None
    for line in real_quality_lines(results, run_dir if args.train else None):
        print(line)
    for line in feature_quality_lines(root / FEATURES_RESULT if root else None):
        print(line)
    print(
        "What the numbers mean: the rows are synthetic (written by a program, labelled by construction) and the\n"
        "LoRA model trained for a dozen CPU steps, so the synthetic lines prove the pipeline end to end, not model\n"
        "quality. The real-pair lines above are what such models score on real human preferences. Train on real\n"
        "data (the competition's train file) on a GPU (docs/kaggle.md), or pass --train FILE here."
    )
    return 0
