"""``arena stack``: a second stage fitted on the out-of-fold probabilities of other runs.

What the winning pipelines did after their LLMs: a small model that reads each first-stage
model's out-of-fold probabilities beside the pair features and learns when to trust which. It is
cross-validated itself on the inputs' own folds (so its score is out of fold too, printed beside
each input's and the length baseline's), then fitted on every row and saved as a run
(``model.kind: stack``) that ``arena predict`` applies after its members.

Inputs are ``arena cv`` folders. Each must have scored exactly the training rows (every row once)
from the same data (its manifests' fingerprint): probabilities of other rows would teach the
stacker nothing true. Each input is recorded by its recipe (config + data fingerprint, see
:func:`~arena_core.models.runs.recipe_identity`), which is how ``arena predict`` finds the
member runs that stand for it: the cv's folds, its merged folds, or a run on every row.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.config import RunConfig, config_to_dict
from arena_core.data.atomic_write import write_parquet_atomically
from arena_core.data.folds import assign_folds
from arena_core.encoding.features import FEATURE_SET, pair_features, stack_features
from arena_core.training.frames import as_file_list, training_frame
from arena_core.training.outdir import OutputLock, check_output_dir, write_text_atomic

__all__ = ["StackInput", "StackResult", "fit_stack", "read_stack_input"]

PROB_COLS = ("p_a", "p_b", "p_tie")


class StackError(ValueError):
    """An input that cannot be stacked (other data, missing rows, mixed classes); names the file."""


@dataclass
class StackInput:
    name: str
    cv_dir: Path
    oof: pd.DataFrame
    manifest: dict  # of the cv's first fold run: config, data fingerprint
    identity: str

    @property
    def num_labels(self) -> int:
        return int(self.manifest["config"]["model"]["num_labels"])


@dataclass
class StackResult:
    run_dir: Path
    table: pd.DataFrame  # OOF accuracy / log loss of the stack, each input and the length baseline
    metrics: dict


def read_stack_input(path: str | Path) -> StackInput:
    """An ``arena cv`` folder (or its ``oof.parquet``) with the manifest of its first fold."""
    from arena_core.models.runs import RunError, read_manifest, recipe_identity

    path = Path(path)
    cv_dir = path.parent if path.suffix == ".parquet" else path
    oof_path = cv_dir / "oof.parquet"
    if not oof_path.is_file():
        raise StackError(f"{oof_path}: not found; --oof takes an 'arena cv --out' folder that ran to the end")
    folds = sorted(cv_dir.glob("fold*/manifest.json"))
    if not folds:
        raise StackError(f"{cv_dir}: no fold*/manifest.json; is it an 'arena cv' folder?")
    try:
        manifest = read_manifest(folds[0].parent)
    except RunError as exc:
        raise StackError(str(exc)) from None
    oof = pd.read_parquet(oof_path)
    missing = [c for c in ("id", "p_a", "p_b") if c not in oof.columns]
    if missing:
        raise StackError(f"{oof_path}: lacks column(s) {missing}; expected arena cv's oof.parquet")
    return StackInput(cv_dir.name, cv_dir, oof, manifest, recipe_identity(manifest))


def _aligned_probs(inp: StackInput, ids: pd.Series, fingerprint: str) -> np.ndarray:
    """The input's probabilities in the training frame's row order; refuses other data or rows."""
    where = inp.cv_dir / "oof.parquet"
    theirs = inp.manifest.get("data_fingerprint")
    if theirs != fingerprint:
        raise StackError(
            f"{where}: its folds were trained on other data (fingerprint {str(theirs)[:12]}... here "
            f"{fingerprint[:12]}...); run 'arena cv' on the same --train files (and model.num_labels) as 'arena stack'"
        )
    got = inp.oof["id"].astype(str)
    want = ids.astype(str)
    if got.duplicated().any():
        raise StackError(
            f"{where}: {int(got.duplicated().sum())} repeated id(s), e.g. {got[got.duplicated()].iloc[0]!r}"
        )
    lacking = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if lacking or extra:
        raise StackError(
            f"{where}: does not cover the training rows: {len(lacking)} missing (e.g. {lacking[:3]}), "
            f"{len(extra)} not in the training files (e.g. {extra[:3]})"
        )
    cols = [c for c in PROB_COLS if c in inp.oof.columns]
    probs = inp.oof.set_index(got)[cols].loc[want.tolist()].to_numpy(dtype=np.float64)
    if not np.isfinite(probs).all():
        raise StackError(f"{where}: probabilities contain NaN/inf")
    return probs


def _folds(inputs: list[StackInput], frame: pd.DataFrame, k: int, seed: int, groups: str) -> np.ndarray:
    """The first input's own folds when it recorded them, so no row is scored by a stacker whose
    training rows' probabilities came from a model that saw it."""
    oof = inputs[0].oof
    if "fold" in oof.columns:
        return oof.set_index(oof["id"].astype(str))["fold"].loc[frame["id"].astype(str).tolist()].to_numpy()
    return assign_folds(frame, k, seed, groups)


