"""``arena predict`` and ``arena plan``: the inference engine behind two subcommands.

``predict`` writes the length-heuristic submission FIRST, so a valid ``submission.csv`` exists
whatever happens later (a crash, a kill at the time limit), then replaces it atomically with the
model's predictions. ``plan`` answers "will this fit in the time limit?" before a GPU is spent.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from arena_core.inference.placement import PLACEMENTS

TTA_HELP = (
    "test-time augmentation: none = one pass; swap = also score every row with A and B exchanged and "
    "average (probabilities mapped back by column); uncertain = after the first pass, re-score swapped "
    "the least certain rows first while time remains (default: the first run's predict.tta)"
)
BUDGET_HELP = (
    "wall-clock budget for the whole command, e.g. 4.5h, 30m, 90s, 1200 (seconds) or 'none'. "
    "Default: 4.5h inside Kaggle (KAGGLE_KERNEL_RUN_TYPE set or /kaggle/working exists), else none. "
    "When the measured throughput projects past it the engine drops TTA, then shortens rows, and "
    "fills rows it cannot reach with the length heuristic"
)


PLACEMENT_HELP = (
    "how a model uses several GPUs: replicas = one copy per GPU (fastest, each GPU must hold the model); "
    "split = one copy cut layer-wise over all GPUs (e.g. fp16 Gemma-2 9B on 2x T4); auto (default) = "
    "replicas when the model fits one GPU with room for activations, else split"
)


def weight_arg(text: str) -> float | str:
    """A ``--weights`` value: a number or a weights file's path (parsed here: no numpy at start-up)."""
    try:
        return float(text)
    except ValueError:
        return text


def _reserve_s(budget: float) -> float:
    """Seconds kept back from the budget for writing the submission and probabilities."""
    return min(120.0, 0.02 * budget)


# ----------------------------------------------------------------------------- predict


