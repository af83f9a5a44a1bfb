"""Does a run trained on today's stack load, with the same logits, on the competition-era stack?

Trains a tiny Gemma-2 LoRA run with the installed (pinned) stack, scores a few rows, then builds a
virtualenv with transformers 4.47.1 + peft 0.14.0 (torch and the rest from the interpreter running
this script, as the Kaggle image of the competition had them), loads the same run there through ``arena_core.models.runs.load_run`` and compares
the logits. Exit code 0 means they match.

    python scripts/check_compat_stack.py [--venv /tmp/venv-kaggle-2024] [--keep]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OLD_STACK = ["transformers==4.47.1", "peft==0.14.0"]

SCORE = r"""
import json, sys
import numpy as np, pandas as pd, torch, transformers, peft
from arena_core.models.runs import load_run
from arena_core.encoding.encoder import PairEncoder
from arena_core.encoding.batching import collate
from arena_core.data.competition import load_competition_file
run = load_run(sys.argv[1], quiet=True)
frame = load_competition_file(sys.argv[2]).frame
enc = PairEncoder(run.tokenizer, run.config.encoding).encode_frame(frame)
batch = collate(enc.input_ids, run.tokenizer.pad_token_id, "right")
with torch.inference_mode():
    logits = run.model(**batch).logits.float().numpy()
print(json.dumps({"transformers": transformers.__version__, "peft": peft.__version__,
                  "logits": logits.tolist(), "drift": run.drift}))
"""


def score(python: str, run_dir: Path, data: Path) -> dict:
    out = subprocess.run(
        [python, "-c", SCORE, str(run_dir), str(data)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    if out.returncode:
        raise SystemExit(f"scoring with {python} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "arena-venv-tf447"))
    ap.add_argument("--work", default=None, help="where to write the tiny run (default: a temp dir)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import numpy as np

    from arena_core.config import load_config
    from arena_core.data.synthetic import make_rows
    from arena_core.models.backbones import make_tiny_gemma2
    from arena_core.training.trainer import train

    work = Path(args.work or tempfile.mkdtemp(prefix="arena-compat-"))
    model_dir = make_tiny_gemma2(work / "tiny-gemma2")
    make_rows(80, 0, "train").to_parquet(work / "train.parquet")
    make_rows(12, 1, "test").to_parquet(work / "rows.parquet")
    cfg = load_config(
        REPO / "configs" / "tiny-cpu.yaml",
        [
            f"model.path={model_dir}",
            "encoding.max_length=96",
            "encoding.min_part_tokens=8",
            "train.max_steps=4",
            "train.fold=-1",
            "train.save_steps=100",
        ],
    )
    train(cfg, work / "train.parquet", work / "run")

    env_dir = Path(args.venv)
    py = env_dir / "bin" / "python"
    if not py.exists():
        print(f"creating {env_dir} with {' '.join(OLD_STACK)} (torch from this interpreter)")
        venv.EnvBuilder(with_pip=True).create(env_dir)
        # --system-site-packages would expose the *base* interpreter, which on a fresh machine has no
        # torch; a .pth appends this interpreter's site-packages after the venv's own, so the venv's
        # transformers/peft pins win and torch comes from here.
        purelib = subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        here = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
        (Path(purelib) / "arena_this_interpreter.pth").write_text("\n".join(here) + "\n", encoding="utf-8")
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", *OLD_STACK], check=True)

    new = score(sys.executable, work / "run", work / "rows.parquet")
    old = score(str(py), work / "run", work / "rows.parquet")
    diff = float(np.abs(np.array(new["logits"]) - np.array(old["logits"])).max())
    print(f"today's stack:  transformers {new['transformers']}, peft {new['peft']}")
    print(f"Kaggle 2024:    transformers {old['transformers']}, peft {old['peft']}")
    print(f"max |logit difference| over {len(new['logits'])} rows: {diff:.3g}")
    if old["drift"]:
        print("drift reported on the old stack: " + "; ".join(old["drift"]))
    ok = diff <= 1e-4
    print("OK: the run loads with the same logits" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
