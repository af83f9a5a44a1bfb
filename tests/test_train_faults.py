"""Training-side faults: resume safety, one writer per --out, and failures that end in one line.

Everything runs the real ``arena train`` path (``arena_core.cli.main.main``) or ``train()`` on the
tiny Gemma-2; checks that need no model must fail before any model is loaded, so most of these
take well under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from test_train import CONFIG, toy_rows

from arena_core.cli.main import main
from arena_core.config import load_config
from arena_core.models.runs import RunError, read_manifest
from arena_core.training.trainer import train

LOCK_NAME = ".arena-train.lock"  # the lock file in --out; a failed run must not leave it behind

TINY = [
    "encoding.max_length=96",
    "encoding.min_part_tokens=8",
    "train.fold=-1",
    "train.warmup_ratio=0",
    "train.eval_steps=1000",
    "train.logging_steps=1",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_gemma2_dir):
    root = tmp_path_factory.mktemp("faults")
    toy_rows(48, 0).to_parquet(root / "train.parquet")
    toy_rows(48, 7).to_parquet(root / "other.parquet")
    return root, tiny_gemma2_dir


def cli_train(model_dir, train_file, out, *sets, flags=()) -> list[str]:
    argv = ["train", "--config", CONFIG, "--model", str(model_dir), "--train", str(train_file)]
    argv += ["--out", str(out), *flags]
    for s in [*TINY, *sets]:
        argv += ["--set", s]
    return argv


def one_line_error(capsys, rc: int, expected_rc: int = 2) -> str:
    """The command failed with exactly one 'arena: error:' line on stderr, no traceback.

    ``expected_rc``: 2 for an input the user must change, 1 for a failure while writing (the rule
    in ``arena --help``)."""
    err = capsys.readouterr().err  # progress bars may come first; the error is one line of its own
    assert rc == expected_rc, err
    errors = [line[line.index("arena: error: ") :] for line in err.splitlines() if "arena: error: " in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def leftovers(out: Path) -> list[str]:
    """Temporary files or a lock that a failed run must not leave behind."""
    if not out.exists():
        return []
    return [str(p) for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == LOCK_NAME]


def all_tensors_finite(ckpt: Path) -> bool:
    from safetensors.torch import load_file

    return all(bool(torch.isfinite(t).all()) for t in load_file(ckpt / "adapter_model.safetensors").values())


class Interrupt:
    """A TrainerCallback (built lazily) that simulates a preemption after ``step``."""

    def __new__(cls, step: int):
        from transformers import TrainerCallback

        class _Interrupt(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == step:
                    raise KeyboardInterrupt("simulated preemption")

        return _Interrupt()


@pytest.fixture(scope="module")
def interrupted(data, tmp_path_factory):
    """A run preempted after step 5 of 6: checkpoint-2 and checkpoint-4 on disk, never finished."""
    root, model_dir = data
    out = tmp_path_factory.mktemp("interrupted") / "run"
    cfg = load_config(CONFIG, [f"model.path={model_dir}", *TINY, "train.max_steps=6", "train.save_steps=2"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg, root / "train.parquet", out, extra_callbacks=[Interrupt(5)])
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    assert not (out / LOCK_NAME).exists()  # released on the way out
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- resume
def test_resume_refuses_other_config_or_data_unless_told(data, interrupted, tmp_path, capsys):
    root, model_dir = data
    out = copy_run(interrupted, tmp_path / "run")
    same = ["train.max_steps=6", "train.save_steps=2"]
    rc = main(
        cli_train(
            model_dir, root / "train.parquet", out, *same, "train.learning_rate=5e-3", flags=["--resume"]
        )
    )
    err = one_line_error(capsys, rc)
    assert (
        "arena_run.json" in err and "train.learning_rate: 0.001 -> 0.005" in err and "--resume-anyway" in err
    )
    rc = main(cli_train(model_dir, root / "other.parquet", out, *same, flags=["--resume"]))
    err = one_line_error(capsys, rc)
    assert "training data differs" in err
    assert leftovers(out) == []

    # told to: it continues from checkpoint-4 and the manifest says what was overridden
    rc = main(
        cli_train(
            model_dir,
            root / "train.parquet",
            out,
            *same,
            "train.learning_rate=5e-3",
            flags=["--resume-anyway"],
        )
    )
    assert rc == 0, capsys.readouterr().err
    manifest = read_manifest(out)
    assert manifest["resumed_from"] == "checkpoint-4" and manifest["status"] == "complete"
    assert manifest["resumed_anyway_over"] == ["train.learning_rate: 0.001 -> 0.005"]
    assert manifest["config"]["train"]["learning_rate"] == 5e-3
    assert manifest["metrics"]["global_step"] == 6


def test_resume_refuses_a_base_with_the_same_config_but_other_weights(data, interrupted, tmp_path, capsys):
    """Issue 19: resuming on another checkpoint of the same architecture trained on silently and
    recorded the new base, so predict's base check later passed a mismatched adapter."""
    from arena_core.models.backbones import make_tiny_gemma2
    from arena_core.models.runs import file_sha256

    root, model_dir = data
    other = make_tiny_gemma2(tmp_path / "other-base", seed=1)
    assert file_sha256(other / "config.json") == file_sha256(model_dir / "config.json")
    out = copy_run(interrupted, tmp_path / "run")
    same = ["train.max_steps=6", "train.save_steps=2"]
    rc = main(cli_train(other, root / "train.parquet", out, *same, flags=["--resume"]))
    err = one_line_error(capsys, rc)
    assert "base model weights differ" in err and "--resume-anyway" in err
    assert leftovers(out) == []
    # the same base copied elsewhere (a new session's mount) is the same base: it resumes
    moved = tmp_path / "moved-base"
    shutil.copytree(model_dir, moved)
    assert main(cli_train(moved, root / "train.parquet", out, *same, flags=["--resume"])) == 0
    assert read_manifest(out)["resumed_from"] == "checkpoint-4"


