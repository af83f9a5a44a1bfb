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

Run from the repository root (the Gemma cv is nearly all of the time: about 6-7 minutes a fold,
~32 minutes, on an idle 2-core CPU; 45 minutes were recorded while other jobs shared the CPU; the
feature cv and the stacks take seconds)::

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
from benchmarks.results_io import write_results  # noqa: E402

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

    def summary(self, first: int = 0) -> dict:
        s = self.samples[first:] or self.samples[-1:] or [float("nan")]
        return {"mean": round(float(np.mean(s)), 2), "max": round(float(np.max(s)), 2), "samples": len(s)}


def run(argv: list[str], log: list[dict], sampler: LoadSampler, timings: Path, key: str, done: bool) -> float:
    """One ``arena`` command; raises when it fails. Returns its wall-clock minutes.

    Minutes and load of each command are kept in ``WORK/timings.json``. ``done`` says the command's
    output was complete before it ran (a rerun on the same ``--work``: ``arena cv`` skips every fold);
    then the minutes of the run that did the work are reported, and this one's as ``rerun_minutes``.
    """
    print("\n$ arena " + " ".join(argv), flush=True)
    first = len(sampler.samples)
    started = time.perf_counter()
    rc = arena(argv)
    minutes = (time.perf_counter() - started) / 60
    if rc:
        raise SystemExit(f"'arena {' '.join(argv)}' failed with exit status {rc}")
    stored = json.loads(timings.read_text()) if timings.is_file() else {}
    entry = {"key": key, "command": "arena " + " ".join(argv), "rc": rc, "minutes": round(minutes, 2)}
    entry["load_average_1min"] = sampler.summary(first)
    if done and key in stored:
        entry.update(stored[key], rerun_minutes=round(minutes, 2), reused=True)
        minutes = float(stored[key]["minutes"])
    else:
        stored[key] = {k: entry[k] for k in ("minutes", "load_average_1min")}
        timings.write_text(json.dumps(stored, indent=2), encoding="utf-8")
    log.append(entry)
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
        out["verdict"] = "not distinguishable: within the 95 % interval"
    return out


def _side(gain: float, half: float) -> int:
    return 1 if gain - half > 0 else -1 if gain + half < 0 else 0


def _fmt_gain(g: dict) -> tuple[str, str]:
    return (
        f"{g['gain_accuracy']:+.3f} ± {g['gain_accuracy_half']:.3f}",
        f"{-g['gain_log_loss']:+.3f} ± {g['gain_log_loss_half']:.3f}",
    )


def _said(c: dict) -> str:
    """A paired comparison in words: 'accuracy +0.001 ± 0.004, log loss +0.013 ± 0.007 (...)'."""
    acc, ll = _fmt_gain(c)
    return f"accuracy {acc}, log loss {ll} ({c['verdict']})"


