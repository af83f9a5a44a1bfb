"""Training on Kaggle: the time cap, one process per GPU (never DataParallel), resuming an earlier
session's output, and the install step's wheel rules. CPU only; torchrun runs with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arena_core.kaggle.install import plan_wheels
from arena_core.kaggle.mounts import discover
from arena_core.kaggle.steps import infer_argv, resolve_runs
from arena_core.kaggle.train_launch import launch_command, pick_base_model, prepare_resume
from arena_core.training.processes import single_process_problem
from arena_core.training.time_cap import TimeCap

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "tiny-cpu.yaml"


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_time_cap_stops_before_the_cap_with_room_for_eval_and_save():
    clock = Clock()
    cap = TimeCap(600, clock=clock)
    clock.t = 30.0  # loading the model and encoding the data took 30 s: not a step
    cap.began()
    stops = []
    for step in range(1, 100):
        clock.t += 10.0  # a 10 s step
        if step == 20:  # an evaluation (50 s) and a checkpoint (40 s) happened after step 20
            stops.append(cap.step_done())
            clock.t += 50
            cap.evaluated()
            clock.t += 40
            cap.saved()
            continue
        if cap.step_done():
            stops.append(step)
            break
    # margin = 2 x 10 s step + 50 s eval + 40 s save = 110 s: stop at the first step where t + 110 >= 600
    assert cap.margin() == 110 and stops[-1] == 37 and clock.t == 490
    assert cap.steps[0] == 10.0  # the first step is timed from the start of training, not of loading
    quick = TimeCap(30, clock=Clock())
    quick.clock.t = 1.0
    assert quick.step_done()  # under the 60 s minimum margin: the first step is the last
    with pytest.raises(ValueError, match="must be positive"):
        TimeCap(0)


def test_max_time_is_read_before_anything_loads(tmp_path):
    from arena_core.config import load_config
    from arena_core.training.trainer import train

    cfg = load_config(CONFIG, [f"model.path={tmp_path}", "train.max_time=eleven hours"])
    with pytest.raises(ValueError, match=r"train.max_time: cannot read a duration from 'eleven hours'"):
        train(cfg, tmp_path / "train.parquet", tmp_path / "out")
    assert load_config(CONFIG).train.max_time == ""  # old configs and run directories still load


def test_one_process_with_several_gpus_is_refused():
    assert single_process_problem(1, 0) is None and single_process_problem(1, 1) is None
    assert single_process_problem(2, 2) is None  # torchrun: one process per GPU
    msg = single_process_problem(1, 2)
    assert "2 GPUs are visible to one training process" in msg and "DataParallel" in msg
    assert "torchrun --nproc_per_node 2" in msg and "CUDA_VISIBLE_DEVICES=0" in msg


def test_launch_command_one_process_per_gpu():
    argv = ["train", "--out", "run"]
    cmd, env = launch_command(argv, "auto", visible=2)
    assert cmd[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "arena_core.cli",
        *argv,
    ]
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"
    cmd, env = launch_command(argv, 1, visible=2)  # one GPU on purpose: the other is hidden
    assert cmd[1:] == ["-m", "arena_core.cli", *argv] and env["CUDA_VISIBLE_DEVICES"] == "0"
    cmd, env = launch_command(argv, "auto", visible=0)
    assert cmd[1:] == ["-m", "arena_core.cli", *argv] and "CUDA_VISIBLE_DEVICES" not in env
    with pytest.raises(ValueError, match=r"GPUS=3: 2 GPU\(s\) visible"):
        launch_command(argv, 3, visible=2)
    with pytest.raises(ValueError, match=r"GPUS='two'"):
        launch_command(argv, "two", visible=2)


def write(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_prepare_resume_copies_the_latest_checkpoint_writable(tmp_path):
    earlier = tmp_path / "input" / "notebooks" / "jdoe" / "arena-core-train" / "g2b"
    for n in (8, 16):
        write(
            earlier / "checkpoints" / f"checkpoint-{n}" / "trainer_state.json", json.dumps({"global_step": n})
        )
    write(earlier / "checkpoints" / "checkpoint-16" / "stale.lock", "")
    write(earlier / "train_log.jsonl", '{"step": 16}\n')
    write(earlier / "checkpoints" / "arena_run.json", json.dumps({"config": {}, "data_fingerprint": "x"}))
    for p in [earlier, *earlier.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        out = tmp_path / "working" / "g2b"
        assert prepare_resume("", out, tmp_path / "input") == []
        assert prepare_resume("g2b", out, tmp_path / "input") == ["--resume"]  # found by name
        copied = out / "checkpoints" / "checkpoint-16"
        assert json.loads((copied / "trainer_state.json").read_text())["global_step"] == 16
        assert not (copied / "stale.lock").exists() and not (out / "checkpoints" / "checkpoint-8").exists()
        assert os.access(copied / "trainer_state.json", os.W_OK) and os.access(copied, os.W_OK)
        assert (out / "train_log.jsonl").read_text() == '{"step": 16}\n'
        assert json.loads((out / "checkpoints" / "arena_run.json").read_text())["data_fingerprint"] == "x"
        # a restarted session that already has a checkpoint uses its own
        assert prepare_resume("no-such-run", out, tmp_path / "input") == ["--resume"]
        with pytest.raises(FileNotFoundError, match=r"RESUME_FROM 'nope': no such run under"):
            prepare_resume("nope", tmp_path / "fresh", tmp_path / "input")
        with pytest.raises(FileNotFoundError, match=r"no checkpoints/checkpoint-N inside"):
            prepare_resume(tmp_path / "input", tmp_path / "fresh", tmp_path / "input")
    finally:
        for p in [earlier, *earlier.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def complete_checkpoint(folder: Path, step: int) -> Path:
    """What Trainer leaves in checkpoint-N: weights, optimizer, scheduler, trainer_state.json."""
    import zipfile

    ckpt = folder / "checkpoints" / f"checkpoint-{step}"
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    ckpt.mkdir(parents=True)
    (ckpt / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    for name in ("optimizer.pt", "scheduler.pt"):
        with zipfile.ZipFile(ckpt / name, "w") as z:
            z.writestr("data.pkl", b"x")
    write(ckpt / "trainer_state.json", json.dumps({"global_step": step}))
    return ckpt


def test_a_new_session_resumes_with_another_time_cap_and_mount_path(tmp_path):
    """Session 2 mounts the same base elsewhere (another input layout) and may get another
    MAX_TIME; neither changes what is trained. Another base does."""
    from arena_core.config import load_config
    from arena_core.training.outdir import TrainError
    from arena_core.training.resume import plan_start, run_record, write_record

    def record(path: str, max_time: str, sha: str):
        cfg = load_config(CONFIG, [f"model.path={path}", f"train.max_time={max_time}"])
        return run_record(cfg, "data", None, base_config_sha256=sha)

    out = tmp_path / "run"
    complete_checkpoint(out, 8)
    write_record(out, record("/kaggle/input/gemma-2/transformers/gemma-2-2b-it/2", "11h", "a" * 64))
    moved = record("/kaggle/input/models/google/gemma-2/transformers/gemma-2-2b-it/2", "5h", "a" * 64)
    assert plan_start(out, moved, resume=True).checkpoint.name == "checkpoint-8"
    other = record("/kaggle/input/models/google/gemma-2/transformers/gemma-2-9b-it/2", "11h", "b" * 64)
    with pytest.raises(TrainError, match=r"different config or data \(model.path: "):
        plan_start(out, other, resume=True)


def fake_tree(root: Path) -> Path:
    inputs = root / "input"
    comp = inputs / "competitions" / "wsdm-cup-multilingual-chatbot-arena"
    write(comp / "test.parquet", "")
    write(comp / "sample_submission.csv", "id,winner\n")
    bundle = inputs / "datasets" / "jdoe" / "arena-core-bundle"
    write(bundle / "wheels" / "arena_core-0.1.0-py3-none-any.whl", "")
    for run in ("g9b", "g2b"):
        write(bundle / "models" / run / "manifest.json")
        (bundle / "models" / run / "adapter").mkdir(parents=True)
    write(bundle / "models" / "base" / "gemma2-aaaaaaaaaaaa" / "config.json")
    write(bundle / "models" / "base" / "gemma2-aaaaaaaaaaaa" / "model.safetensors", "")
    model = inputs / "models" / "google" / "gemma-2" / "transformers" / "gemma-2-2b-it" / "2"
    write(model / "config.json")
    write(model / "model.safetensors", "")
    out = inputs / "notebooks" / "jdoe" / "arena-core-train" / "g2b-fold1"
    write(out / "manifest.json")
    (out / "merged").mkdir(parents=True)
    return inputs


def test_runs_and_bases_for_the_predict_command(tmp_path):
    inputs = fake_tree(tmp_path)
    m = discover(inputs)
    bundle = m.bundle
    assert [p.name for p in resolve_runs(m)] == ["g2b", "g9b"]  # [] = the bundle's runs
    assert resolve_runs(m, ["g9b", "g2b-fold1"]) == [bundle / "models" / "g9b", m.runs[-1]]
    with pytest.raises(
        FileNotFoundError, match=r"RUNS: 'g7b' not found; runs found: \['g2b', 'g9b', '.*g2b-fold1'\]"
    ):
        resolve_runs(m, ["g7b"])
    argv = infer_argv(m, ["g9b", "g2b"], [0.7, 0.3], out="/w/s.csv", hidden_rows=25000, placement="split")
    model = inputs / "models" / "google" / "gemma-2" / "transformers" / "gemma-2-2b-it" / "2"
    assert argv == [
        "predict",
        "--data-dir",
        str(m.competition),
        "--model",
        str(bundle / "models" / "g9b"),
        "--model",
        str(bundle / "models" / "g2b"),
        "--weights",
        "0.7",
        "0.3",
        "--tta",
        "swap",
        "--time-budget",
        "4.5h",
        "--base-dir",
        str(model),  # a mounted model, not the bundle's own base (the manifests name that one)
        "--project-rows",
        "25000",
        "--placement",
        "split",
        "--out",
        "/w/s.csv",
    ]
    from arena_core.cli.main import build_parser

    args = build_parser().parse_args(argv)
    assert args.base_dir == [str(model)] and args.project_rows == 25000 and args.placement == "split"
    with pytest.raises(ValueError, match=r"WEIGHTS has 1 value\(s\) for 2 run\(s\)"):
        infer_argv(m, [], [1.0])
    # WEIGHTS may name the file 'arena ensemble' wrote: inside the bundle, or a path as given
    args = build_parser().parse_args(infer_argv(m, [], "ensemble_weights.json"))
    assert args.weights == [str(bundle / "ensemble_weights.json")]
    elsewhere = tmp_path / "w.json"
    assert build_parser().parse_args(infer_argv(m, [], elsewhere)).weights == [str(elsewhere)]
    assert "--weights" not in infer_argv(m, [], "")  # "" = equal weights, like []
    assert pick_base_model(m) == model  # the one base outside the bundle
    with pytest.raises(FileNotFoundError, match="BASE_MODEL_DIR .*: no config.json there"):
        pick_base_model(m, tmp_path)


def test_wheel_rules_never_touch_a_good_image_package(tmp_path):
    wheels = [
        tmp_path / n for n in ("bitsandbytes-0.46.1-py3-none-any.whl", "arena_core-0.1.0-py3-none-any.whl")
    ]
    wheels.append(tmp_path / "sentencepiece-0.2.0-cp310-cp310-manylinux_2_17_x86_64.whl")
    newer = {
        p.name: p for p in plan_wheels(wheels, {"bitsandbytes": "0.48.2", "sentencepiece": "0.2.1"}, "0.46.1")
    }
    assert "arena-core" not in newer  # the install cell already put it in
    assert (
        not newer["bitsandbytes"].install
        and "0.48.2 >= 0.46.1 required by transformers" in newer["bitsandbytes"].why
    )
    assert not newer["sentencepiece"].install
    older = {
        p.name: p for p in plan_wheels(wheels, {"bitsandbytes": "0.45.0", "sentencepiece": None}, "0.46.1")
    }
    assert older["bitsandbytes"].install and older["sentencepiece"].install
    # transformers 4.47 asks only for 0.39: the image's 0.45 stays
    assert not plan_wheels(wheels[:1], {"bitsandbytes": "0.45.0"}, "0.39.0")[0].install


@pytest.mark.slow
def test_two_processes_stop_together_at_the_time_cap(tmp_path, tiny_gemma2_dir):
    """torchrun (gloo on CPU), as the notebook launches it with GPUS=2: both ranks agree on the
    stop (an all-reduce), save the checkpoint and exit; a rank left behind would hang the run."""
    from arena_core.data.synthetic import make_demo_competition

    comp = make_demo_competition(tmp_path / "comp", n_train=48, n_test=8, seed=3)
    argv = [
        "train",
        "--config",
        str(CONFIG),
        "--model",
        str(tiny_gemma2_dir),
        "--data-dir",
        str(comp),
        "--out",
        str(tmp_path / "run"),
    ]
    for item in (
        "train.max_steps=40",
        "train.max_time=30s",
        "train.fold=-1",
        "encoding.max_length=96",
        "encoding.min_part_tokens=8",
        "train.save_steps=1000",
        "model.gradient_checkpointing=true",  # as the T4 config trains, under DDP
    ):
        argv += ["--set", item]
    cmd, extra = launch_command(argv, 2, visible=0)
    env = {**os.environ, **extra, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "manifest.json").read_text())["metrics"]
    assert metrics["global_step"] == 1 and metrics["stopped_by"] == "max_time"
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-1").is_dir()
    assert sys.executable == cmd[0]


# ----------------------------------------------------------------------------- RESUME_ANYWAY
def _earlier_session(tmp_path: Path, lr: str) -> Path:
    """An earlier session's output attached to this one: checkpoint-8 and the record of its config."""
    from arena_core.config import load_config
    from arena_core.training.resume import run_record, write_record

    earlier = tmp_path / "input" / "notebooks" / "jdoe" / "arena-core-train" / "g2b"
    complete_checkpoint(earlier, 8)
    cfg = load_config(CONFIG, ["model.path=/m", f"train.learning_rate={lr}"])
    write_record(earlier, run_record(cfg, "data", None, base_config_sha256="a" * 64))
    return earlier


