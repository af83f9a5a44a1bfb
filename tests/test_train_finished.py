"""A finished run whose final write failed, resumed: the outputs come from the last checkpoint and
nothing more is trained. And ``train.report_to``: from the config or ``--set`` to TrainingArguments.

Real ``train()`` / ``arena train`` on the tiny Gemma-2; the final write fails the way a full disk
makes it fail (a file-size limit set once training has ended), and ``--resume`` is the recovery
the error message names.
"""

from __future__ import annotations

import contextlib
import json
import resource
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import CONFIG, toy_rows
from test_train_faults import TINY, cli_train, one_line_error

from arena_core.cli.main import main
from arena_core.config import ConfigError, load_config
from arena_core.models.runs import read_manifest
from arena_core.training.finished import train_loss
from arena_core.training.outdir import TrainError
from arena_core.training.resume import config_differences
from arena_core.training.trainer import _training_arguments, train

# lr constant: one more optimizer step after the last would move the weights
SCHEDULES = {
    "max_steps": ["train.max_steps=4", "train.save_steps=2"],
    "epochs": ["train.epochs=0.5", "train.save_steps=3"],  # 6 of an epoch's 12 steps: mid-epoch
    "select_best": ["train.max_steps=4", "train.fold=0", "train.eval_steps=2", "train.save_steps=2"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_gemma2_dir):
    root = tmp_path_factory.mktemp("finished")
    toy_rows(48, 0).to_parquet(root / "train.parquet")
    return root, tiny_gemma2_dir


def config(model_dir, *sets):
    return load_config(CONFIG, [f"model.path={model_dir}", *TINY, "train.lr_scheduler=constant", *sets])


@contextlib.contextmanager
def disk_fills_when_training_ends():
    """Yields a callback; once Trainer has finished (checkpoints saved), files over 32 KB fail."""
    from transformers import TrainerCallback

    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)

    class Full(TrainerCallback):
        def on_train_end(self, args, state, control, **kw):
            resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, old_limit[1]))

    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield Full()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def unfinished_at_the_last_step(cfg, train_file, out: Path) -> Path:
    """Train ``cfg`` to its end with the final write failing; the last checkpoint."""
    with disk_fills_when_training_ends() as full, pytest.raises(TrainError, match="run again with --resume"):
        train(cfg, train_file, out, extra_callbacks=[full])
    assert not (out / "adapter").exists() and not (out / "manifest.json").exists()
    assert json.loads((out / "checkpoints" / "arena_run.json").read_text())["status"] == "training"
    return max((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def adapter(path: Path) -> dict:
    return load_file(path / "adapter_model.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_resume_at_the_last_step_writes_the_run_without_training(schedule, data, tmp_path, capsys):
    root, model_dir = data
    cfg = config(model_dir, *SCHEDULES[schedule])
    full = train(cfg, root / "train.parquet", tmp_path / "full")  # the run as it should have ended

    out = tmp_path / "run"
    last = unfinished_at_the_last_step(cfg, root / "train.parquet", out)
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["global_step"] == state["max_steps"] == full.metrics["global_step"]
    log_before = (out / "train_log.jsonl").read_text()
    capsys.readouterr()

    resumed = train(cfg, root / "train.parquet", out, resume=True)
    assert resumed.metrics["global_step"] == state["global_step"]  # not one step more
    assert "writing the run from it, without training" in capsys.readouterr().out
    timings = ("runtime", "samples_per_second", "steps_per_second")
    assert {k: v for k, v in resumed.metrics.items() if k not in timings} == {
        k: v for k, v in full.metrics.items() if k not in timings
    }  # train_loss as logged, and the eval scores of the same weights
    assert (out / "train_log.jsonl").read_text() == log_before  # no step was trained or logged
    assert sorted((out / "checkpoints").glob("checkpoint-*")) == sorted(last.parent.glob("checkpoint-*"))
    # the weights the run ended on: the last checkpoint's, or with select_best the best one's
    ended_on = Path(state["best_model_checkpoint"] or last) if schedule == "select_best" else last
    assert_same_weights(adapter(out / "adapter"), adapter(ended_on))
    assert_same_weights(adapter(out / "adapter"), adapter(tmp_path / "full" / "adapter"))
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["resumed_from"] == last.name
    assert manifest["metrics"]["global_step"] == state["global_step"]
    assert json.loads((out / "checkpoints" / "arena_run.json").read_text())["status"] == "complete"


def test_a_train_loss_not_recorded_is_left_unknown(data, tmp_path):
    root, model_dir = data
    cfg = config(model_dir, *SCHEDULES["max_steps"])
    out = tmp_path / "run"
    last = unfinished_at_the_last_step(cfg, root / "train.parquet", out)
    log = out / "train_log.jsonl"
    lines = log.read_text().splitlines()
    assert "train_loss" in json.loads(lines[-1])
    log.write_text("\n".join(lines[:-1]) + "\n")  # the run's closing line (its train_loss) is lost

    resumed = train(cfg, root / "train.parquet", out, resume=True)
    assert resumed.metrics["global_step"] == 4 and resumed.metrics["train_loss"] is None
    assert read_manifest(out)["metrics"]["train_loss"] is None
    assert_same_weights(adapter(out / "adapter"), adapter(last))

    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    log.write_text("\n".join([*lines[:-2], lines[-1]]) + "\n")  # a summary after another run's lines
    assert train_loss(history, log) is None
    log.write_text("\n".join(lines) + "\n")
    assert train_loss(history, log) == json.loads(lines[-1])["train_loss"]


def test_a_longer_schedule_resumed_anyway_from_a_finished_checkpoint_trains_on(data, tmp_path):
    root, model_dir = data
    out = tmp_path / "run"
    unfinished_at_the_last_step(config(model_dir, *SCHEDULES["epochs"]), root / "train.parquet", out)
    longer = config(model_dir, "train.epochs=1", "train.save_steps=3")  # 12 steps, not 6
    resumed = train(longer, root / "train.parquet", out, resume=True, resume_anyway=True)
    assert resumed.metrics["global_step"] == 12
    assert read_manifest(out)["resumed_anyway_over"] == ["train.epochs: 0.5 -> 1.0"]


# ----------------------------------------------------------------------------- train.report_to
def test_report_to_reaches_training_arguments(data, tmp_path):
    root, model_dir = data

    def reported(*sets) -> list[str]:
        cfg = config(model_dir, *sets)
        return _training_arguments(cfg, tmp_path, False, 48, 1, False, torch.float32).report_to

    assert config(model_dir).train.report_to == "none" and reported() == []
    assert reported("train.report_to=none") == []  # the string "none", not None (which meant "all")
    assert reported("train.report_to=wandb") == ["wandb"]
    assert reported("train.report_to=tensorboard,wandb") == ["tensorboard", "wandb"]
    assert reported('train.report_to=["tensorboard"]') == ["tensorboard"]

    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("train:\n  report_to: [tensorboard, wandb]\n")
    assert load_config(yaml_file).train.report_to == ["tensorboard", "wandb"]
    yaml_file.write_text("train:\n  report_to: wandb\n")
    assert load_config(yaml_file).train.report_to == "wandb"
    # a record from before the key, or another tracker, still resumes
    assert config_differences({"train": {}}, {"train": {"report_to": ["wandb"]}}) == []


def test_report_to_problems_are_named_before_the_model_loads(data, tmp_path, capsys):
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    root, model_dir = data
    rc = main(cli_train(model_dir, root / "train.parquet", tmp_path / "a", "train.report_to=tensorbord"))
    err = one_line_error(capsys, rc)
    assert "train.report_to='tensorbord': unknown tensorbord; choose none, all, or any of" in err
    assert "tensorboard" in err and not (tmp_path / "a").exists()

    with pytest.raises(ConfigError, match="'none' stands alone"):
        train(config(model_dir, "train.report_to=none,wandb"), root / "train.parquet", tmp_path / "b")
    missing = sorted({"dvclive", "swanlab", "codecarbon"} - set(get_available_reporting_integrations()))
    if missing:
        with pytest.raises(ConfigError, match=rf"{missing[0]} not installed here; pip install it"):
            train(config(model_dir, f"train.report_to={missing[0]}"), root / "train.parquet", tmp_path / "c")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_a_record_from_before_fold_groups_reads_as_row_folds():
    """Records written before train.fold_groups existed were split row by row: resuming one under
    the new default (prompt groups, another eval split) names the setting instead of passing."""
    assert config_differences({"train": {}}, {"train": {"fold_groups": "prompt"}}) == [
        "train.fold_groups: 'none' -> 'prompt'"
    ]
    assert config_differences({"train": {}}, {"train": {"fold_groups": "none"}}) == []
