"""``arena notebooks``: write or check the generated Kaggle notebooks (:mod:`arena_core.kaggle.notebooks`).

The generator imports only the standard library at import time (nbformat when it runs), so
registering the subcommand keeps ``arena --help`` instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from arena_core.kaggle.notebooks import (
    DEFAULT_TRAIN_CONFIG,
    INFER_NOTEBOOK,
    TRAIN_NOTEBOOK,
    check_notebooks,
    write_notebooks,
)

__all__ = ["cmd_notebooks", "register"]


def cmd_notebooks(args: argparse.Namespace) -> int:
    """Write both notebooks into --out, or with --check say which differ (exit 1)."""
    config = None if args.train_config == "" else Path(args.train_config)
    if args.check:
        problems = check_notebooks(args.out, config)
        for p in problems:
            print(p)
        if problems:
            print(f"regenerate with: arena notebooks --out {args.out}")
            return 1
        print(f"{args.out}: {INFER_NOTEBOOK} and {TRAIN_NOTEBOOK} match the generators")
        return 0
    for path in write_notebooks(args.out, config):
        print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """Add ``notebooks`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "notebooks",
        help="write (or --check) the Kaggle inference and training notebooks",
        description=(
            f"Write {INFER_NOTEBOOK} and {TRAIN_NOTEBOOK} (thin notebooks: parameters, offline install from "
            "the bundle's wheels, one 'arena predict' / 'arena train' call) into --out. The committed files in "
            "kaggle/ are these, byte for byte; --check compares instead of writing and exits 1 on a difference."
        ),
    )
    p.add_argument(
        "--out", default="kaggle", metavar="DIR", help="folder for the notebooks (default: %(default)s)"
    )
    p.add_argument("--check", action="store_true", help="compare with the files in --out; write nothing")
    p.add_argument(
        "--train-config",
        default=str(DEFAULT_TRAIN_CONFIG),
        metavar="FILE",
        help="run config whose values become the train notebook's default OVERRIDES (default: "
        "configs/gemma2-2b-qlora-t4.yaml; '' for none)",
    )
    p.set_defaults(func=cmd_notebooks)
