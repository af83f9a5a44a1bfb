"""Resuming a run: only from its own checkpoints, and only from a complete one.

``checkpoints/arena_run.json`` records, when a run starts, the config and data its checkpoints
belong to. :func:`plan_start` decides before any model is loaded: ``--resume`` continues only a
run with the same config and data (``--resume-anyway`` overrides, and says what differed) from
its newest *complete* checkpoint (:func:`checkpoint_problem` names what a cut-off save lacks);
a fresh run never mixes its checkpoints with another run's.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from arena_core.config import RunConfig, config_to_dict
from arena_core.data.json_records import read_json_object
from arena_core.models.weight_files import safetensors_problem
from arena_core.training.outdir import TrainError, write_text_atomic

RECORD_NAME = "arena_run.json"  # under checkpoints/: the config and data the checkpoints belong to
CHECKPOINTS = "checkpoints"
# Keys that may change between a run and its resumption without changing what is trained.
# train.max_time is the session's clock, not the model's: a second Kaggle session may give more or less.
# train.report_to only says where the logs also go (and records from before it lack the key).
RESUMABLE_CHANGES = (
    "train.logging_steps",
    "train.save_steps",
    "train.save_total_limit",
    "train.max_time",
    "train.report_to",
    "predict.",
)

#: Settings added later, as records written before them ran: such a record means this value.
LEGACY_SETTINGS = {"train.fold_groups": "none"}


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint_step(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """``checkpoint-N`` folders, newest (highest N) first."""
    if not Path(ckpt_root).is_dir():
        return []
    found = [p for p in Path(ckpt_root).glob("checkpoint-*") if p.is_dir() and _checkpoint_step(p) >= 0]
    return sorted(found, key=_checkpoint_step, reverse=True)


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be resumed from (naming the file), or None when it is complete.

    Trainer writes the weights, optimizer, scheduler and RNG state first and ``trainer_state.json``
    last, so a checkpoint cut off mid-save lacks it or holds a truncated copy.
    """
    state = ckpt / "trainer_state.json"
    if not state.is_file():
        return f"{state} is missing (the save was cut off)"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{state} is not a valid trainer state (partly written?)"
    weights = [
        ckpt / n
        for n in ("adapter_model.safetensors", "model.safetensors", "adapter_model.bin", "pytorch_model.bin")
    ]
    weights = [w for w in weights if w.is_file()] or sorted(ckpt.glob("model-*.safetensors"))
    if not weights:
        return f"{ckpt} holds no model or adapter weights"
    for w in weights:
        if w.suffix == ".safetensors" and safetensors_problem(w) is not None:
            return f"{w} is truncated"
    for name in ("optimizer.pt", "scheduler.pt"):
        f = ckpt / name
        if not f.is_file():
            return f"{f} is missing"
        if not zipfile.is_zipfile(f):
            return f"{f} is truncated"
    return None


def remove_partial_checkpoint(ckpt: Path) -> bool:
    """Delete ``ckpt`` when it is incomplete (nothing can resume from it); True when removed."""
    if ckpt.is_dir() and checkpoint_problem(ckpt) is not None:
        shutil.rmtree(ckpt, ignore_errors=True)
        return True
    return False


# ----------------------------------------------------------------------------- resume
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every setting that changes what is trained."""
    a, b = _flatten(old), _flatten(new)
    a.update({k: v for k, v in LEGACY_SETTINGS.items() if k in b and k not in a})
    lines = []
    for key in sorted(set(a) | set(b)):
        if any(key == r or (r.endswith(".") and key.startswith(r)) for r in RESUMABLE_CHANGES):
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            lines.append(f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
    return lines


def run_differences(old: dict, new: dict) -> list[str]:
    """What differs between two run records (or a manifest): config keys, then the data."""
    diffs = config_differences(old.get("config", {}), new["config"])
    was_base = old.get("base_config_sha256") or (old.get("base_model") or {}).get("config_sha256")
    if was_base and was_base == new.get("base_config_sha256"):
        # the same base mounted at another path (a new session, Kaggle's old or new input layout)
        diffs = [d for d in diffs if not d.startswith("model.path:")]
    was_w = old.get("base_weights_fingerprint") or (old.get("base_model") or {}).get("weights_fingerprint")
    if was_w and was_w != new.get("base_weights_fingerprint"):
        # the same config.json is not the same base: resuming would train an adapter for one base on another
        now_w = str(new.get("base_weights_fingerprint") or "none found")
        diffs.append(
            f"base model weights differ (fingerprint {was_w[7:19]}... -> {now_w[7:19]}...): "
            "another checkpoint of the same architecture"
        )
    pairs = (
        ("data_fingerprint", "training"),
        ("eval_fingerprint", "evaluation"),
        ("soft_fingerprint", "soft-label"),
    )
    for key, which in pairs:
        if (key in old or key == "soft_fingerprint") and old.get(key) != new.get(key):
            was, now = str(old.get(key))[:12], str(new.get(key))[:12]
            diffs.append(f"{which} data differs (fingerprint {was}... -> {now}...)")
    return diffs


@dataclass
class StartPlan:
    """What :func:`plan_start` decided: where to resume from and what it told the user."""

    checkpoint: Path | None = None
    notes: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)  # differences accepted by --resume-anyway


def _previous_record(out: Path) -> tuple[Path, dict] | None:
    """The record of the run the checkpoints belong to; a pre-record run's manifest.json will do."""
    for path in (out / CHECKPOINTS / RECORD_NAME, out / "manifest.json"):
        if path.is_file():
            return path, read_json_object(path, TrainError)
    return None


