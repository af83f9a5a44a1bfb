"""The ``arena`` command: one entry point, one subcommand per stage.

Heavy libraries (torch, transformers) are imported inside the commands that need them, so
``arena --help`` and the data commands start instantly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from arena_core import __version__
from arena_core.cli.exits import EXIT_RULE

EPILOG = (
    "Run 'arena COMMAND --help' for the inputs and outputs of each command; every command takes -v, "
    "--progress and --no-progress. "
)


def _print_err(msg: str) -> None:
    print(f"arena: error: {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    from arena_core.data.competition import load_competition_file
    from arena_core.data.sources import find_leakage

    ok = True
    test = load_competition_file(args.against).frame if args.against else None
    for path in args.files:
        loaded = load_competition_file(path)
        frame, report = loaded.frame, loaded.report
        print(report.summary())
        print(f"  {report.schema_line()}")
        langs = frame["language"].value_counts()
        shown = ", ".join(f"{k} {v}" for k, v in langs.head(10).items())
        more = f" (+{len(langs) - 10} more)" if len(langs) > 10 else ""
        print(f"  languages: {shown}{more}")
        if frame["label"].notna().any():
            counts = frame["label"].value_counts().sort_index()
            names = {0: "model_a", 1: "model_b", 2: "tie"}
            print("  winners: " + ", ".join(f"{names[int(k)]} {v}" for k, v in counts.items()))
        else:
            print("  unlabelled (test file)")
        lengths = frame[["prompt", "response_a", "response_b"]].apply(lambda c: c.str.len())
        print(
            "  median characters: "
            + ", ".join(f"{c} {int(lengths[c].median())}" for c in lengths.columns)
            + "; max: "
            + ", ".join(f"{c} {int(lengths[c].max())}" for c in lengths.columns)
        )
        empty = (lengths == 0).sum()
        if empty.any():
            print("  empty texts kept as '': " + ", ".join(f"{c} {int(v)}" for c, v in empty.items() if v))
            ok = ok and not args.strict
        if test is not None and Path(path).resolve() != Path(args.against).resolve():
            leak = find_leakage(frame, test)
            print("  " + leak.summary())
            ok = ok and not (args.strict and leak.total)
    return 0 if ok else 1


# ----------------------------------------------------------------------------- baseline
def cmd_baseline(args: argparse.Namespace) -> int:
    from arena_core.data.competition import LMSYS_TIE_RATE
    from arena_core.data.submission import load_test_file, write_submission
    from arena_core.evaluation.length import length_baseline

    if args.tie_rate is not None and not 0.0 <= args.tie_rate < 1.0:
        raise ValueError(f"--tie-rate must lie in [0, 1), got {args.tie_rate}")
    test, fmt = load_test_file(args.test, args.data_dir, args.format)
    tie = fmt == "lmsys"
    rate = (LMSYS_TIE_RATE if args.tie_rate is None else args.tie_rate) if tie else 0.0
    preds = length_baseline(test, with_tie=tie, tie_prob=rate)
    write_submission(preds, args.out, fmt=fmt, test_ids=test["id"])
    how = f", tie probability {rate:g}" if tie else ""
    print(f"wrote {args.out}: {len(preds)} rows ({fmt} format, length heuristic: longer response wins{how})")
    return 0


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from arena_core.data.competition import load_competition_file
    from arena_core.evaluation.length import length_baseline
    from arena_core.evaluation.metrics import evaluate
    from arena_core.evaluation.predictions_io import read_predictions

    data = load_competition_file(args.data, verbose=True).frame
    if data["label"].isna().any():
        _print_err(f"{args.data}: has no winner labels, cannot evaluate")
        return 2
    if args.pred:
        preds = read_predictions(args.pred)
        what = str(args.pred)
    else:
        preds = length_baseline(data)
        what = "length baseline (longer response wins)"
    result = evaluate(data, preds, data_file=args.data, pred_file=args.pred)
    print(f"evaluation of {what} on {args.data}")
    if preds[["p_a", "p_b"]].isin((0.0, 1.0)).all().all():
        print("note: these are hard 0/1 predictions (e.g. a WSDM submission.csv); log loss is not meaningful")
    print(result.to_text())
    return 0


# ----------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from arena_core.cli.training_args import config_from_args, train_files_from_args
    from arena_core.training.trainer import train

    cfg = config_from_args(args)
    train(
        cfg,
        train_files_from_args(args),
        args.out,
        eval_file=args.eval,
        soft_labels=args.soft_labels,
        resume=args.resume or args.resume_anyway,
        resume_anyway=args.resume_anyway,
        merge=args.merge,
    )
    return 0


# ----------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from arena_core.cli.demo import run_demo

    return run_demo(args, main)


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arena",
        description=(
            "arena_core: train pairwise preference models (which chatbot answer won?) with LoRA/QLoRA, "
            "predict fast with TTA and ensembles, and ship them as an offline Kaggle bundle."
        ),
        epilog=EPILOG + EXIT_RULE,
    )
    parser.add_argument("--version", action="version", version=f"arena_core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        help="report on competition files (rows, languages, repairs, problems)",
        description=(
            "Read WSDM (parquet) or LMSYS (csv) competition files the way training and inference will, "
            "and report rows, languages, winners, text lengths and every repair made (null texts, broken "
            "UTF-8). Problems that cannot be repaired (missing columns, duplicate ids, unknown winners) "
            "stop with an error naming the file, column and row id."
        ),
    )
    p.add_argument("files", nargs="+", help="train/test .parquet or .csv files")
    p.add_argument(
        "--against",
        metavar="TEST",
        help="also report rows of FILES that duplicate a row of this test file (leakage), exactly or with "
        "A and B swapped",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when any text is empty or any row leaks")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "baseline",
        help="write a submission from the length heuristic (longer response wins)",
        description=(
            "Predict every row of the test file with the length heuristic and write a validated "
            "submission.csv. Input: DIR/test.parquet or DIR/test.csv (or --test FILE). Output: --out, "
            "in WSDM format (id,winner) or LMSYS format (id,winner_model_a,winner_model_b,winner_tie), "
            "chosen from DIR/sample_submission.csv when present."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="competition folder holding test.parquet or test.csv")
    src.add_argument("--test", help="the test file itself")
    p.add_argument(
        "--out", default="submission.csv", help="where to write the submission (default: %(default)s)"
    )
    p.add_argument("--format", choices=["wsdm", "lmsys"], help="submission format (default: detected)")
    p.add_argument(
        "--tie-rate",
        type=float,
        metavar="P",
        help="lmsys format: the tie probability written for every row, A and B sharing the rest "
        "(default: LMSYS's share of ties, 0.31)",
    )
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser(
        "evaluate",
        help="accuracy and log loss of predictions on a labelled file, per source and language",
        description=(
            "Score predictions against a labelled competition-schema file. --pred accepts arena "
            "predictions (id,p_a,p_b[,p_tie] as parquet/csv) or a submission.csv. Without --pred the "
            "length baseline is evaluated. Prints overall, per-source and per-language tables."
        ),
    )
    p.add_argument("--data", required=True, help="labelled .parquet/.csv (with winner)")
    p.add_argument("--pred", help="predictions file (default: evaluate the length baseline)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "train",
        help="fine-tune a backbone with LoRA/QLoRA into a run directory",
        description=(
            "Fine-tune a local Hugging Face checkpoint (model.path) as a preference classifier with LoRA or "
            "QLoRA on Hugging Face Trainer. Input: a labelled WSDM/LMSYS file (--train, or DIR/train.* with "
            "--data-dir); one fold is held out for evaluation (train.fold, -1 for none) unless --eval is "
            "given. Output: RUN_DIR with adapter/ (or merged/), tokenizer/, config.yaml, manifest.json "
            "(config, data fingerprint, library versions, metrics) and train_log.jsonl. Several GPUs: "
            "launch with 'torchrun --nproc_per_node N -m arena_core.cli train ...' or 'accelerate launch'."
        ),
    )
    p.add_argument("--config", help="YAML/JSON run config (see configs/); defaults apply to missing keys")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.learning_rate=1e-4 --set lora.r=32 (repeatable)",
    )
    p.add_argument("--model", help="shortcut for --set model.path=DIR (a local checkpoint directory)")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--train",
        action="append",
        metavar="FILE",
        help="labelled training file (.parquet/.csv); repeat for several sources (WSDM parquet, LMSYS csv, "
        "canonical parquet): each row keeps its source, duplicates across sources (same prompt and "
        "responses, either order) are dropped and counted",
    )
    src.add_argument("--data-dir", help="competition folder holding train.parquet or train.csv")
    p.add_argument("--eval", help="separate labelled evaluation file (instead of a held-out fold)")
    p.add_argument(
        "--soft-labels",
        metavar="PROBS",
        help="a teacher's probabilities per row id (arena cv's oof.parquet or arena predict --save-probs): "
        "loss = train.distill_alpha * CE(winner) + (1 - alpha) * T^2 * KL(teacher || student) at "
        "T = train.distill_temperature; rows of --train without a winner (pseudo-labelled pairs) train "
        "on the KL term alone; swap augmentation swaps the soft labels too",
    )
    p.add_argument("--out", default="runs/run", help="run directory to write (default: %(default)s)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest complete checkpoint in --out (refused when the config or data differ)",
    )
    p.add_argument(
        "--resume-anyway",
        action="store_true",
        help="like --resume, but continue even though the config or data differ (the manifest records it)",
    )
    p.add_argument(
        "--merge", action="store_true", help="also write merged weights (refused on a 4/8-bit base)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "demo",
        help="run the whole pipeline end to end on a small built-in synthetic competition",
        description=(
            "The whole product on CPU: build a small synthetic competition folder (several languages; "
            "made up, and labelled so), validate it, write the length-baseline submission, convert the "
            "real Gemma-3 270M (GGUF from the package index) into a cached Hugging Face checkpoint once, "
            "fine-tune it with LoRA for a few CPU minutes, predict the test rows with swap TTA into a "
            "validated submission.csv, build the offline Kaggle bundle and check its metadata, and write "
            "a report with plots. Outputs go under --out."
        ),
    )
    p.add_argument("--out", default="demo_out", help="working folder for the demo (default: %(default)s)")
    p.add_argument(
        "--train", help="a labelled competition-schema file to train on instead of the synthetic rows"
    )
    p.add_argument(
        "--quick", action="store_true", help="use a tiny random Gemma-2 instead of Gemma-3 270M (seconds)"
    )
    p.add_argument(
        "--no-download",
        action="store_true",
        help="do not download the wheels the Kaggle image lacks (bitsandbytes) into the bundle",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    from arena_core.cli import cv as cv_cli
    from arena_core.cli import notebooks as notebooks_cli
    from arena_core.cli import predict as predict_cli
    from arena_core.cli import report as report_cli

    cv_cli.register(sub)
    predict_cli.register(sub)
    report_cli.register(sub)
    notebooks_cli.register(sub)

    return parser


def main(argv: list[str] | None = None) -> int:
    from arena_core.cli.exits import add_common_options, apply_common_options, report_error

    parser = build_parser()
    for command in _subcommands(parser):
        add_common_options(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    verbose = bool(getattr(args, "verbose", False))
    # As a command (argv from the command line) SIGTERM cleans up; called from a notebook, the
    # kernel keeps its own signal handling.
    restore = _exit_cleanly_on_sigterm() if argv is None else (lambda: None)
    try:
        apply_common_options(args)
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - every failure ends as one line + a code
        return report_error("arena", exc, verbose)
    finally:
        restore()


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [p for a in actions for p in dict.fromkeys(a.choices.values())]


def _exit_cleanly_on_sigterm():
    """SIGTERM (``timeout``, a scheduler) ends the command through SystemExit, so cleanups run.

    Python's default would stop at once, leaving a half-written temporary file beside the submission.
    Returns a function that puts the previous handler back (handlers can only be set on the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    return lambda: signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
