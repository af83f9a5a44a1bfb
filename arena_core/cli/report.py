"""``arena report``: argument parsing for :func:`arena_core.evaluation.report.build_report`.

Only argparse and the standard library at import time, so registering the subcommand keeps
``arena --help`` instant; the report (pandas, matplotlib) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["REPORT_HELP", "cmd_report", "register"]

REPORT_HELP = """\
Write an evaluation report for one or more prediction files on a labelled file.

Inputs:
  --data FILE        labelled competition-schema file (.parquet/.csv with winner), e.g. a held-out fold
                     or real_pref_dev.parquet; a 'source' column adds per-source tables.
  --pred PROBS       predictions as parquet/csv: id,p_a,p_b[,p_tie] (arena predict), or a submission.csv.
                     Repeat for several models. A --save-probs file holding several models (column
                     'model') is split into one model each; per-order columns p_a_ab,p_b_ab,p_a_ba,p_b_ba
                     (swapped pass mapped back to the original columns) feed the position-bias section.
  --name NAME        display name per --pred, same order (default: the file name).
  --swapped PROBS    predictions of the same model on the same file with response_a and response_b
                     exchanged, as the model wrote them (their p_a is the original B). Give one per --pred
                     in the same order ('-' for none), or NAME=PROBS for a named model.

Outputs (in --out DIR):
  report.md          headline table vs the length baseline, per-source tables, plots embedded by relative
                     link, and each model's full evaluation; every number is what 'arena evaluate' prints.
  by_language.png, by_length_difference.png, calibration.png, position_bias.png (when swapped predictions
  are available)
  summary.json       the headline numbers (accuracy, log loss, ECE, position bias) per model.
"""


def _default_names(paths: list[str]) -> list[str]:
    """File stems, made unique with the parent folder (run1/probs, run2/probs) when they collide."""
    stems = [Path(p).stem for p in paths]
    names = [
        f"{Path(p).parent.name}/{Path(p).stem}" if stems.count(s) > 1 else s for p, s in zip(paths, stems)
    ]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _parse_swapped(items: list[str], names: list[str]) -> dict[str, str]:
    """--swapped values: NAME=PROBS, or one per --pred in order with '-' for none."""
    named = {}
    positional = []
    for item in items:
        m = re.match(r"^(.+?)=(.+)$", item)
        if m and m.group(1) in names:
            named[m.group(1)] = m.group(2)
        else:
            positional.append(item)
    if positional:
        if named or len(positional) != len(names):
            raise ValueError(
                f"--swapped: give one file per --pred in the same order ({len(names)}; '-' for none) "
                f"or NAME=PROBS with NAME one of {names}; got {items}"
            )
        named = {n: p for n, p in zip(names, positional) if p != "-"}
    return named


def cmd_report(args: argparse.Namespace) -> int:
    """``arena report``: read the inputs, build the report, print where it went and the headline."""
    from arena_core.data.competition import load_competition_file
    from arena_core.evaluation.predictions_io import read_predictions
    from arena_core.evaluation.report import build_report

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("arena: error: arena report needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    data = load_competition_file(args.data, verbose=True).frame
    names = args.name or _default_names(args.pred)
    if len(names) != len(args.pred):
        raise ValueError(
            f"--name given {len(names)} time(s) but --pred {len(args.pred)} time(s); give one name per --pred"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    preds = {n: read_predictions(p) for n, p in zip(names, args.pred)}
    swapped = {n: read_predictions(p) for n, p in _parse_swapped(args.swapped or [], names).items()}
    path = build_report(
        data,
        preds,
        args.out,
        swapped=swapped,
        include_length_baseline=not args.no_baseline,
        title=args.title,
        data_label=str(args.data),
        min_language_rows=args.min_language_rows,
    )
    summary = json.loads((path.parent / "summary.json").read_text(encoding="utf-8"))
    print(f"wrote {path} (+ summary.json, {', '.join(summary['plots'])})")
    for name, m in summary["models"].items():
        acc = "-" if m["accuracy"] is None else f"{m['accuracy']:.4f}"
        ll = "-" if m["log_loss"] is None else f"{m['log_loss']:.4f}"
        print(f"  {name}: n={m['n']} accuracy {acc} log loss {ll}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``arena report`` to the ``arena`` parser's subcommands."""
    p = subparsers.add_parser(
        "report",
        help="Markdown + PNG evaluation report (per language, length, calibration, position bias)",
        description=REPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data", required=True, metavar="LABELLED_FILE", help="labelled .parquet/.csv (with winner)"
    )
    p.add_argument(
        "--pred", required=True, action="append", metavar="PROBS", help="predictions file (repeatable)"
    )
    p.add_argument("--name", action="append", metavar="NAME", help="name for each --pred, in order")
    p.add_argument(
        "--swapped",
        action="append",
        metavar="PROBS",
        help="A/B-swapped predictions per --pred ('-' for none) or NAME=PROBS",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="folder for report.md, the PNGs and summary.json"
    )
    p.add_argument("--title", default="Preference model report", help="report title (default: %(default)s)")
    p.add_argument("--no-baseline", action="store_true", help="leave the length baseline out")
    p.add_argument(
        "--min-language-rows",
        type=int,
        default=10,
        metavar="K",
        help="pool languages with fewer labelled rows into 'other (n<K)' in the plot (default: %(default)s)",
    )
    p.set_defaults(func=cmd_report)
    return p
