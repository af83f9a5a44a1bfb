"""One exit-code rule for every command, one-line errors, ``-v``, and progress bars only where watched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arena_core.cli import main
from arena_core.cli.exits import EXIT_RULE, exit_code_for, report_error
from arena_core.cli.main import _subcommands, build_parser
from arena_core.data.progress import PROGRESS_ENV, progress_bar, progress_enabled, set_progress
from arena_core.data.synthetic import make_demo_competition
from arena_core.training.outdir import TrainError


@pytest.fixture(scope="module")
def comp(tmp_path_factory):
    return make_demo_competition(tmp_path_factory.mktemp("comp"), n_train=120, n_test=30, seed=3)


def test_every_command_states_the_rule_and_takes_the_common_options(capsys):
    parser = build_parser()
    for sub in _subcommands(parser):
        with pytest.raises(SystemExit) as stop:
            main([sub.prog.split()[-1], "--help"])
        assert stop.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert " ".join(EXIT_RULE.split()) in text, sub.prog
        for option in ("-v, --verbose", "--progress", "--no-progress"):
            assert option in text, f"{sub.prog}: {option}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "Exit status: 0 done; 2 a usage or input error" in " ".join(capsys.readouterr().out.split())


def test_input_errors_exit_2_and_failures_while_running_exit_1(comp, tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nope.parquet")]) == 2
    assert "nope.parquet: file not found" in capsys.readouterr().err
    assert (
        main(["train", "--config", str(tmp_path / "nope.yaml"), "--data-dir", str(comp), "--out", "x"]) == 2
    )
    capsys.readouterr()
    assert (
        main(
            ["cv", "--config", "configs/features.yaml", "--data-dir", str(comp), "--folds", "1", "--out", "x"]
        )
        == 2
    )
    assert "--folds (train.n_folds) must be at least 2" in capsys.readouterr().err
    # A usage error from argparse itself is 2 as well.
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--bogus"])
    assert stop.value.code == 2
    capsys.readouterr()
    # The call is right but the place cannot be written: a failure while running.
    out = _read_only_folder(tmp_path) / "sub.csv"
    code = main(["baseline", "--data-dir", str(comp), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("arena: error:") and str(out) in err and "Traceback" not in err


def _read_only_folder(tmp_path):
    """A folder this process cannot write into: a chmod'ed one, or (as root, who ignores modes) /sys."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    for folder in (locked, Path("/sys")):
        try:
            (folder / "probe").write_text("x")
        except OSError:
            return folder
    pytest.skip("no read-only folder on this machine")


def test_exceptions_map_to_the_rule():
    assert exit_code_for(FileNotFoundError("x")) == 2
    assert exit_code_for(ValueError("x")) == 2
    assert exit_code_for(ModuleNotFoundError("No module named 'lightgbm'", name="lightgbm")) == 2
    assert exit_code_for(PermissionError(13, "Permission denied")) == 1
    assert exit_code_for(OSError(28, "No space left on device")) == 1
    assert exit_code_for(MemoryError()) == 1
    assert exit_code_for(KeyboardInterrupt()) == 130
    # TrainError says which it is: a run that must be resumed is input, a failed write is not.
    assert exit_code_for(TrainError("holds checkpoints of an unfinished run")) == 2
    assert exit_code_for(TrainError("could not be written", exit_code=1)) == 1


def test_an_unexpected_error_is_one_line_and_the_traceback_is_one_flag_away(capsys):
    try:
        {}["missing"]
    except KeyError as exc:
        assert report_error("arena", exc, verbose=False) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "unexpected KeyError" in err and "-v" in err
        assert report_error("arena", exc, verbose=True) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and err.rstrip().endswith("'missing'")


def test_a_missing_module_names_it(capsys):
    exc = ModuleNotFoundError("No module named 'lightgbm'", name="lightgbm")
    assert report_error("arena", exc, verbose=False) == 2
    assert "needs the Python module 'lightgbm'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- progress bars