def test_resume_falls_back_past_a_partly_written_checkpoint(data, interrupted, tmp_path, capsys):
    root, model_dir = data
    out = copy_run(interrupted, tmp_path / "run")
    state = out / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    state.write_text(state.read_text()[:50])  # cut off mid-save
    rc = main(
        cli_train(
            model_dir,
            root / "train.parquet",
            out,
            "train.max_steps=6",
            "train.save_steps=2",
            flags=["--resume"],
        )
    )
    printed = capsys.readouterr().out
    assert rc == 0
    assert f"skipping checkpoint-4: {state} is not a valid trainer state" in printed
    assert "resuming from" in printed and "checkpoint-2" in printed
    manifest = read_manifest(out)
    assert manifest["resumed_from"] == "checkpoint-2" and manifest["metrics"]["global_step"] == 6
    steps = [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps.count(3) == steps.count(4) == 2  # trained again after falling back to checkpoint-2


def test_a_fresh_run_never_mixes_with_an_unfinished_runs_checkpoints(data, interrupted, tmp_path, capsys):
    root, model_dir = data
    out = copy_run(interrupted, tmp_path / "run")
    rc = main(cli_train(model_dir, root / "train.parquet", out, "train.max_steps=6"))
    err = one_line_error(capsys, rc)
    assert f"{out / 'checkpoints'}: holds checkpoints of an unfinished run (newest checkpoint-4)" in err
    assert "--resume" in err
    assert (out / "checkpoints" / "checkpoint-4").is_dir()  # nothing lost


# ----------------------------------------------------------------------------- one writer
def test_second_writer_refused_and_a_dead_writers_lock_taken_over(data, tmp_path, capsys):
    root, model_dir = data
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom arena_core.training.outdir import OutputLock\n"
            "OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(cli_train(model_dir, root / "train.parquet", out, "train.max_steps=1"))
        err = one_line_error(capsys, rc)
        assert f"{out / LOCK_NAME}: another training process (pid {holder.pid} on" in err
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock file is stale and is taken over, with a note
    from arena_core.training.outdir import OutputLock

    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
    with OutputLock(out):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over the lock left by pid {holder.pid} (no longer running)" in capsys.readouterr().out
    assert not (out / LOCK_NAME).exists()


# ----------------------------------------------------------------------------- faults end in one line
def test_out_is_an_existing_file(data, tmp_path, capsys):
    root, model_dir = data
    out = tmp_path / "run"
    out.write_text("not a folder")
    err = one_line_error(capsys, main(cli_train(model_dir, root / "train.parquet", out)))
    assert f"{out}: exists and is not a directory" in err
    assert out.read_text() == "not a folder"


@contextlib.contextmanager
def unprivileged():
    """Drop root's write-anywhere power (effective uid nobody) so read-only really is read-only."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_read_only_output_dir_is_refused_before_the_model_loads(data):
    root, _ = data
    base = Path(tempfile.mkdtemp(prefix="arena-read-only-"))  # reachable by the unprivileged user
    base.chmod(0o755)
    out = base / "run"
    out.mkdir()
    out.chmod(0o555)
    cfg = load_config(CONFIG, ["model.path=/no/model/needed/for/this/check", *TINY])
    try:
        with unprivileged(), pytest.raises(RuntimeError, match=r"run: cannot write the run directory there"):
            train(cfg, root / "train.parquet", out)
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o755)
        shutil.rmtree(base)


@contextlib.contextmanager
def file_size_limit(n_bytes: int):
    """Every file this process writes may grow to ``n_bytes``; past it, writes fail (EFBIG) like a full disk."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_failed_checkpoint_write_names_the_checkpoint(data, tmp_path, capsys):
    root, model_dir = data
    out = tmp_path / "run"
    argv = cli_train(model_dir, root / "train.parquet", out, "train.max_steps=2", "train.save_steps=1")
    with file_size_limit(32 * 1024):  # the log and records fit; the adapter weights (~70 KB) do not
        rc = main(argv)
    err = one_line_error(capsys, rc, expected_rc=1)
    assert f"{out / 'checkpoints' / 'checkpoint-1'}: could not be written (" in err
    assert "removed the partial checkpoint" in err
    assert not (out / "checkpoints" / "checkpoint-1").exists() and leftovers(out) == []


def test_nan_stops_before_a_nan_checkpoint_is_written(data, tmp_path, capsys):
    root, model_dir = data
    out = tmp_path / "run"
    sets = ["train.learning_rate=1e12", "train.max_grad_norm=1e30", "train.max_steps=8", "train.save_steps=1"]
    rc = main(cli_train(model_dir, root / "train.parquet", out, *sets, "train.logging_steps=100"))
    err = one_line_error(capsys, rc, expected_rc=1)
    assert "became" in err and "(last learning rate" in err and "nothing from this step was saved" in err
    saved = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert saved  # the steps before the blow-up were checkpointed, and every one of them is finite
    assert all(all_tensors_finite(c) for c in saved), [c.name for c in saved]
    assert leftovers(out) == []


def test_corrupt_records_when_resuming_are_named(data, interrupted, tmp_path, capsys):
    root, model_dir = data
    sets = ["train.max_steps=6", "train.save_steps=2"]

    out = copy_run(interrupted, tmp_path / "a")
    (out / "checkpoints" / "arena_run.json").write_text('{"config": {"trai')
    err = one_line_error(
        capsys, main(cli_train(model_dir, root / "train.parquet", out, *sets, flags=["--resume"]))
    )
    assert f"{out / 'checkpoints' / 'arena_run.json'}: not valid JSON" in err

    out = copy_run(interrupted, tmp_path / "b")  # every checkpoint's trainer state damaged
    for ckpt in (out / "checkpoints").glob("checkpoint-*"):
        (ckpt / "trainer_state.json").write_text("{")
    err = one_line_error(
        capsys, main(cli_train(model_dir, root / "train.parquet", out, *sets, flags=["--resume"]))
    )
    assert "no complete checkpoint to resume from" in err
    assert (
        f"{out / 'checkpoints' / 'checkpoint-4' / 'trainer_state.json'} is not a valid trainer state" in err
    )

    out = copy_run(interrupted, tmp_path / "c")  # a run from before the record: its manifest is the record
    (out / "checkpoints" / "arena_run.json").unlink()
    (out / "manifest.json").write_text("{not json")
    err = one_line_error(
        capsys, main(cli_train(model_dir, root / "train.parquet", out, *sets, flags=["--resume"]))
    )
    assert f"{out / 'manifest.json'}: not valid JSON" in err
    with pytest.raises(RunError, match=r"manifest.json: not valid JSON"):
        read_manifest(out)
    for d in ("a", "b", "c"):
        assert leftovers(tmp_path / d) == []


def test_checkpoint_problem_spots_cut_off_files(interrupted, tmp_path):
    from arena_core.training.resume import checkpoint_problem

    source = interrupted / "checkpoints" / "checkpoint-4"
    assert checkpoint_problem(source) is None
    ckpt = copy_run(source, tmp_path / "w")
    weights = ckpt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert checkpoint_problem(ckpt) == f"{weights} is truncated"
    weights.unlink()
    assert checkpoint_problem(ckpt) == f"{ckpt} holds no model or adapter weights"
    ckpt = copy_run(source, tmp_path / "o")
    opt = ckpt / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])
    assert checkpoint_problem(ckpt) == f"{opt} is truncated"


def test_save_steps_off_the_eval_grid_is_refused_before_the_model_loads(data, tmp_path, capsys):
    root, model_dir = data
    argv = cli_train(model_dir, root / "train.parquet", tmp_path / "run", "train.fold=0")
    rc = main([*argv, "--set", "train.eval_steps=3", "--set", "train.save_steps=4"])
    err = one_line_error(capsys, rc)
    assert "train.save_steps=4 must be a multiple of train.eval_steps=3" in err and "select_best" in err
    assert not (tmp_path / "run").exists()
