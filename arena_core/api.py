"""A small public API for notebooks: the library functions the ``arena`` commands call, by name.

::

    import arena_core as ac

    run = ac.train("train.parquet", "runs/r1", "configs/tiny-cpu.yaml", model="path/to/base")
    held_out = ac.load("eval.parquet")        # canonical frame: id, prompt, response_a/b, label, language
    print(ac.evaluate(held_out, ac.predict(held_out, run.run_dir)))   # accuracy, log loss per group
    test = ac.load("test.parquet")
    ac.write_submission(ac.predict(test, run.run_dir), "submission.csv", test)   # validated, atomic

Each function is what the command of the same name runs (``arena train``, ``arena predict``,
``arena evaluate``, ...), without argument parsing and without printing a submission first.
Everything heavy (pandas, torch, transformers) is imported inside the functions, so
``import arena_core`` stays cheap; ``arena_core.load`` etc. reach this module lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from arena_core.config import EncodingConfig, RunConfig
    from arena_core.encoding.encoder import EncodedPairs
    from arena_core.evaluation.metrics import EvalResult
    from arena_core.training.outdir import TrainResult

__all__ = [
    "baseline",
    "encode",
    "evaluate",
    "load",
    "predict",
    "run_config",
    "train",
    "write_submission",
]


def load(path: str | Path, *, verbose: bool = False) -> pd.DataFrame:
    """A competition file (WSDM parquet or LMSYS csv, train or test) as the canonical frame.

    Columns ``id, prompt, response_a, response_b, label, language`` (``label`` 0 = A won, 1 = B,
    2 = tie, missing on test files); broken text is repaired and bad files raise ``DataError``
    naming the file, column and row id, exactly as ``arena validate`` reads them.
    """
    from arena_core.data.competition import load_competition_file

    return load_competition_file(path, verbose=verbose).frame


def run_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """A run configuration: a YAML/JSON file (or the defaults) with ``section.key=value`` overrides."""
    from arena_core.config import load_config

    return load_config(path, list(overrides))


def encode(frame: pd.DataFrame, tokenizer: Any, encoding: EncodingConfig | None = None) -> EncodedPairs:
    """Token ids of every row in both A/B orders, as training and prediction encode them.

    ``tokenizer``: a Hugging Face tokenizer, or a folder holding one (a run's ``tokenizer/`` or a
    base model). ``encoding``: a run's ``config.encoding`` (default: the library defaults).
    """
    from arena_core.config import EncodingConfig
    from arena_core.encoding.encoder import PairEncoder

    if isinstance(tokenizer, (str, Path)):
        from arena_core.models.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    return PairEncoder(tokenizer, encoding or EncodingConfig()).encode_frame(frame, progress=False)


def train(
    train_file: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    config: str | Path | RunConfig | None = None,
    *,
    model: str | Path | None = None,
    overrides: Sequence[str] = (),
    eval_file: str | Path | None = None,
    soft_labels: str | Path | None = None,
    resume: bool = False,
    resume_anyway: bool = False,
    merge: bool = False,
) -> TrainResult:
    """Fine-tune a backbone with LoRA/QLoRA into the run directory ``out_dir`` (``arena train``).

    ``config``: a file, a :class:`~arena_core.config.RunConfig`, or None for the defaults;
    ``overrides`` (``section.key=value``) and ``model`` (the base checkpoint folder, i.e.
    ``model.path``) are applied on top. ``train_file`` may be several sources; ``soft_labels`` a
    teacher's probabilities (see ``arena train --soft-labels``). Returns the run directory and its metrics.
    """
    from arena_core.config import ConfigError, RunConfig, apply_overrides, load_config
    from arena_core.training.trainer import train as run_training

    if isinstance(config, RunConfig):
        cfg = apply_overrides(config, list(overrides))
    else:
        cfg = load_config(config, list(overrides))
    if model is not None:
        cfg = apply_overrides(cfg, [f"model.path={model}"])
    if not cfg.model.path and cfg.model.kind == "transformer":
        raise ConfigError("no model: pass model=DIR (a local checkpoint folder) or set model.path")
    return run_training(
        cfg,
        train_file,
        out_dir,
        eval_file=eval_file,
        soft_labels=soft_labels,
        resume=resume or resume_anyway,
        resume_anyway=resume_anyway,
        merge=merge,
    )


def predict(
    frame: pd.DataFrame,
    runs: str | Path | Sequence[str | Path],
    *,
    weights: Sequence[float] | None = None,
    tta: str | None = None,
    device: str | None = None,
    time_budget: float | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Probabilities ``id, p_a, p_b[, p_tie]`` for every row of ``frame`` from one run or an ensemble.

    The engine ``arena predict`` runs: one replica per visible GPU (or the CPU), token-budget
    batches, ``tta`` (``none`` | ``swap`` | ``uncertain``; default: the first run's
    ``predict.tta``), ``weights`` one per run. ``time_budget`` (seconds) is the contract: rows the
    models do not reach in time get the length heuristic, so every row always has probabilities.
    """
    import time

    from arena_core.evaluation.length import length_baseline

    # The run loading and engine ``arena predict`` uses, shared rather than copied.
    from arena_core.inference.members import score_runs, visible_devices
    from arena_core.models.runs import read_run_config

    start = time.monotonic()
    paths = [str(runs)] if isinstance(runs, (str, Path)) else [str(r) for r in runs]
    if not paths:
        raise ValueError("predict needs at least one run directory")
    if weights is not None and len(weights) != len(paths):  # before any file is read
        raise ValueError(f"{len(weights)} weight(s) for {len(paths)} run(s)")
    pcfg = read_run_config(paths[0]).predict
    pcfg.time_budget_s = None  # the deadline below is the one contract
    result = score_runs(
        paths,
        frame,
        pcfg,
        tta=tta or pcfg.tta,
        weights=weights,
        devices=visible_devices(device),
        deadline=None if time_budget is None else start + float(time_budget),
        fallback_probs=length_baseline(frame),
        progress=progress,
    )
    return result.frame()


def baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """The length heuristic's probabilities (longer response wins), the floor every model must beat."""
    from arena_core.evaluation.length import length_baseline

    return length_baseline(frame)


def evaluate(frame: pd.DataFrame, preds: pd.DataFrame | str | Path) -> EvalResult:
    """Accuracy and log loss of ``preds`` on the labelled rows of ``frame``, overall and per group.

    ``preds``: a frame ``id, p_a, p_b[, p_tie]`` or a predictions / submission file, as
    ``arena evaluate --pred`` reads it. ``print(result)`` shows the tables ``arena evaluate`` prints.
    """
    from arena_core.evaluation.metrics import evaluate as score
    from arena_core.evaluation.predictions_io import read_predictions

    pred_file = preds if isinstance(preds, (str, Path)) else None
    if pred_file is not None:
        preds = read_predictions(pred_file)
    return score(frame, preds, pred_file=pred_file)


def write_submission(
    preds: pd.DataFrame, path: str | Path, test: pd.DataFrame | None = None, fmt: str = "wsdm"
) -> Path:
    """Write ``preds`` as a validated Kaggle ``submission.csv``, atomically; returns its path.

    With ``test`` (the frame predicted) every test id must appear exactly once and rows follow
    its order. ``fmt``: ``wsdm`` (id, winner) or ``lmsys`` (id, winner_model_a/b, winner_tie).
    """
    from arena_core.data.submission import write_submission as write

    return write(preds, path, fmt=fmt, test_ids=None if test is None else test["id"])
