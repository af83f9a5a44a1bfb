"""What the training notebook calls: the ``arena train`` command, a resume from an earlier session's
output, and a launch with one process per GPU.

Kaggle's GPU T4 x2 shows two GPUs to the notebook. ``Trainer`` in the notebook's own process would
fall into DataParallel (see :mod:`arena_core.training.processes`), so training always runs in a
child process: ``torchrun`` with one process per GPU, or plain Python with ``CUDA_VISIBLE_DEVICES``
set to one GPU on purpose. A Kaggle session ends at 12 h: ``train.max_time`` saves a checkpoint
before that, the notebook's output keeps the run directory (``OUT_DIR``: adapter, tokenizer,
manifest and ``checkpoints/``), and the next session attaches that output and sets ``RESUME_FROM``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from arena_core.kaggle.mounts import Mounts
from arena_core.training.resume import CHECKPOINTS, RECORD_NAME, list_checkpoints

__all__ = ["launch_command", "pick_base_model", "prepare_resume", "run_training", "train_command"]

_NOT_COPIED = (".lock", ".partial", ".tmp")


def pick_base_model(mounts: Mounts, given: str | os.PathLike | None = None) -> Path:
    """``BASE_MODEL_DIR``: the folder given, else the one base checkpoint attached outside a bundle."""
    if given:
        path = Path(given)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"BASE_MODEL_DIR {path}: no config.json there; base checkpoints found: "
                f"{[str(b) for b in mounts.bases] or 'none'}"
            )
        return path
    outside = [b for b in mounts.bases if mounts.bundle is None or mounts.bundle not in b.parents]
    if len(outside) == 1:
        return outside[0]
    what = (
        "no base checkpoint"
        if not outside
        else f"{len(outside)} base checkpoints ({', '.join(map(str, outside))})"
    )
    raise FileNotFoundError(
        f"{what} attached under {mounts.root}: attach the model (Add Input -> Models, e.g. Gemma 2 / "
        "transformers / gemma-2-2b-it) or set BASE_MODEL_DIR to its folder (the one holding config.json)"
    )


def _copy_writable(src: Path, dest: Path) -> None:
    """Copy a folder's files WITHOUT their modes: Kaggle inputs are read-only, and Trainer later
    deletes old checkpoints (save_total_limit), which a read-only copy would refuse."""
    for folder, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        target = dest / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if not name.endswith(_NOT_COPIED):
                shutil.copyfile(Path(folder, name), target / name)


def prepare_resume(
    resume_from: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    root: str | os.PathLike,
    *,
    anyway: bool = False,
) -> list[str]:
    """Continue an earlier session's run: copy its latest checkpoint (and the record of the config
    and data it belongs to, which ``arena train --resume`` checks) into ``out_dir`` (inputs are
    read-only) and return ``["--resume"]`` (``["--resume-anyway"]`` with ``anyway``: resume even
    though the config or data differ, as ``RESUME_ANYWAY`` asks); ``[]`` when there is nothing to resume.

    ``resume_from``: the earlier run directory (a folder, or its name under ``root``, e.g. the
    training notebook's output attached to this one). A checkpoint already in ``out_dir`` (this
    session was restarted) is used as it is.
    """
    out = Path(out_dir)
    flag = ["--resume-anyway" if anyway else "--resume"]
    if list_checkpoints(out / CHECKPOINTS):
        return flag
    if not resume_from:
        if anyway:
            print("RESUME_ANYWAY: no checkpoint in OUT_DIR and no RESUME_FROM; training starts at step 0")
        return []
    src = Path(resume_from)
    if not src.is_dir():
        hits = sorted({p.parent for p in Path(root).glob(f"**/{resume_from}/{CHECKPOINTS}")})
        if len(hits) != 1:
            raise FileNotFoundError(
                f"RESUME_FROM {resume_from!r}: "
                + (f"{len(hits)} folders of that name: {hits}" if hits else f"no such run under {root}")
                + "; attach the earlier training notebook's output (Add Input -> Notebooks) or give its folder"
            )
        src = hits[0]
    found = list_checkpoints(src / CHECKPOINTS)
    if not found:
        raise FileNotFoundError(f"RESUME_FROM {src}: no checkpoints/checkpoint-N inside; nothing to resume")
    latest = found[0]
    dest = out / CHECKPOINTS / latest.name
    _copy_writable(latest, dest)
    record = src / CHECKPOINTS / RECORD_NAME  # what config and data the checkpoint belongs to
    if record.is_file():
        shutil.copyfile(record, out / CHECKPOINTS / record.name)
    if (src / "train_log.jsonl").is_file() and not (out / "train_log.jsonl").exists():
        shutil.copyfile(src / "train_log.jsonl", out / "train_log.jsonl")  # the loss curve continues
    print(
        f"resuming from {latest} (copied to {dest})" + (", whatever config and data it had" if anyway else "")
    )
    return flag


def train_command(
    mounts: Mounts,
    config: str | os.PathLike | None,
    base_model_dir: str | os.PathLike | None,
    overrides: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    max_time: str | None = None,
    resume_from: str | os.PathLike | None = None,
    resume_anyway: bool = False,
) -> list[str]:
    """The ``arena train`` arguments for the discovered (or given) data and base model; ``resume_anyway``
    passes ``--resume-anyway`` instead of ``--resume`` (see :func:`prepare_resume`)."""
    from arena_core.kaggle.notebook_argv import train_argv

    if mounts.competition is None:
        raise FileNotFoundError(f"no competition folder under {mounts.root}: attach the competition")
    extra = [f"train.max_time={max_time}"] if max_time else []
    base = pick_base_model(mounts, base_model_dir)
    argv = train_argv(mounts.competition, config, base, [*overrides, *extra], out_dir)
    return argv + prepare_resume(resume_from, out_dir, mounts.root, anyway=bool(resume_anyway))


def launch_command(argv: Sequence[str], gpus: str | int = "auto", visible: int = 0) -> tuple[list[str], dict]:
    """(command, environment changes) that run ``arena <argv>`` with one process per GPU.

    ``gpus``: ``"auto"`` = every visible GPU (``torchrun`` when 2+), ``1`` = one GPU on purpose
    (``CUDA_VISIBLE_DEVICES=0``), ``N`` = the first N GPUs. With no GPU, N > 1 runs N CPU
    processes (gloo), as the tests do.
    """
    if gpus == "auto":
        n = max(visible, 1)
    else:
        try:
            n = int(gpus)
        except (TypeError, ValueError):
            raise ValueError(f"GPUS={gpus!r}: 'auto' or a number of GPUs") from None
        if n < 1 or (visible and n > visible):
            raise ValueError(f"GPUS={gpus!r}: {visible} GPU(s) visible")
    env = {"TOKENIZERS_PARALLELISM": "false"}
    if visible:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(n))
    module = ["-m", "arena_core.cli", *argv]
    if n == 1:
        return [sys.executable, *module], env
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(n),
        *module,
    ], env


def visible_gpus() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_training(argv: Sequence[str], gpus: str | int = "auto") -> int:
    """Launch training in a child process (see :func:`launch_command`), its output streamed here."""
    visible = visible_gpus()
    cmd, env = launch_command(argv, gpus, visible)
    kind = f"{visible} GPU(s) visible" if visible else "no GPU: CPU"
    print(
        f"{kind}; running: {' '.join(cmd[1:])}"
        + (f" with CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}" if visible else "")
    )
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read1(4096), b""):
        sys.stdout.write(chunk.decode("utf-8", "replace"))
        sys.stdout.flush()
    return proc.wait()