def test_resume_anyway_continues_a_checkpoint_whose_config_changed(tmp_path):
    from arena_core.cli.main import build_parser
    from arena_core.config import load_config
    from arena_core.training.outdir import TrainError
    from arena_core.training.resume import plan_start, run_record

    _earlier_session(tmp_path, "1e-4")
    cfg = load_config(CONFIG, ["model.path=/m", "train.learning_rate=2e-4"])
    changed = run_record(cfg, "data", None, base_config_sha256="a" * 64)
    out = tmp_path / "working" / "g2b"
    flags = prepare_resume("g2b", out, tmp_path / "input", anyway=True)
    assert flags == ["--resume-anyway"] and (out / "checkpoints" / "checkpoint-8").is_dir()
    with pytest.raises(TrainError, match=r"--resume-anyway to continue regardless"):
        plan_start(out, changed, resume=True)  # what --resume alone does with a changed config
    args = build_parser().parse_args(["train", "--out", str(out), *flags])
    plan = plan_start(out, changed, resume=True, resume_anyway=args.resume_anyway)
    assert plan.checkpoint.name == "checkpoint-8" and any("learning_rate" in d for d in plan.overridden)
    assert prepare_resume("g2b", out, tmp_path / "input") == ["--resume"]  # the default stays
    assert prepare_resume("", tmp_path / "fresh", tmp_path / "input", anyway=True) == []  # nothing to resume