def newest_complete(found: list[Path]) -> tuple[Path | None, list[str]]:
    """The newest checkpoint of ``found`` (newest first) that can be resumed from, and a note for
    each newer one skipped."""
    notes = []
    for ckpt in found:
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt, notes
        notes.append(f"skipping {ckpt.name}: {problem}")
    return None, notes


def plan_start(out: Path, record: dict, *, resume: bool, resume_anyway: bool = False) -> StartPlan:
    """Decide, before any model is loaded, how this run treats the checkpoints in ``out``.

    ``record`` holds this run's ``config`` (as a dict), ``data_fingerprint`` and
    ``eval_fingerprint``. A fresh run into a finished run's folder removes that run's checkpoints
    (their weights live on in adapter/ until this run replaces them); into an unfinished one it
    refuses, since the user most likely forgot ``--resume``.
    """
    out = Path(out)
    ckpt_root = out / CHECKPOINTS
    found = list_checkpoints(ckpt_root)
    plan = StartPlan()
    try:
        previous = _previous_record(out) if found else None
    except TrainError as exc:
        if not (resume and resume_anyway):
            raise
        previous, plan.overridden = None, [str(exc)]
    if not resume:
        if not found:
            return plan
        finished = previous is not None and previous[1].get("status", "complete") == "complete"
        if not finished:
            raise TrainError(
                f"{ckpt_root}: holds checkpoints of an unfinished run (newest {found[0].name}); continue it "
                f"with --resume, or delete {ckpt_root} (or choose another --out) to start over"
            )
        shutil.rmtree(ckpt_root)
        plan.notes.append(
            f"{ckpt_root}: removed the checkpoints of the earlier, finished run; starting afresh"
        )
        return plan

    if not found:
        plan.notes.append(f"{ckpt_root}: no checkpoint to resume from; starting from step 0")
        return plan
    if previous is not None:
        path, old = previous
        diffs = run_differences(old, record)
        if diffs and not resume_anyway:
            shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
            raise TrainError(
                f"{path}: the checkpoints were trained with a different config or data ({shown}); resume "
                "with the same ones, or pass --resume-anyway to continue regardless"
            )
        plan.overridden = diffs
    elif not resume_anyway:
        raise TrainError(
            f"{ckpt_root / RECORD_NAME}: missing, so the checkpoints cannot be checked against this "
            "config and data; pass --resume-anyway to resume from them regardless"
        )
    elif not plan.overridden:
        plan.overridden = [f"{ckpt_root / RECORD_NAME}: missing"]
    plan.checkpoint, skipped = newest_complete(found)
    plan.notes += skipped
    if plan.checkpoint is None:
        raise TrainError(
            f"{ckpt_root}: no complete checkpoint to resume from ({'; '.join(plan.notes)}); delete "
            f"{ckpt_root} to start over"
        )
    plan.notes.append(f"resuming from {plan.checkpoint}")
    return plan


def write_record(out: Path, record: dict) -> None:
    """Record (atomically) which config and data the checkpoints under ``out`` belong to."""
    root = Path(out) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / RECORD_NAME, json.dumps(record, indent=2, default=str))


def run_record(cfg: RunConfig, data_fingerprint: str, eval_fingerprint: str | None, **extra) -> dict:
    return {
        "config": config_to_dict(cfg),
        "data_fingerprint": data_fingerprint,
        "eval_fingerprint": eval_fingerprint,
        "status": "training",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
