"""Does a model fine-tuned with arena_core learn real human preferences? Measured on real pairs.

One run, one fixed split, four rows of results on the same held-out pairs:

1. length baseline ("the longer response wins", no model);
2. zero-shot judge: verdict head + judge template, 0 training steps (the model's own verdict);
3. random head + marker template, fine-tuned with LoRA (the toolkit's default recipe);
4. verdict head + judge template, fine-tuned with LoRA for the same steps.

Each: accuracy, log loss, per source and per language, training steps, wall time (train and
predict, swap TTA). The split is seeded and stratified by source: a fixed share of every source
is held out first, then ``--train-rows`` / ``--eval-rows`` are drawn from the two pools in
proportion to the sources, so the eval rows do not change with ``--train-rows``.

    python benchmarks/bench_quality.py --data ../shared/data/real_pref_dev.parquet

Defaults fit Gemma-3 270M into about 45 minutes on a 2-core CPU; on a GPU raise the budget
(e.g. ``--train-rows 2000 --eval-rows 500 --max-length 1024 --steps 250``). Writes JSON and a
Markdown table (``--out``, default benchmarks/results/quality.json + .md) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results_io import write_results  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "quality.json"


# --------------------------------------------------------------------------- the split


def _proportional(counts: pd.Series, n: int) -> dict:
    """``n`` rows shared among groups in proportion to ``counts`` (largest remainder), capped by each count."""
    n = min(int(n), int(counts.sum()))
    exact = counts / counts.sum() * n
    take = np.floor(exact).astype(int)
    for key in (exact - take).sort_values(ascending=False, kind="mergesort").index[: n - int(take.sum())]:
        take[key] += 1
    return {k: int(min(v, counts[k])) for k, v in take.items()}


def split(frame: pd.DataFrame, n_train: int, n_eval: int, eval_share: float, seed: int):
    """Seeded split stratified by source: a held-out pool per source, then proportional draws."""
    strata = frame["source"].astype(str) if "source" in frame.columns else pd.Series("all", index=frame.index)
    rng = np.random.default_rng(seed)
    train_pool, eval_pool = [], []
    for key in sorted(strata.unique()):
        idx = frame.index[strata == key].to_numpy()
        idx = idx[rng.permutation(len(idx))]
        cut = int(round(len(idx) * eval_share))
        eval_pool.append(idx[:cut])
        train_pool.append(idx[cut:])
    out = []
    for pools, n in ((train_pool, n_train), (eval_pool, n_eval)):
        pool = np.concatenate(pools)
        counts = strata[pool].value_counts()
        take = _proportional(counts, n)
        chosen = np.concatenate([pool[strata[pool].to_numpy() == k][:m] for k, m in sorted(take.items())])
        out.append(frame.loc[np.sort(chosen)].reset_index(drop=True))
    return out[0], out[1]


# --------------------------------------------------------------------------- scoring


def score(name: str, eval_frame: pd.DataFrame, result, **extra) -> dict:
    """Overall, per-source and per-language metrics of one row of results."""
    from arena_core.evaluation.metrics import evaluate, position_bias

    preds = result if isinstance(result, pd.DataFrame) else result.frame()
    ev = evaluate(eval_frame, preds, by=("source", "language"))
    row = {
        "name": name,
        "n": ev.n,
        "accuracy": ev.accuracy,
        "log_loss": ev.log_loss,
        "groups": {k: v.to_dict(orient="records") for k, v in ev.groups.items()},
        **extra,
    }
    if not isinstance(result, pd.DataFrame):
        first, swapped = result.probs_first, result.probs_swapped
        both = ~(np.isnan(first).any(axis=1) | np.isnan(swapped).any(axis=1))
        if both.any():
            row["flip_rate"] = position_bias(first[both], swapped[both])["flip_rate"]
    print(
        f"  {name}: accuracy {row['accuracy']:.4f}, log loss {row['log_loss']:.4f} on {row['n']} rows",
        flush=True,
    )
    return row


def predict(model, tokenizer, encoding, eval_frame, args):
    from arena_core.config import PredictConfig
    from arena_core.encoding.encoder import PairEncoder
    from arena_core.inference.engine import predict_probs
    from arena_core.inference.scoring import Scorer

    encoded = PairEncoder(tokenizer, encoding).encode_frame(eval_frame)
    started = time.perf_counter()
    cfg = PredictConfig(tta=args.tta, token_budget=args.token_budget)
    result = predict_probs([Scorer(model, tokenizer.pad_token_id)], encoded, cfg, progress=False)
    return result, time.perf_counter() - started


# --------------------------------------------------------------------------- the rows


def run_config(args, template: str, head_init: str):
    from arena_core.config import load_config

    return load_config(
        None,
        [
            f"model.path={args.model}",
            "model.num_labels=2",
            f"model.quantization={args.quantization}",
            f"model.head_init={head_init}",
            f"model.verdict_tokens={json.dumps(args.verdict_tokens)}",
            f"encoding.template={template}",
            f"encoding.max_length={args.max_length}",
            f"encoding.min_part_tokens={args.min_part_tokens}",
            f"train.max_steps={args.steps}",
            f"train.per_device_batch_size={args.batch_size}",
            "train.gradient_accumulation_steps=1",
            f"train.learning_rate={args.lr}",
            "train.warmup_ratio=0.1",
            f"train.swap_augmentation={args.swap}",
            "train.fold=-1",
            f"train.seed={args.seed}",
            "train.save_steps=1000000",
            "train.eval_steps=1000000",
            "train.logging_steps=5",
            f"lora.r={args.lora_r}",
            f"lora.alpha={2 * args.lora_r}",
        ],
    )


def zero_shot(args, eval_frame) -> dict:
    from arena_core.models.loading import load_classifier

    cfg = run_config(args, "judge", "verdict")
    model, tokenizer = load_classifier(cfg.model, None, for_training=False)
    result, seconds = predict(model, tokenizer, cfg.encoding, eval_frame, args)
    del model
    return score(
        "zero-shot: verdict head + judge template",
        eval_frame,
        result,
        template="judge",
        head_init="verdict",
        steps=0,
        train_seconds=0.0,
        predict_seconds=seconds,
    )


def fine_tuned(args, name, template, head_init, train_file, eval_frame, work: Path) -> dict:
    from arena_core.models.runs import load_run
    from arena_core.training.trainer import train

    cfg = run_config(args, template, head_init)
    run_dir = work / f"run-{template}-{head_init}"
    started = time.perf_counter()
    result = train(cfg, train_file, run_dir)
    train_seconds = time.perf_counter() - started
    run = load_run(run_dir, quiet=True)
    preds, seconds = predict(run.model, run.tokenizer, run.config.encoding, eval_frame, args)
    del run
    return score(
        name,
        eval_frame,
        preds,
        template=template,
        head_init=head_init,
        steps=int(result.metrics.get("global_step", 0)),
        train_loss=result.metrics.get("train_loss"),
        train_seconds=train_seconds,
        predict_seconds=seconds,
    )


# --------------------------------------------------------------------------- the report


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown(report: dict) -> str:
    rows = report["rows"]
    s = report["settings"]
    lines = [
        f"Data: `{s['data']}`; {s['train_rows']} train / {s['eval_rows']} eval pairs (seed {s['seed']}, "
        f"stratified by source); model `{s['model_name']}`; max_length {s['max_length']}, "
        f"{s['steps']} steps x batch {s['batch_size']} (A/B swap: {s['swap']}), lr {s['lr']}, LoRA r={s['lora_r']}, "
        f"TTA {s['tta']}; {report['machine']['device']}; whole run {report['total_seconds'] / 60:.1f} min.",
        "",
        "| model | steps | train s | predict s | accuracy (95% CI) | log loss | A/B flip rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        half = 1.96 * np.sqrt(r["accuracy"] * (1 - r["accuracy"]) / max(1, r["n"]))
        lines.append(
            f"| {r['name']} | {r.get('steps', '-')} | {_fmt(r.get('train_seconds'), 0)} | "
            f"{_fmt(r.get('predict_seconds'), 0)} | {_fmt(r['accuracy'])} ± {half:.3f} | {_fmt(r['log_loss'])} | "
            f"{_fmt(r.get('flip_rate'), 2)} |"
        )
    for col in ("source", "language"):
        groups = [g for g in rows[0]["groups"].get(col, [])]
        if not groups:
            continue
        lines += ["", f"Accuracy / log loss by {col}:", ""]
        lines.append(f"| {col} | n | " + " | ".join(r["name"] for r in rows) + " |")
        lines.append("|---|---:|" + "---:|" * len(rows))
        for g in groups:
            key = g[col]
            cells = []
            for r in rows:
                match = next((x for x in r["groups"].get(col, []) if x[col] == key), None)
                cells.append(f"{_fmt(match['accuracy'])} / {_fmt(match['log_loss'])}" if match else "-")
            lines.append(f"| {key} | {g['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def headline(rows: list[dict]) -> dict:
    """What `arena demo` quotes: the best fine-tuned row against the length baseline."""
    base = next(r for r in rows if r["name"].startswith("length baseline"))
    tuned = [r for r in rows if r.get("steps")]
    best = min(tuned, key=lambda r: r["log_loss"]) if tuned else None
    return {
        "length_baseline": {"accuracy": base["accuracy"], "log_loss": base["log_loss"]},
        "best_fine_tuned": None
        if best is None
        else {k: best[k] for k in ("name", "accuracy", "log_loss", "steps", "n")},
    }


def machine() -> dict:
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name(0) if cuda else f"CPU ({torch.get_num_threads()} torch threads)",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "real_pref_dev.parquet"))
    p.add_argument("--model", help="checkpoint directory (default: Gemma-3 270M from the package index)")
    p.add_argument("--train-rows", type=int, default=320)
    p.add_argument("--eval-rows", type=int, default=240)
    p.add_argument(
        "--eval-share", type=float, default=0.2, help="share of each source held out (default 0.2)"
    )
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--min-part-tokens", type=int, default=32, help="tokens each part keeps at least")
    p.add_argument("--steps", type=int, default=40, help="optimiser steps per fine-tuned row")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per optimiser step")
    p.add_argument(
        "--swap",
        default="random",
        choices=["random", "both"],
        help="A/B swap augmentation: each pair once in a random order (more distinct pairs per step), or in both",
    )
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--quantization", default="none", help="none | 4bit | 8bit (GPU)")
    p.add_argument("--verdict-tokens", nargs="+", default=[" A", " B"])
    p.add_argument("--tta", default="swap", choices=["none", "swap"])
    p.add_argument("--token-budget", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    p.add_argument(
        "--out", default=str(DEFAULT_OUT), help="JSON result (a .md beside it); default %(default)s"
    )
    args = p.parse_args(argv)

    import torch

    from arena_core.data.competition import load_competition_file
    from arena_core.evaluation.length import length_baseline

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if not args.model:
        from arena_core.models.gemma3 import gemma3_270m_checkpoint

        args.model = str(gemma3_270m_checkpoint(progress=True))
    frame = load_competition_file(args.data).frame
    frame = frame[frame["label"].isin([0, 1])].reset_index(drop=True)
    train_frame, eval_frame = split(frame, args.train_rows, args.eval_rows, args.eval_share, args.seed)
    items = args.steps * args.batch_size
    per_epoch = len(train_frame) * (2 if args.swap == "both" else 1)
    print(
        f"bench_quality: {len(train_frame)} train / {len(eval_frame)} eval pairs from {args.data} "
        f"(seed {args.seed}, stratified by source); model {args.model}; max_length {args.max_length}; "
        f"{args.steps} steps x batch {args.batch_size} = {items} items, swap {args.swap} "
        f"({items / max(1, per_epoch):.2f} epochs); TTA {args.tta}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train_file = work / "train.parquet"
        # Written back in the WSDM schema (the canonical frame's label is read from ``winner``).
        raw = train_frame.drop(columns=["label"]).assign(
            winner=np.where(train_frame["label"].to_numpy() == 0, "model_a", "model_b")
        )
        raw.to_parquet(train_file)
        rows = [
            score(
                "length baseline",
                eval_frame,
                length_baseline(eval_frame),
                steps=0,
                train_seconds=0.0,
                predict_seconds=0.0,
            )
        ]
        rows.append(zero_shot(args, eval_frame))
        rows.append(
            fine_tuned(
                args, "random head + marker template", "marker", "random", train_file, eval_frame, work
            )
        )
        rows.append(
            fine_tuned(
                args, "verdict head + judge template", "judge", "verdict", train_file, eval_frame, work
            )
        )
    total = time.perf_counter() - started
    report = {
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "settings": {
            "data": args.data,
            "model_name": Path(args.model).name,
            "train_rows": len(train_frame),
            "eval_rows": len(eval_frame),
            "eval_share": args.eval_share,
            "max_length": args.max_length,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "swap": args.swap,
            "lr": args.lr,
            "lora_r": args.lora_r,
            "quantization": args.quantization,
            "verdict_tokens": args.verdict_tokens,
            "tta": args.tta,
            "seed": args.seed,
        },
        "machine": machine(),
        "total_seconds": total,
        "headline": headline(rows),
        "rows": rows,
    }
    write_results(args.out, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