def test_the_train_notebook_passes_resume_anyway(tmp_path, capsys):
    """The committed notebook's parameter reaches the command its train cell runs."""
    import nbformat

    from arena_core.kaggle.notebook_params import inject_parameters, notebook_parameters

    inputs = fake_tree(tmp_path)
    write(inputs / "competitions" / "wsdm-cup-multilingual-chatbot-arena" / "train.parquet", "")
    _earlier_session(tmp_path, "1e-4")
    nb = nbformat.read(ROOT / "kaggle" / "train_notebook.ipynb", as_version=4)
    assert notebook_parameters(nb)["RESUME_ANYWAY"] is False
    params = {
        "INPUT_ROOT": str(inputs),
        "OUT_DIR": str(tmp_path / "working" / "g2b"),
        "RESUME_FROM": "g2b",
        "RESUME_ANYWAY": True,
        "BASE_MODEL_DIR": str(
            inputs / "models" / "google" / "gemma-2" / "transformers" / "gemma-2-2b-it" / "2"
        ),
        "GPUS": "none",  # stops the launch after the command is built: nothing trains here
    }
    cells = {c.get("id"): c.source for c in inject_parameters(nb, params).cells}
    namespace = {"mounts": discover(inputs, need_bundle=False)}
    exec(cells["parameters"] + "\n" + cells["injected-parameters"], namespace)
    with pytest.raises(ValueError, match=r"GPUS='none'"):
        exec(cells["train"], namespace)
    assert namespace["argv"][-1] == "--resume-anyway" and "--resume" not in namespace["argv"]
    assert "--resume-anyway" in capsys.readouterr().out  # the printed command says so
