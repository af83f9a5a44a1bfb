"""Does ``arena stack`` beat its best single input on real human preferences?

Everything runs through the user-facing commands (``arena_core.cli.main``, the same as ``arena``):

1. the training file: the rows of ``../shared/data/mtbench_human_dev.parquet`` whose winner is not
   a tie (875; columns id, prompt, response_a, response_b, winner, language, source), written to the
   work folder as ``train.parquet``;
2. ``arena cv --config configs/features.yaml ... --folds 5 --out WORK/cv-features`` (LightGBM over
   the pair features) and ``arena cv --config configs/tiny-cpu.yaml --model <Gemma-3 270M> ...
   --folds 5 --tta swap --out WORK/cv-gemma`` (a LoRA run per fold; ``--steps`` x ``--batch``).
   Both use the default seed and the same rows, so ``assign_folds`` gives them the same folds;
3. ``arena stack --oof WORK/cv-gemma --oof WORK/cv-features --out WORK/stack``, and a stack of
   each input alone (each with the pair features) to see what each one adds;
4. a table of OOF accuracy and log loss for the length baseline, both cvs and the three stacks
   (numbers from each cv's ``cv.json`` and each stack's manifest ``metrics.oof_table``), with the
   paired 95 % interval of each against the length baseline
   (``arena_core.evaluation.length.versus_length``) and of every stack against each of its inputs
   (per-row differences from the ``oof.parquet`` files, aligned by id).

Run from the repository root (about 35-45 minutes on 2 CPU cores when nothing else runs; the
Gemma cv is nearly all of it, the feature cv and stacks take seconds)::

    .venv/bin/python benchmarks/bench_stack.py --work /tmp/bench-stack

Quick smoke run (a few minutes)::

    .venv/bin/python benchmarks/bench_stack.py --rows 100 --steps 2 --folds 2 --out /tmp/stack-smoke.json

Writes benchmarks/results/stack.json and stack.md (``--out``). ``arena cv`` is resumable, so
rerunning with the same ``--work`` skips finished folds (the minutes recorded are then the rerun's).

Caveat: ``arena cv`` stratifies folds by label and language but does not group them by prompt;
MT-Bench has each question in several rows (different model pairs), so the same prompt sits on
both sides of a fold and in-domain CV here is optimistic. That holds for every row of the table
alike (same folds, same rows), so the comparison between them is fair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arena_core.cli.main import main as arena  # noqa: E402
from arena_core.evaluation.length import versus_length  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "mtbench_human_dev.parquet"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "stack.json"
KEEP = ["id", "prompt", "response_a", "response_b", "winner", "language", "source"]
STACKS = {  # stack folder -> its inputs (cv folders), in the order passed to --oof
    "stack": ["cv-gemma", "cv-features"],
    "stack-features": ["cv-features"],
    "stack-gemma": ["cv-gemma"],
}
LABELS = {
    "cv-gemma": "Gemma-3 270M LoRA cv",
    "cv-features": "feature cv (LightGBM)",
    "stack": "stack(gemma + features)",
    "stack-features": "stack(features)",
    "stack-gemma": "stack(gemma)",
}


def build_train_file(data: Path, rows: int | None, seed: int, dest: Path) -> int:
    frame = pd.read_parquet(data)
    missing = [c for c in KEEP if c not in frame.columns]
    if missing:
        raise SystemExit(f"{data}: lacks column(s) {missing}")
    frame = frame[frame["winner"].astype(str) != "tie"][KEEP].reset_index(drop=True)
    if rows is not None and rows < len(frame):
        frame = frame.sample(rows, random_state=seed).reset_index(drop=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(dest, index=False)
    return len(frame)


def run(argv: list[str], log: list[dict]) -> float:
    """One ``arena`` command; raises when it fails. Returns its wall-clock minutes."""
    print("\n$ arena " + " ".join(argv), flush=True)
    started = time.perf_counter()
    rc = arena(argv)
    minutes = (time.perf_counter() - started) / 60
    log.append({"command": "arena " + " ".join(argv), "rc": rc, "minutes": round(minutes, 2)})
    if rc:
        raise SystemExit(f"'arena {' '.join(argv)}' failed with exit status {rc}")
    return minutes


def per_row(frame: pd.DataFrame, oof_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, per-row hits and per-row log losses of an oof.parquet in the frame's order."""
    oof = pd.read_parquet(oof_path)
    oof = oof.set_index(oof["id"].astype(str))
    ids = frame["id"].astype(str).tolist()
    lacking = set(ids) - set(oof.index)
    if lacking or oof.index.duplicated().any():
        raise SystemExit(f"{oof_path}: does not cover the training rows once each ({len(lacking)} missing)")
    probs = oof.loc[ids, ["p_a", "p_b"]].to_numpy(dtype=np.float64)
    labels = frame["label"].to_numpy(dtype=np.int64)
    p = np.clip(probs, 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    hits = (p.argmax(axis=1) == labels).astype(float)
    losses = -np.log(p[np.arange(len(labels)), labels])
    return probs, hits, losses


def paired(a: tuple, b: tuple) -> dict:
    """Paired differences ``a`` - ``b`` of per-row hits and log losses, with 95 % half-widths.

    ``gain_accuracy`` > 0 and ``gain_log_loss`` > 0 both mean ``a`` is better (log loss: b - a).
    """
    hit = a[1] - b[1]
    loss = b[2] - a[2]
    n = len(hit)

    def half(d: np.ndarray) -> float:
        return float(1.96 * d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")

    out = {
        "n": n,
        "gain_accuracy": float(hit.mean()),
        "gain_accuracy_half": half(hit),
        "gain_log_loss": float(loss.mean()),
        "gain_log_loss_half": half(loss),
    }
    acc = _side(out["gain_accuracy"], out["gain_accuracy_half"])
    ll = _side(out["gain_log_loss"], out["gain_log_loss_half"])
    if acc > 0 or (ll > 0 and acc >= 0):
        out["verdict"] = "better beyond the 95 % interval"
    elif acc < 0 or ll < 0:
        out["verdict"] = "WORSE beyond the 95 % interval"
    else:
        out["verdict"] = "not distinguishable (within the 95 % interval)"
    return out


def _side(gain: float, half: float) -> int:
    return 1 if gain - half > 0 else -1 if gain + half < 0 else 0


def _fmt_gain(g: dict) -> tuple[str, str]:
    return (
        f"{g['gain_accuracy']:+.3f} ± {g['gain_accuracy_half']:.3f}",
        f"{-g['gain_log_loss']:+.3f} ± {g['gain_log_loss_half']:.3f}",
    )


def markdown(report: dict) -> str:
    r = report
    g = r["gemma"]
    lines = [
        "# `arena stack` against its best single input (MT-Bench human judgements)\n",
        f"Command: `{r['command']}`; {r['machine']}; {r['minutes_total']:.1f} minutes in all "
        f"(Gemma cv {r['minutes']['cv-gemma']:.1f}, feature cv {r['minutes']['cv-features']:.2f}, "
        f"three stacks {r['minutes']['stacks']:.2f}); 1-minute load average during the run: mean "
        f"{r['load_average_1min']['mean']}, max {r['load_average_1min']['max']} (this run alone keeps it "
        f"near {os.cpu_count()}; more means other processes shared the CPU and the minutes are longer "
        "than on an idle machine).\n",
        f"Data: {r['rows']} rows of `{r['data']}` without a tie (2 classes), {r['folds']} folds "
        "(the same folds for every row of the table). Gemma cv: `configs/tiny-cpu.yaml`, Gemma-3 270M, "
        f"LoRA r 8, {g['steps']} steps x batch {g['batch']} (with swap augmentation 'both' each batch "
        f"holds {g['batch'] // 2} pairs in both orders, i.e. about {g['steps'] * g['batch'] // 2} pairs "
        f"of the ~{int(r['rows'] * (r['folds'] - 1) / r['folds'])} a fold trains on), "
        f"lr {g['learning_rate']}, max_length {g['max_length']}, OOF scored with TTA swap. "
        "Stacks: `arena stack` with library-default booster settings and the pair features.\n",
        "\n## OOF table\n",
        "Gains against the length baseline on the same rows (paired 95 % interval, "
        "`versus_length`); log loss gains are written as model - length (negative is better).\n",
        "| predictions | n | accuracy | log loss | accuracy vs length | log loss vs length | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["table"]:
        if row["name"] == "length baseline":
            lines.append(
                f"| length baseline | {row['n']} | {row['accuracy']:.4f} | {row['log_loss']:.4f} | | | |"
            )
            continue
        v = row["versus_length"]
        lines.append(
            f"| {row['label']} | {row['n']} | {row['accuracy']:.4f} | {row['log_loss']:.4f} | "
            f"{v['gain_accuracy']:+.3f} ± {v['gain_accuracy_half']:.3f} | "
            f"{-v['gain_log_loss']:+.3f} ± {v['gain_log_loss_half']:.3f} | {v['verdict']} |"
        )
    lines += [
        "\n## each stack against each of its inputs (paired, same rows)\n",
        "Accuracy: stack - input (positive is better); log loss: stack - input (negative is better).\n",
        "| stack | input | accuracy diff | log loss diff | verdict (stack is ...) |",
        "|---|---|---:|---:|---|",
    ]
    for c in r["stack_vs_inputs"]:
        acc, ll = _fmt_gain(c)
        lines.append(f"| {LABELS[c['stack']]} | {LABELS[c['input']]} | {acc} | {ll} | {c['verdict']} |")
    b = r["best"]
    acc, ll = _fmt_gain(b)
    lines += [
        "\n## verdict\n",
        f"Best stack (lowest OOF log loss): **{LABELS[b['stack']]}** (accuracy {b['stack_accuracy']:.4f}, "
        f"log loss {b['stack_log_loss']:.4f}); best single input: **{LABELS[b['input']]}** (accuracy "
        f"{b['input_accuracy']:.4f}, log loss {b['input_log_loss']:.4f}). Difference (stack - input): "
        f"accuracy {acc}, log loss {ll} -> the stack is {b['verdict']}.\n",
    ]
    lines += [f"{p}\n" for p in r["notes"]]
    lines += [
        "\n## caveat: in-domain CV on MT-Bench is optimistic\n",
        "`arena cv` stratifies folds by label and language, not by prompt. MT-Bench has each question "
        "(and turn) in several rows, one per model pair, so the same prompt is on both sides of a fold "
        "and a model can learn question-specific cues; the numbers here are higher than a grouped CV "
        "would give (benchmarks/results/features.md: the feature model grouped by prompt scores 0.770 / "
        "0.498 on the same 875 rows). Every row of the table uses the same folds and rows, so the "
        "comparison between them is fair.\n",
        "\n## commands run\n",
        *[f"- `{c['command']}` ({c['minutes']:.2f} min, exit {c['rc']})" for c in r["commands"]],
        "",
    ]
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class LoadSampler(threading.Thread):
    """The 1-minute load average every 30 s: was the CPU shared with other processes?"""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self.stop.wait(30):
                return

    def summary(self) -> dict:
        s = self.samples or [float("nan")]
        return {"mean": round(float(np.mean(s)), 2), "max": round(float(np.max(s)), 2), "samples": len(s)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="preference file (default: %(default)s)")
    p.add_argument("--rows", type=int, help="subsample N rows (without ties) for a quick run")
    p.add_argument("--work", help="work folder for the data, cvs and stacks (default: a new temp folder)")
    p.add_argument("--model", help="Gemma-3 270M checkpoint dir (default: gemma3_270m_checkpoint())")
    p.add_argument("--folds", type=int, default=5, help="cv folds (default: %(default)s)")
    p.add_argument("--steps", type=int, default=30, help="LoRA steps per fold (default: %(default)s)")
    p.add_argument("--batch", type=int, default=8, help="LoRA batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=256, help="encoding.max_length (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --rows subsample (default: %(default)s)")
    p.add_argument(
        "--out", default=str(DEFAULT_OUT), help="JSON to write; .md beside it (default: %(default)s)"
    )
    args = p.parse_args(argv)

    started = time.perf_counter()
    sampler = LoadSampler()
    sampler.start()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-stack-"))
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve()
    train = work / "train.parquet"
    n_rows = build_train_file(data, args.rows, args.seed, train)
    print(f"training file: {train} ({n_rows} rows without a tie from {data})")
    if args.model:
        model = Path(args.model)
    else:
        from arena_core.models.gemma3 import gemma3_270m_checkpoint

        model = gemma3_270m_checkpoint()
    configs = REPO / "configs"
    log: list[dict] = []
    minutes: dict[str, float] = {}
    common = ["--train", str(train), "--folds", str(args.folds), "--no-progress"]
    minutes["cv-features"] = run(
        ["cv", "--config", str(configs / "features.yaml"), *common, "--out", str(work / "cv-features")], log
    )
    steps = args.steps
    minutes["cv-gemma"] = run(
        [
            "cv", "--config", str(configs / "tiny-cpu.yaml"), "--model", str(model), *common,
            "--out", str(work / "cv-gemma"), "--tta", "swap",
            "--set", f"encoding.max_length={args.max_length}",
            "--set", f"train.max_steps={steps}",
            "--set", f"train.per_device_batch_size={args.batch}",
            "--set", f"train.learning_rate={args.lr}",
            # no mid-run eval or checkpoint: the trainer evaluates the held-out fold at the end anyway
            "--set", f"train.eval_steps={steps}",
            "--set", f"train.save_steps={steps}",
        ],
        log,
    )  # fmt: skip
    t = time.perf_counter()
    for name, inputs in STACKS.items():
        oofs = [x for i in inputs for x in ("--oof", str(work / i))]
        run(["stack", "--train", str(train), *oofs, "--out", str(work / name)], log)
    minutes["stacks"] = (time.perf_counter() - t) / 60

    # --- the table ---------------------------------------------------------------------------
    from arena_core.training.frames import training_frame

    frame = training_frame([train], 2).reset_index(drop=True)
    rows_by_name = {name: per_row(frame, work / name / "oof.parquet") for name in [*LABELS]}
    cv_json = {c: json.loads((work / c / "cv.json").read_text()) for c in ("cv-gemma", "cv-features")}
    manifests = {s: json.loads((work / s / "manifest.json").read_text()) for s in STACKS}
    base = cv_json["cv-features"]["length_baseline"]
    table = [
        {
            "name": "length baseline",
            "n": base["n"],
            "accuracy": base["accuracy"],
            "log_loss": base["log_loss"],
        }
    ]
    notes: list[str] = []
    for name in LABELS:
        if name in cv_json:
            m = cv_json[name]["oof"]
            extra = {
                "oof_calibrated": cv_json[name]["oof_calibrated"],
                "temperature": cv_json[name]["temperature"],
            }
        else:
            m = manifests[name]["metrics"]
            extra = {"oof_table": m["oof_table"], "rounds": m.get("rounds")}
        vs = versus_length(frame, rows_by_name[name][0])
        vs_d = {k: getattr(vs, k) for k in vs.__dataclass_fields__} | {"verdict": vs.verdict}
        # the reported numbers (cv.json / manifest) must be those of the oof.parquet we pair on
        if abs(vs.accuracy - m["accuracy"]) > 1e-9 or abs(vs.log_loss - m["log_loss"]) > 1e-6:
            notes.append(
                f"Note: {name}: reported accuracy/log loss {m['accuracy']:.6f}/{m['log_loss']:.6f} differ from "
                f"its oof.parquet recomputed {vs.accuracy:.6f}/{vs.log_loss:.6f}."
            )
        table.append(
            {"name": name, "label": LABELS[name], "n": m["n"], "accuracy": m["accuracy"], "log_loss": m["log_loss"],
             "versus_length": vs_d, **extra}
        )  # fmt: skip
    by_name = {r["name"]: r for r in table}
    comparisons = []
    for s, inputs in STACKS.items():
        for i in inputs:
            comparisons.append({"stack": s, "input": i, **paired(rows_by_name[s], rows_by_name[i])})
    best_stack = min(STACKS, key=lambda s: by_name[s]["log_loss"])
    best_input = min(("cv-gemma", "cv-features"), key=lambda c: by_name[c]["log_loss"])
    best = {
        "stack": best_stack,
        "input": best_input,
        "stack_accuracy": by_name[best_stack]["accuracy"],
        "stack_log_loss": by_name[best_stack]["log_loss"],
        "input_accuracy": by_name[best_input]["accuracy"],
        "input_log_loss": by_name[best_input]["log_loss"],
        **paired(rows_by_name[best_stack], rows_by_name[best_input]),
    }
    gemma_probs = rows_by_name["cv-gemma"][0]
    spread = float(gemma_probs[:, 1].std())
    if spread < 0.01:
        notes.append(
            f"The Gemma LoRA cv's OOF p_b has a standard deviation of only {spread:.4f} (min "
            f"{gemma_probs[:, 1].min():.4f}, max {gemma_probs[:, 1].max():.4f}): at {steps} steps it "
            "predicts ~0.5 everywhere, so it gives the stacker almost nothing to use."
        )
    sampler.stop.set()
    cmd_args = " ".join(argv) if argv is not None else " ".join(sys.argv[1:])
    report = {
        "command": ("python benchmarks/bench_stack.py " + cmd_args).strip(),
        "machine": (
            f"{platform.machine()} {cpu_name()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, no GPU"
        ),
        "data": os.path.relpath(data, REPO),
        "rows": n_rows,
        "folds": args.folds,
        "work": str(work),
        "model": str(model),
        "gemma": {
            "steps": steps,
            "batch": args.batch,
            "learning_rate": args.lr,
            "max_length": args.max_length,
        },
        "minutes": {k: round(v, 2) for k, v in minutes.items()},
        "minutes_total": round((time.perf_counter() - started) / 60, 2),
        # the machine may be shared: a 1-minute load average above the core count means the
        # minutes above include waiting for other processes
        "load_average_1min": sampler.summary(),
        "table": table,
        "stack_vs_inputs": comparisons,
        "best": best,
        "notes": notes,
        "commands": log,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")
    text = markdown(report)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    print(f"written: {out} and {out.with_suffix('.md')}; work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
