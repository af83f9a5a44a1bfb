"""Is the training loss scaled right under gradient accumulation and DDP?

One optimizer step over the same 8 rows, cut three ways (8 rows x 1 micro-batch, 2 x 4, 1 x 8) in
one process, and optionally over two processes (``--ddp``: 4 x 1, 2 x 2, 1 x 4 per process). The
data set is exactly those 8 rows, so every layout sees the same rows in its first step. With the
loss a true per-row mean, the logged loss and the pre-clipping gradient norm of that step are the
same for every layout; a loss inflated by the accumulation factor (or the world size) shows up as
a multiple.

    python benchmarks/grad_accumulation.py [--ddp] [--work DIR]

Only the public ``train`` API and the run directory are used, so the same script measures an older
checkout (``PYTHONPATH=that/checkout``) and another transformers stack (run it with that Python).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "tiny-cpu.yaml"
COMMON = [
    "encoding.max_length=96",
    "encoding.min_part_tokens=8",
    "train.max_steps=1",
    "train.logging_steps=1",
    "train.save_steps=100",
    "train.eval_steps=100",
    "train.fold=-1",
    "train.swap_augmentation=none",
    "train.learning_rate=1e-4",
    "train.warmup_ratio=0",
    "lora.dropout=0",
]


def first_step(run_dir: Path) -> dict:
    """Loss and gradient norm of step 1 from the run's log, and the manifest's train_loss."""
    log = [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines()]
    step = next(x for x in log if "grad_norm" in x)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {
        "loss": step["loss"],
        "grad_norm": step["grad_norm"],
        "train_loss": manifest["metrics"]["train_loss"],
    }


def single_process(model_dir: Path, data: Path, work: Path, batch: int, accum: int) -> dict:
    from arena_core.config import load_config
    from arena_core.training.trainer import train

    overrides = [
        f"model.path={model_dir}",
        *COMMON,
        f"train.per_device_batch_size={batch}",
        f"train.gradient_accumulation_steps={accum}",
    ]
    out = work / f"single-b{batch}-ga{accum}"
    train(load_config(CONFIG, overrides), data, out)
    return first_step(out)


def two_processes(model_dir: Path, data: Path, work: Path, batch: int, accum: int) -> dict:
    out = work / f"ddp-b{batch}-ga{accum}"
    sets = [*COMMON, f"train.per_device_batch_size={batch}", f"train.gradient_accumulation_steps={accum}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541"]
    cmd += ["-m", "arena_core.cli", "train", "--config", str(CONFIG), "--model", str(model_dir)]
    cmd += ["--train", str(data), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"torchrun failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return first_step(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ddp", action="store_true", help="also run two CPU processes (torchrun, gloo)")
    ap.add_argument("--work", help="working folder (default: a temp dir)")
    args = ap.parse_args()

    import transformers

    import arena_core
    from arena_core.data.synthetic import make_rows
    from arena_core.models.backbones import make_tiny_gemma2

    work = Path(args.work or tempfile.mkdtemp(prefix="arena-grad-accum-"))
    model_dir = make_tiny_gemma2(work / "tiny-gemma2")
    rows = make_rows(8, 0, "train")
    rows.to_parquet(work / "train.parquet")
    data = work / "train.parquet"
    print(f"transformers {transformers.__version__}, arena_core from {Path(arena_core.__file__).parent}")
    print(
        "| processes | rows per micro-batch | accumulation | step-1 loss | step-1 grad norm | manifest train_loss |"
    )
    print("|---|---|---|---|---|---|")
    layouts = [(1, 8, 1), (1, 2, 4), (1, 1, 8)]
    if args.ddp:
        layouts += [(2, 4, 1), (2, 2, 2), (2, 1, 4)]
    for world, batch, accum in layouts:
        run = single_process if world == 1 else two_processes
        r = run(model_dir, data, work, batch, accum)
        print(
            f"| {world} | {batch} | {accum} | {r['loss']:.4f} | {r['grad_norm']:.4f} | {r['train_loss']:.4f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