def _score_rows(name: str, labels: np.ndarray, probs: np.ndarray) -> dict:
    from arena_core.evaluation.metrics import accuracy, log_loss

    return {
        "predictions": name,
        "n": len(labels),
        "accuracy": accuracy(labels, probs),
        "log_loss": log_loss(labels, probs),
    }


def fit_stack(
    cfg: RunConfig,
    train_files,
    oof_paths: list[str | Path],
    out_dir: str | Path,
    *,
    use_features: bool = True,
) -> StackResult:
    """Cross-validate and fit the stacker; write the stack run to ``out_dir``."""
    from arena_core.evaluation.length import length_baseline
    from arena_core.evaluation.tables import format_table
    from arena_core.models.booster import fit_booster, predict_both_orders
    from arena_core.models.runs import data_fingerprint, write_manifest
    from arena_core.training.feature_run import prompt_groups

    started = time.monotonic()
    if not oof_paths:
        raise StackError("arena stack needs at least one --oof folder")
    inputs = [read_stack_input(p) for p in oof_paths]
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise StackError(f"--oof folders must have distinct names, got {names}")
    ks = {i.num_labels for i in inputs}
    if len(ks) != 1:
        raise StackError(
            "cannot stack 2-class and 3-class runs: " + ", ".join(f"{i.name}: {i.num_labels}" for i in inputs)
        )
    cfg = copy.deepcopy(cfg)
    cfg.model.kind, cfg.model.num_labels, cfg.model.path = "stack", ks.pop(), ""
    out = Path(out_dir)
    check_output_dir(out)
    files = as_file_list(train_files)
    frame = training_frame(files, cfg.model.num_labels, verbose=True)
    fingerprint = data_fingerprint(frame)
    probs = {i.name: _aligned_probs(i, frame["id"], fingerprint) for i in inputs}
    feats = pair_features(frame, progress=len(frame) > 5000) if use_features else None
    matrix = stack_features(probs, feats)
    labels = frame["label"].to_numpy(dtype=np.int64)
    groups = prompt_groups(frame)
    folds = _folds(inputs, frame, cfg.train.n_folds, cfg.train.seed, cfg.train.fold_groups)
    oof = np.zeros((len(frame), cfg.model.num_labels))
    for f in np.unique(folds):
        held = folds == f
        fitted = fit_booster(
            matrix.values[~held], labels[~held], matrix.anti, matrix.names, cfg.booster,
            num_labels=cfg.model.num_labels, seed=cfg.train.seed, feature_set=FEATURE_SET,
            groups=groups[~held], log=lambda *_: None,
        )  # fmt: skip
        oof[held] = predict_both_orders(fitted, matrix.values[held])[0]
    with_tie = cfg.model.num_labels == 3
    tie_rate = float((labels == 2).mean()) if with_tie else 0.0
    base = length_baseline(frame, with_tie=with_tie, tie_prob=tie_rate)[
        list(PROB_COLS[: cfg.model.num_labels])
    ]
    rows = [_score_rows("stack (OOF)", labels, oof)]
    rows += [_score_rows(f"{name} (OOF)", labels, p) for name, p in probs.items()]
    rows.append(_score_rows("length baseline", labels, base.to_numpy()))
    table = pd.DataFrame(rows)
    print(
        f"stack over {', '.join(names)}{' + pair features' if use_features else ''}, {len(np.unique(folds))} folds:"
    )
    print(format_table(table))
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out):
        final = fit_booster(
            matrix.values, labels, matrix.anti, matrix.names, cfg.booster,
            num_labels=cfg.model.num_labels, seed=cfg.train.seed, feature_set=FEATURE_SET, groups=groups,
        )  # fmt: skip
        final.save(out)
        cols = {c: oof[:, j] for j, c in enumerate(PROB_COLS[: cfg.model.num_labels])}
        table_oof = pd.DataFrame({"id": frame["id"], **cols}).assign(fold=folds, label=labels)
        write_parquet_atomically(table_oof, out / "oof.parquet", "stack OOF predictions")
        import yaml

        write_text_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        metrics = {**{k: rows[0][k] for k in ("n", "accuracy", "log_loss")}, "rounds": final.rounds}
        metrics["oof_table"] = table.to_dict(orient="records")
        metrics["train_seconds"] = round(time.monotonic() - started, 2)
        write_manifest(
            out, cfg, base_path=None, fingerprint=fingerprint, metrics=metrics,
            extra={
                "status": "complete",
                "kind": "stack",
                "stack_inputs": [{"name": i.name, "cv_dir": str(i.cv_dir), "identity": i.identity} for i in inputs],
                "stack_uses_features": use_features,
                "train_file": " + ".join(map(str, files)),
                "train_labels": frame.attrs.get("winner_counts", {}),
            },
        )  # fmt: skip
    (out / "stack_report.md").write_text(
        f"# stack over {', '.join(names)}\n\n" + format_table(table, markdown=True) + "\n", encoding="utf-8"
    )
    print(
        f"stack run written to {out} ({json.dumps({k: metrics[k] for k in ('accuracy', 'log_loss', 'rounds')}, default=float)})"
    )
    return StackResult(out, table, metrics)