def markdown(report: dict) -> str:
    r = report
    g = r["gemma"]
    go = r["gemma_oof"]
    by = {row["name"]: row for row in r["table"]}
    cmd = {c["key"]: c for c in r["commands"]}
    load = cmd["cv-gemma"]["load_average_1min"]
    lines = [
        "# `arena stack` against its best single input (MT-Bench human judgements)\n",
        f"Command: `{r['command']}`; {r['machine']}; {r['minutes_total']:.1f} minutes in all "
        f"(Gemma cv {r['minutes']['cv-gemma']:.1f}, feature cv {r['minutes']['cv-features']:.2f}, "
        f"three stacks {r['minutes']['stacks']:.2f}). 1-minute load average during the Gemma cv: mean "
        f"{load['mean']}, max {load['max']} (the cv alone keeps it near {os.cpu_count()}; more means "
        "other processes shared the CPU and the minutes are longer than on an idle machine).\n",
        f"Data: {r['rows']} rows of `{r['data']}` without a tie (2 classes), {r['folds']} folds "
        "(the same folds for every row of the table). Gemma cv: `configs/tiny-cpu.yaml`, Gemma-3 270M, "
        f"LoRA r 8, {g['steps']} steps x batch {g['batch']} per fold (swap augmentation 'both': each "
        f"batch holds {g['batch'] // 2} pairs in both orders, so a fold sees about "
        f"{g['steps'] * g['batch'] // 2} of its ~{int(r['rows'] * (r['folds'] - 1) / r['folds'])} "
        f"training pairs), lr {g['learning_rate']}, max_length {g['max_length']}, OOF scored with TTA "
        "swap. Stacks: `arena stack` with the library-default booster settings, pair features on.\n",
        "\n## OOF table\n",
        "Gains against the length baseline on the same rows (paired 95 % interval, "
        "`versus_length`); log loss differences are written as model - length (negative is better).\n",
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
        "\n## paired comparisons between the stacks and their inputs (same rows)\n",
        "Differences are first minus second: accuracy (positive is better), log loss (negative is better).\n",
        "| first | second | accuracy diff | log loss diff | first is ... |",
        "|---|---|---:|---:|---|",
    ]
    for c in r["stack_vs_inputs"]:
        acc, ll = _fmt_gain(c)
        lines.append(f"| {LABELS[c['stack']]} | {LABELS[c['input']]} | {acc} | {ll} | {c['verdict']} |")
    m, b = r["main_stack_vs_best_input"], r["best"]
    extra = {(c["stack"], c["input"]): c for c in r["stack_vs_inputs"]}
    gemma_vs_len = by["cv-gemma"]["versus_length"]["verdict"]
    chance = sum(
        1
        for f, ll in zip(go["fold_eval_flip_rate"], go["fold_eval_log_loss"])
        if f > 0.5 or ll > np.log(2) + 1e-3
    )
    lines += [
        "\n## verdict\n",
        f"**{LABELS['stack']}** against its best single input, **{LABELS[m['input']]}** (log loss "
        f"{m['stack_log_loss']:.4f} vs {m['input_log_loss']:.4f}, accuracy {m['stack_accuracy']:.4f} vs "
        f"{m['input_accuracy']:.4f}): {_said(m)}. "
        + (
            "**The stack beats its best input beyond the 95 % interval.**"
            if m["verdict"].startswith("better")
            else "**The stack does NOT beat its best input"
            + (": it is worse beyond the 95 % interval.**" if m["verdict"].startswith("WORSE") else ".**")
        ),
        "",
        f"Best of the three stacks (lowest OOF log loss): {LABELS[b['stack']]} ({b['stack_log_loss']:.4f}); "
        f"against the best single cv, {LABELS[b['input']]}: {_said(b)}.",
        "",
        "Why: what each input adds, read off the paired comparisons above.",
        "",
        f"- The Gemma LoRA cv {gemma_vs_len} (accuracy {by['cv-gemma']['accuracy']:.3f}, log loss "
        f"{by['cv-gemma']['log_loss']:.3f}). Each fold's own end-of-training eval (one A/B order) sits at "
        f"chance (accuracy {', '.join(f'{x:.3f}' for x in go['fold_eval_accuracy'])}; flip rate "
        f"{', '.join(f'{x:.2f}' for x in go['fold_eval_flip_rate'])}: above 0.5 the decision follows the "
        f"position; the trainer printed 'ends no better than chance' for {chance} of {len(go['fold_eval_flip_rate'])} "
        "folds); averaging both "
        "orders (TTA swap) cancels the position term and leaves a weak content signal, but the "
        f"probabilities barely move from 0.5 (p_b std {go['oof_p_b_std']:.4f}, range "
        f"{go['oof_p_b_min']:.3f}-{go['oof_p_b_max']:.3f}; the OOF temperature is "
        f"{by['cv-gemma']['temperature']:.3f}). At {g['steps']} steps x batch {g['batch']} the LLM is "
        "far weaker than the length heuristic, so the stacker has little to take from it.",
        f"- What the Gemma input adds to a stack: stack(gemma + features) vs stack(features): "
        f"{_said(extra[('stack', 'stack-features')])}; stack(gemma) vs the feature cv (the same pair "
        f"features plus the Gemma probability): {_said(extra[('stack-gemma', 'cv-features')])}.",
        f"- What the feature cv's probabilities add: they are a function of the same pair features the "
        f"stacker already reads. stack(features) vs feature cv: {_said(extra[('stack-features', 'cv-features')])}; "
        f"stack(gemma + features) vs stack(gemma): {_said(extra[('stack', 'stack-gemma')])}.",
        "",
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
        *[
            f"- `{c['command']}` ({c['minutes']:.2f} min, exit {c['rc']}"
            + (
                f"; output reused from an earlier run, this rerun {c['rerun_minutes']:.2f} min"
                if c.get("reused")
                else ""
            )
            + ")"
            for c in r["commands"]
        ],
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
    timings = work / "timings.json"

    def done(cv: str) -> bool:
        return (work / cv / "cv.json").is_file()

    common = ["--train", str(train), "--folds", str(args.folds), "--no-progress"]
    minutes["cv-features"] = run(
        ["cv", "--config", str(configs / "features.yaml"), *common, "--out", str(work / "cv-features")],
        log, sampler, timings, "cv-features", done("cv-features"),
    )  # fmt: skip
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
        log, sampler, timings, "cv-gemma", done("cv-gemma"),
    )  # fmt: skip
    minutes["stacks"] = 0.0
    for name, inputs in STACKS.items():
        oofs = [x for i in inputs for x in ("--oof", str(work / i))]
        argv_stack = ["stack", "--train", str(train), *oofs, "--out", str(work / name)]
        minutes["stacks"] += run(argv_stack, log, sampler, timings, name, False)

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
    pairs = [(st, i) for st, inputs in STACKS.items() for i in inputs]
    # what each input adds: the stacks against one another, and stack(gemma) against the feature cv
    pairs += [("stack", "stack-features"), ("stack", "stack-gemma"), ("stack-gemma", "cv-features")]
    for first, second in pairs:
        comparisons.append(
            {"stack": first, "input": second, **paired(rows_by_name[first], rows_by_name[second])}
        )
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
    main_inputs = STACKS["stack"]
    main_best = min(main_inputs, key=lambda c: by_name[c]["log_loss"])
    main = {
        "stack": "stack",
        "input": main_best,
        "stack_accuracy": by_name["stack"]["accuracy"],
        "stack_log_loss": by_name["stack"]["log_loss"],
        "input_accuracy": by_name[main_best]["accuracy"],
        "input_log_loss": by_name[main_best]["log_loss"],
        **paired(rows_by_name["stack"], rows_by_name[main_best]),
    }
    gemma_probs = rows_by_name["cv-gemma"][0][:, 1]
    folds_gemma = sorted(work.glob("cv-gemma/fold*/manifest.json"))
    fold_metrics = [json.loads(f.read_text()).get("metrics", {}) for f in folds_gemma]
    gemma = {
        "oof_p_b_std": float(gemma_probs.std()),
        "oof_p_b_min": float(gemma_probs.min()),
        "oof_p_b_max": float(gemma_probs.max()),
        "oof_p_b_within_0.45_0.55": float(((gemma_probs > 0.45) & (gemma_probs < 0.55)).mean()),
        "fold_eval_log_loss": [m.get("log_loss") for m in fold_metrics],
        "fold_eval_accuracy": [m.get("accuracy") for m in fold_metrics],
        "fold_eval_flip_rate": [m.get("eval_flip_rate") for m in fold_metrics],
        "fold_train_loss": [m.get("train_loss") for m in fold_metrics],
    }
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
        # commands whose output a previous run on this --work made count with that run's minutes
        "minutes_total": round(
            (time.perf_counter() - started) / 60
            + sum(c["minutes"] - c["rerun_minutes"] for c in log if c.get("reused")),
            2,
        ),
        # the machine may be shared: a 1-minute load average above the core count means the
        # minutes above include waiting for other processes
        "load_average_1min": sampler.summary(),
        "table": table,
        "stack_vs_inputs": comparisons,
        "best": best,
        "main_stack_vs_best_input": main,
        "gemma_oof": gemma,
        "notes": notes,
        "commands": log,
    }
    write_results(args.out, report, markdown(report), f"work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