@pytest.fixture
def progress_env(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    return monkeypatch


def test_bars_follow_the_terminal_unless_asked(progress_env, tmp_path):
    with open(tmp_path / "log.txt", "w") as log:
        assert not progress_enabled(log)  # a log file: no bar
        primary, replica = os.openpty()
        try:
            with os.fdopen(replica, "w", closefd=False) as tty:
                assert progress_enabled(tty)  # a terminal: a bar
                set_progress("off")
                assert not progress_enabled(tty)
        finally:
            os.close(primary)
            os.close(replica)
        set_progress("on")
        assert progress_enabled(log)
    with pytest.raises(ValueError, match="auto, on, off"):
        set_progress("sometimes")


def test_progress_bar_is_the_plain_iterable_when_not_wanted(progress_env):
    set_progress("off")
    rows = range(3)
    assert progress_bar(rows, desc="x") is rows
    assert progress_bar(total=3) is None
    set_progress("on")
    bar = progress_bar(rows, desc="x", file=open(os.devnull, "w"))
    assert type(bar).__name__ == "tqdm" and list(bar) == [0, 1, 2]
    assert progress_bar(rows, wanted=False) is rows


def _encode_stderr(extra: list[str], env_progress: str | None) -> str:
    """stderr of a real subprocess that encodes rows through the package's encoder, piped (no terminal)."""
    code = (
        "import sys, pandas as pd\n"
        "from arena_core.cli.exits import apply_common_options\n"
        "import argparse\n"
        "a = argparse.Namespace(progress='--progress' in sys.argv, no_progress='--no-progress' in sys.argv)\n"
        "apply_common_options(a)\n"
        "from arena_core.encoding.features import pair_features\n"
        "f = pd.DataFrame({'prompt': ['p'] * 50, 'response_a': ['a b'] * 50, 'response_b': ['c'] * 50})\n"
        "pair_features(f, progress=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != PROGRESS_ENV}
    if env_progress:
        env[PROGRESS_ENV] = env_progress
    proc = subprocess.run(
        [sys.executable, "-c", code, *extra], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_no_bar_in_a_piped_log_unless_progress_is_asked():
    assert "features:" not in _encode_stderr([], None)
    assert "features:" in _encode_stderr(["--progress"], None)
    assert "features:" not in _encode_stderr(["--no-progress"], "on")


# ----------------------------------------------------------------------------- library noise
def test_bitsandbytes_kernel_hub_noise_is_hidden_unless_verbose():
    pytest.importorskip("bitsandbytes")
    code = "import arena_core.models, peft, bitsandbytes"
    env = {k: v for k, v in os.environ.items() if k != "ARENA_VERBOSE"}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "gemm_4bit_forward" not in quiet.stderr
    loud = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "ARENA_VERBOSE": "1"},
        timeout=300,
    )
    from bitsandbytes.functional import has_avx512bf16

    if has_avx512bf16():  # bitsandbytes only looks for the hub kernel on such CPUs
        assert "gemm_4bit_forward" in loud.stderr


def test_the_deprecated_property_peft_reads_does_not_warn(tiny_gemma2_dir):
    import warnings

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_gemma2_dir), num_labels=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default", FutureWarning)  # a reset, as a catch_warnings block may do
        from arena_core.models.noise import quiet_library_noise

        assert quiet_library_noise()  # puts its filters back in front
        getattr(model, "is_gradient_checkpointing", None)
    assert not [w for w in seen if "is_gradient_checkpointing" in str(w.message)]


def test_build_dataset_follows_the_same_rule(tiny_run, tmp_path, capsys):
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("build_dataset", root / "build_dataset.py")
    command = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(command)
    with pytest.raises(SystemExit):
        command.main(["--help"])
    assert "Exit status: 0 done; 2 a usage or input error" in " ".join(capsys.readouterr().out.split())
    argv = ["--run", str(tiny_run[0]), "--dataset-id", "jdoe/arena-core-bundle", "--no-download"]
    out = _read_only_folder(tmp_path) / "bundle"
    assert command.main(["--out", str(out), *argv, "--requirements", ""]) == 1  # the place, not the call
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("build_dataset.py: error:") and str(out) in err[0]
    assert command.main(["--out", str(tmp_path / "b"), "--run", str(tmp_path / "nope"), *argv[2:]]) == 2