def cmd_predict(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    from arena_core.data.atomic_write import check_writable
    from arena_core.data.submission import add_tie_column, load_test_file, write_submission
    from arena_core.data.submission_checks import SubmissionError
    from arena_core.evaluation.metrics import position_bias
    from arena_core.inference.ensemble import check_runs, save_probs
    from arena_core.inference.members import member_names, score_runs, stack_plan, visible_devices
    from arena_core.inference.runtime_plan import detect_time_budget, parse_duration
    from arena_core.inference.safety_net import lmsys_tie_rate, safety_net
    from arena_core.inference.weights import resolve_weights

    budget = parse_duration(args.time_budget) if args.time_budget is not None else detect_time_budget()
    if args.time_budget is None and budget is not None:
        print(f"Kaggle detected: time budget {budget / 3600:g} h (--time-budget none lifts it)")
    # Everything that can fail without a model fails here, in seconds, not after hours of scoring.
    weights = resolve_weights(args.weights, member_names(args.model))  # numbers, or arena ensemble's file
    runs = check_runs(args.model, weights, args.base_dir)
    stack_plan(args.model)  # a stack run must match the other runs before anything is written
    check_writable(args.out, "--out")
    if args.save_probs:
        check_writable(args.save_probs, "--save-probs")
    test, fmt = load_test_file(args.test, args.data_dir, args.format)
    test_ids = test["id"]
    tie_rate = lmsys_tie_rate(runs, fmt)

    fallback, net = safety_net(test, runs, args.safety_net, tie_rate)
    write_submission(fallback, args.out, fmt=fmt, test_ids=test_ids)
    print(f"wrote the safety net to {args.out} first ({net}); it is replaced when the models finish")

    pcfg = runs[0].config.predict
    if args.token_budget is not None:
        pcfg.token_budget = int(args.token_budget)
    if args.max_rows is not None:
        pcfg.max_rows_per_batch = int(args.max_rows)
    if args.ensemble_mode is not None:
        pcfg.ensemble_mode = args.ensemble_mode
    tta = args.tta or pcfg.tta
    pcfg.time_budget_s = None  # the deadline below is the one contract
    deadline = None
    if budget is not None:
        deadline = t_start + budget - _reserve_s(budget)
        print(f"time budget {budget / 3600:.2f} h; engine deadline in {deadline - time.monotonic():.0f} s")

    try:
        result = score_runs(
            args.model,
            test,
            pcfg,
            tta=tta,
            weights=weights,
            devices=visible_devices(args.device),
            calibrate=not args.no_calibration,
            deadline=deadline,
            fallback_probs=fallback,
            progress=not args.no_progress,
            bases=args.base_dir,
            placement=args.placement,
        )
    except Exception as exc:  # noqa: BLE001 - the fallback submission is already on disk
        print(
            f"arena: error: prediction failed ({type(exc).__name__}: {exc}); {args.out} keeps the safety net "
            f"({net})",
            file=sys.stderr,
        )
        return 1
    for line in result.log:
        print(line)
    for name, res in result.members.items():
        both = res.path == "model+swap"
        if both.any():
            bias = position_bias(res.probs_first[both], res.probs_swapped[both])
            print(
                f"[{name}] position bias on {bias['n']} swapped rows: flip rate {bias['flip_rate']:.3f}, "
                f"p(first shown wins) - p(second) = {bias['first_minus_second']:+.3f}"
            )
    preds = result.frame()
    if tie_rate is not None and "p_tie" not in preds.columns:
        preds = add_tie_column(preds, tie_rate)
    try:
        write_submission(preds, args.out, fmt=fmt, test_ids=test_ids)
    except (OSError, SubmissionError) as exc:
        print(f"arena: error: {exc} (it holds the safety net: {net})", file=sys.stderr)
        return 1
    if args.save_probs:
        try:
            save_probs(result, args.save_probs)
        except OSError as exc:
            print(
                f"arena: error: {args.save_probs}: could not write the per-model probabilities: "
                f"{exc.strerror or exc}; {args.out} is complete",
                file=sys.stderr,
            )
            return 1
        print(f"per-model probabilities: {args.save_probs}")
    wall = time.monotonic() - t_start
    print(f"wrote {args.out}: {len(test)} rows ({fmt} format) in {wall:.0f} s")
    if args.project_rows:
        from arena_core.inference.runtime_plan import project_run

        scoring = sum(float(r.stats.get("elapsed_s", 0.0)) for r in result.members.values())
        print(project_run(len(test), int(args.project_rows), scoring, max(wall - scoring, 0.0), budget))
    return 0


# ----------------------------------------------------------------------------- plan


def parse_gpu(text: str) -> tuple[str, int]:
    """``t4x2`` -> ("t4", 2); ``a100`` -> ("a100", 1); ``2`` -> ("gpu", 2)."""
    s = text.strip().lower()
    if s.isdigit():
        return "gpu", int(s)
    m = re.fullmatch(r"([a-z0-9]+?)(?:x(\d+))?", s)
    if not m or (m.group(2) is not None and int(m.group(2)) < 1):
        raise ValueError(f"cannot read --gpu {text!r}; use e.g. t4x2, p100, a100x1, cpu or 2")
    return m.group(1), int(m.group(2) or 1)


def cmd_plan(args: argparse.Namespace) -> int:
    from arena_core.data.competition import load_competition_file
    from arena_core.inference.encoding_cache import encode_cached
    from arena_core.inference.runtime_plan import parse_duration, plan_runtime, probe_throughput
    from arena_core.inference.scoring import Scorer
    from arena_core.models.runs import read_run_config
    from arena_core.models.tokenizer import load_tokenizer

    kind, gpus = parse_gpu(args.gpu)
    cfg = read_run_config(args.model)
    if cfg.model.kind != "transformer":
        print(
            f"{args.model} is a {cfg.model.kind} run: it scores on the CPU, about 25,000 rows in well under 2 "
            "minutes (docs/benchmarks.md); nothing to plan on a GPU"
        )
        return 0
    if args.token_budget is not None:
        cfg.predict.token_budget = int(args.token_budget)
    test = load_competition_file(args.test, verbose=True).frame
    tok_dir = Path(args.model) / "tokenizer"
    run = None
    if tok_dir.is_dir():
        tokenizer = load_tokenizer(tok_dir)
    else:
        from arena_core.models.runs import load_run

        run = load_run(args.model, device=args.device)
        tokenizer = run.tokenizer
    encoded = encode_cached(test, tokenizer, cfg.encoding)
    print(encoded.summary())
    lengths = encoded.lengths
    if args.rows:
        from arena_core.inference.runtime_plan import resample_lengths

        lengths = resample_lengths(encoded.lengths, args.rows)
        print(
            f"projecting {args.rows} rows: token lengths drawn (seeded, with replacement) from the "
            f"{len(encoded.lengths)} row(s) of {args.test}"
        )
    from arena_core.inference.members import planned_workers

    workers = planned_workers(args.model, cfg.model.quantization, kind, gpus, args.placement)
    tta = args.tta or cfg.predict.tta
    stated = {"rows_per_s": args.rows_per_s, "tokens_per_s": args.tokens_per_s}
    if args.rows_per_s is None and args.tokens_per_s is None:
        from arena_core.models.runs import load_run

        run = run or load_run(args.model, device=args.device)
        scorer = Scorer(run.model, run.tokenizer.pad_token_id, device=args.device)
        tokens_per_s, basis = probe_throughput(scorer, encoded, cfg.predict, kind, gpus, args.probe_batches)
        stated = {"tokens_per_s": tokens_per_s, "rows_per_s": None}
    elif args.rows_per_s is not None:
        basis = f"{args.rows_per_s:g} rows/s per worker, as stated with --rows-per-s"
    else:
        basis = f"{args.tokens_per_s:g} tokens/s per worker, as stated with --tokens-per-s"
    plan = plan_runtime(
        lengths,
        rows_per_s=stated["rows_per_s"],
        tokens_per_s=stated["tokens_per_s"],
        gpus=workers,
        tta=tta,
        token_budget=cfg.predict.token_budget,
        max_rows=cfg.predict.max_rows_per_batch,
        pad_multiple=1 if kind == "cpu" else 8,
    )
    plan.basis = basis
    budget = parse_duration(args.time_budget)
    print(f"plan for {kind} x{gpus}, tta={tta}:")
    print(plan.summary(budget))
    return 0


# ----------------------------------------------------------------------------- parser


def register(subparsers) -> None:
    """Add ``predict`` and ``plan`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "predict",
        help="predict a test file with one or more trained runs (TTA, ensembles, time budget)",
        description=(
            "Predict which response won for every row of a test file and write a validated submission. "
            "Input: DIR/test.parquet or DIR/test.csv (or --test FILE) and one or more run directories "
            "written by 'arena train'. Output: --out (every test id exactly once, written atomically; "
            "the length-heuristic submission is written first as a safety net). Several --model runs "
            "form an ensemble, each encoded with its own tokenizer and encoding config. On CUDA one "
            "replica per visible GPU pulls from one shared queue."
        ),
        epilog="example: arena predict --data-dir /kaggle/input/wsdm-cup-multilingual-chatbot-arena "
        "--model runs/gemma2-9b --model runs/gemma2-2b --weights 0.7 0.3 --tta swap --out submission.csv",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", help="competition folder holding test.parquet or test.csv")
    src.add_argument("--test", help="the test file itself (.parquet or .csv)")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="RUN_DIR",
        help="a run directory (repeat for an ensemble)",
    )
    p.add_argument(
        "--weights",
        type=weight_arg,
        nargs="+",
        metavar="W",
        help="one weight per --model, in the same order, or the file 'arena ensemble' wrote (default: equal)",
    )
    p.add_argument(
        "--safety-net",
        default="auto",
        metavar="auto|length|RUN_DIR",
        help="what the submission holds before the models finish, on rows they do not reach in time or score "
        "non-finite, and if they fail: auto (default) = the first feature run among --model (it learned real "
        "preferences; seconds on the CPU), else the length heuristic; length; or a feature run's directory",
    )
    p.add_argument(
        "--no-calibration",
        action="store_true",
        help="ignore the runs' fitted temperatures (calibration.json)",
    )
    p.add_argument("--out", default="submission.csv", help="submission file to write (default: %(default)s)")
    p.add_argument("--tta", choices=["none", "swap", "uncertain"], help=TTA_HELP)
    p.add_argument("--time-budget", metavar="DURATION", help=BUDGET_HELP)
    p.add_argument(
        "--save-probs",
        metavar="FILE",
        help="also write per-model probabilities (parquet: id, model, p_a, p_b[, p_tie], path)",
    )
    p.add_argument(
        "--token-budget",
        type=int,
        metavar="N",
        help="rows x padded length per batch (default: the run's predict.token_budget)",
    )
    p.add_argument("--max-rows", type=int, metavar="N", help="at most N rows per batch (default: the run's)")
    p.add_argument(
        "--ensemble-mode",
        choices=["prob", "logit"],
        help="average probabilities or logits across models and TTA passes (default: the run's)",
    )
    p.add_argument(
        "--format",
        choices=["wsdm", "lmsys"],
        help="submission format (default: from sample_submission.csv beside the test file, else "
        "from the test file's schema)",
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda"], help="default: cuda when available (all visible GPUs)"
    )
    p.add_argument("--placement", choices=PLACEMENTS, default="auto", help=PLACEMENT_HELP)
    p.add_argument(
        "--base-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a base checkpoint to use for an adapter run whose base is not where its manifest (or its "
        "bundle) says, matched by config.json hash; repeatable (the Kaggle notebook passes the mounted models)",
    )
    p.add_argument(
        "--project-rows",
        type=int,
        metavar="N",
        help="after the run, project its time to N rows (the hidden test size) from the throughput it measured",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser(
        "plan",
        help="estimate how long 'arena predict' will take on a test file",
        description=(
            "Encode the test file with the run's tokenizer and encoding config, count the tokens the "
            "engine will compute (token-budget batches, padding included) and estimate the run time from "
            "a stated throughput (--rows-per-s / --tokens-per-s, per GPU, e.g. from an earlier run on the "
            "target) or from a quick probe of a few batches on this machine, and says which it assumed. "
            "--rows N plans for the hidden test size instead of the test file's few public rows. Compares "
            "the estimate with the time budget."
        ),
        epilog="example: arena plan --test test.parquet --model runs/gemma2-9b --gpu t4x2 --rows 25000 "
        "--rows-per-s 1.6",
    )
    p.add_argument("--test", required=True, help="test file (.parquet or .csv)")
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument(
        "--gpu",
        default="t4x2",
        help="target hardware as KINDxCOUNT, e.g. t4x2, p100, a100, cpu (default: %(default)s)",
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--rows-per-s", type=float, metavar="X", help="stated throughput per GPU, rows/s")
    rate.add_argument(
        "--tokens-per-s", type=float, metavar="X", help="stated throughput per GPU, padded tokens/s"
    )
    p.add_argument(
        "--tta", choices=["none", "swap", "uncertain"], help="TTA to plan for (default: the run's)"
    )
    p.add_argument(
        "--time-budget",
        default="4.5h",
        metavar="DURATION",
        help="budget to compare with (default: %(default)s)",
    )
    p.add_argument(
        "--token-budget", type=int, metavar="N", help="rows x padded length per batch (default: the run's)"
    )
    p.add_argument(
        "--probe-batches",
        type=int,
        default=3,
        metavar="N",
        help="batches timed by the probe when no throughput is stated (default: %(default)s)",
    )
    p.add_argument(
        "--device", default=None, help="device for the probe (default: cuda when available, else cpu)"
    )
    p.add_argument(
        "--rows",
        type=int,
        metavar="N",
        help="plan for N rows (e.g. 25000, the hidden rerun), lengths drawn from the test file's rows; "
        "default: the test file's own rows",
    )
    p.add_argument("--placement", choices=PLACEMENTS, default="auto", help=PLACEMENT_HELP)
    p.set_defaults(func=cmd_plan)
