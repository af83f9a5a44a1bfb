"""What ``arena train`` and ``arena cv`` read from their arguments alike: the run config (file,
``--set`` overrides, the ``--model`` shortcut) and the training files (``--train``, else the
competition folder's train file)."""

from __future__ import annotations

import argparse


def config_from_args(args: argparse.Namespace):
    """``--config`` with ``--set`` and ``--model`` applied; ValueError (exit 2) without a model."""
    from arena_core.config import apply_overrides, load_config

    cfg = load_config(args.config, args.set)
    if args.model:
        cfg = apply_overrides(cfg, [f"model.path={args.model}"])
    if not cfg.model.path and cfg.model.kind == "transformer":
        raise ValueError(
            "no model: set model.path in the config, or pass --model DIR / --set model.path=DIR "
            "(or train a feature run: --config configs/features.yaml, no base model)"
        )
    return cfg


def train_files_from_args(args: argparse.Namespace) -> list[str]:
    """The ``--train`` files as given, else the train file found under ``--data-dir`` (or here)."""
    if args.train:
        return list(args.train)
    from arena_core.data.competition import find_competition_file

    return [str(find_competition_file(args.data_dir or ".", "train"))]
