"""``arena cv``, ``arena stack``, ``arena calibrate`` and ``arena ensemble``: the steps after one training run.

k folds with out-of-fold predictions, a temperature fitted where the model did not train, and
ensemble weights fitted on out-of-fold predictions (see docs/recipes.md for whole pipelines).
"""

from __future__ import annotations

import argparse


def cmd_cv(args: argparse.Namespace) -> int:
    from arena_core.cli.training_args import config_from_args, train_files_from_args
    from arena_core.config import apply_overrides
    from arena_core.inference.members import visible_devices
    from arena_core.training.cv import run_cv

    cfg = config_from_args(args)
    if args.folds is not None:
        cfg = apply_overrides(cfg, [f"train.n_folds={args.folds}"])
    if cfg.train.n_folds < 2:
        raise ValueError(
            f"--folds (train.n_folds) must be at least 2 for out-of-fold predictions, got {cfg.train.n_folds}"
        )
    files = train_files_from_args(args)
    devices = visible_devices(args.device)
    run_cv(
        cfg,
        files,
        args.out,
        tta=args.tta,
        merge_folds=args.merge_folds,
        eval_file=args.eval,
        devices=devices,
        progress=not args.no_progress,
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from arena_core.inference.calibrate import calibrate_run

    cal = calibrate_run(args.model, args.data, args.probs, tta=args.tta, progress=not args.no_progress)
    print(f"{args.model}: {cal.summary()}; written to calibration.json ('arena predict' applies it)")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from arena_core.inference.weights import fit_ensemble_files

    labels = None
    if args.data:
        from arena_core.data.competition import load_competition_file

        labels = load_competition_file(args.data).frame
    fitted, combined = fit_ensemble_files(args.probs, labels, args.mode)
    fitted.save(args.out)
    print(fitted.summary())
    if args.save_probs:
        from arena_core.data.atomic_write import write_parquet_atomically

        write_parquet_atomically(combined, args.save_probs, "weighted predictions")
        print(
            f"wrote the weighted predictions ({len(combined)} rows) to {args.save_probs} (usable as --soft-labels)"
        )
    print(
        f"wrote {args.out}; use it with 'arena predict --model RUN ... --weights {args.out}' (runs matched by name: "
        'every run must be named in the file) or WEIGHTS = "<path>" in the inference notebook'
    )
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from arena_core.cli.training_args import train_files_from_args
    from arena_core.config import load_config
    from arena_core.training.stack import fit_stack

    cfg = load_config(args.config, args.set)
    result = fit_stack(
        cfg, train_files_from_args(args), args.oof, args.out, use_features=not args.no_features
    )
    print(
        f"apply it after its members: arena predict --model RUN ... --model {result.run_dir} (each --oof cv "
        "stands for its fold runs, its merged_folds, or an 'arena train' run with the same config and files)"
    )
    return 0


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON run config (see configs/); defaults apply to missing keys")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    p.add_argument("--model", help="shortcut for --set model.path=DIR (a local checkpoint directory)")


def register(subparsers) -> None:
    """Add ``cv``, ``stack``, ``calibrate`` and ``ensemble`` to an ``argparse`` subparsers object."""
    tta_choices = ["none", "swap", "uncertain"]
    p = subparsers.add_parser(
        "cv",
        help="train k folds and predict every training row out of fold (OOF), with a CV table",
        description=(
            "Train train.n_folds folds (stratified by label and language, every prompt's rows in one fold "
            "unless train.fold_groups=none; the same split 'arena train' uses for train.fold) and score each fold's held-out rows with the inference engine (TTA as "
            "configured). Output under --out: fold{i}/ run directories, oof.parquet (id, p_a, p_b[, p_tie], "
            "fold, label: every training row exactly once), a temperature fitted on the OOF "
            "(calibration.json, also stored in every fold run), cv_report.md and cv.json (accuracy and "
            "log loss overall, per source and language, beside the length baseline). Resumable: a finished "
            "fold is skipped. --merge-folds also writes merged_folds/, one run whose adapter is the "
            "exact mean of the folds' LoRA updates (ranks stacked), and scores it."
        ),
    )
    _add_config_args(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--train", action="append", metavar="FILE", help="labelled training file; repeat for several sources"
    )
    src.add_argument("--data-dir", help="competition folder holding train.parquet or train.csv")
    p.add_argument("--folds", type=int, metavar="K", help="number of folds (default: train.n_folds)")
    p.add_argument("--out", default="runs/cv", help="folder for the folds and OOF (default: %(default)s)")
    p.add_argument("--tta", choices=tta_choices, help="TTA when scoring OOF rows (default: predict.tta)")
    p.add_argument("--merge-folds", action="store_true", help="average the folds' adapters into one run")
    p.add_argument("--eval", metavar="FILE", help="labelled file to score the merged-folds run on")
    p.add_argument("--device", choices=["cpu", "cuda"], help="device for OOF scoring (default: cuda if any)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while scoring")
    p.set_defaults(func=cmd_cv)

    p = subparsers.add_parser(
        "stack",
        help="fit a second stage on the out-of-fold probabilities of 'arena cv' runs (plus pair features)",
        description=(
            "Fit gradient-boosted trees (the booster section of --config) on each --oof cv folder's "
            "out-of-fold probabilities and the pair features of the training rows, cross-validated on the "
            "first input's folds: its OOF accuracy and log loss are printed beside each input's and the "
            "length baseline's. Refuses OOF files that do not cover the training rows exactly or whose folds "
            "were trained on other data (manifest fingerprint). Output: a stack run (booster/, manifest.json, "
            "config.yaml, oof.parquet, stack_report.md) that 'arena predict' applies after its members: pass "
            "the runs standing for each input (the cv's fold runs, its merged_folds, or an 'arena train' run "
            "with the same config on the same files) and the stack run, all as --model."
        ),
        epilog="example: arena stack --data-dir DIR --oof runs/cv-gemma --oof runs/cv-features --out runs/stack",
    )
    p.add_argument(
        "--oof", action="append", required=True, metavar="CV_DIR", help="an 'arena cv --out' folder (repeat)"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--train", action="append", metavar="FILE", help="the training files the cv folders used"
    )
    src.add_argument("--data-dir", help="competition folder holding train.parquet or train.csv")
    p.add_argument(
        "--config", help="YAML/JSON config for the booster and the folds (default: library defaults)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    p.add_argument("--no-features", action="store_true", help="stack the input probabilities only")
    p.add_argument("--out", default="runs/stack", help="stack run directory to write (default: %(default)s)")
    p.set_defaults(func=cmd_stack)

    p = subparsers.add_parser(
        "calibrate",
        help="fit a run's temperature on labelled rows it did not train on",
        description=(
            "Fit the temperature T that minimises log loss (probabilities ~ p^(1/T); decisions unchanged) "
            "and write RUN_DIR/calibration.json, which 'arena predict' then applies to that run. The "
            "probabilities come from scoring --data with the run (its TTA), or from --probs (arena cv's "
            "oof.parquet or arena predict --save-probs). Prints the log loss before and after."
        ),
    )
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="the run to calibrate")
    p.add_argument(
        "--data", metavar="FILE", help="labelled file the run did not train on (e.g. its eval fold)"
    )
    p.add_argument("--probs", metavar="FILE", help="ready predictions instead of scoring --data")
    p.add_argument("--tta", choices=tta_choices, help="TTA when scoring --data (default: the run's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser(
        "ensemble",
        help="fit ensemble weights on out-of-fold predictions (log loss, weights >= 0 summing to 1)",
        description=(
            "Fit one weight per member (>= 0, summing to 1) minimising the log loss of the combined "
            "probabilities, combined as 'arena predict' does (--mode prob|logit). Members: each --probs "
            "file (arena cv's oof.parquet is one member named after its folder; an arena predict "
            "--save-probs file holds one per model). Labels: --data, else the files' label column. Writes "
            "a weights file that 'arena predict --weights FILE' and the inference notebook read."
        ),
    )
    p.add_argument("--probs", action="append", required=True, metavar="FILE", help="predictions (repeat)")
    p.add_argument("--data", metavar="FILE", help="labelled file (default: the label column of --probs)")
    p.add_argument("--mode", choices=["prob", "logit"], default="prob", help="how members are combined")
    p.add_argument("--out", default="ensemble_weights.json", help="weights file (default: %(default)s)")
    p.add_argument(
        "--save-probs",
        metavar="FILE",
        help="also write the weighted predictions on the labelled rows (id, p_a, p_b[, p_tie], label) as "
        "parquet: soft labels from several teachers for 'arena train --soft-labels'",
    )
    p.set_defaults(func=cmd_ensemble)
