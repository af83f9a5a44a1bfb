"""The ``arena`` command as a user runs it: exit codes, messages, files left behind."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from arena_core.cli import main
from arena_core.data.schema import LMSYS_WINNER_COLUMNS
from arena_core.data.submission_checks import validate_submission
from arena_core.data.synthetic import make_demo_competition
from arena_core.evaluation.metrics import log_loss


@pytest.fixture(scope="module")
def comp(tmp_path_factory):
    return make_demo_competition(tmp_path_factory.mktemp("comp"), n_train=60, n_test=30, seed=3)


def test_help_for_every_command():
    out = subprocess.run([sys.executable, "-m", "arena_core.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "validate" in out.stdout and "baseline" in out.stdout
    for cmd in ("validate", "baseline", "evaluate", "train", "demo"):
        res = subprocess.run(
            [sys.executable, "-m", "arena_core.cli", cmd, "--help"], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        assert "usage: arena " + cmd in res.stdout


def test_validate_reports(comp, capsys):
    assert main(["validate", str(comp / "train.parquet"), str(comp / "test.parquet")]) == 0
    out = capsys.readouterr().out
    assert "train.parquet: 60 rows (wsdm); no repairs needed" in out
    assert "languages:" in out and "unlabelled (test file)" in out


def test_validate_says_which_schema_and_why_and_names_rows_that_do_not_fit(tmp_path, capsys):
    n = 50
    prompts = ['["q"]'] * n
    prompts[0] = "plain text in row one"
    pd.DataFrame(
        {"id": range(n), "prompt": prompts, "response_a": ['["a", null]'] * n, "response_b": ['["b"]'] * n}
    ).to_csv(tmp_path / "test.csv", index=False)
    assert main(["validate", str(tmp_path / "test.csv")]) == 0
    out = capsys.readouterr().out
    assert "test.csv: 50 rows (lmsys)" in out and "null turns -> '': response_a=50" in out
    assert "schema lmsys: no winner columns; 49 of 50 prompts are JSON lists" in out
    assert "not a JSON list, read as one plain-text turn: prompt 1 (row ids 0)" in out


def test_validate_bad_file_exit_code_and_message(tmp_path, capsys):
    bad = tmp_path / "train.parquet"
    pd.DataFrame(
        {"id": [1, 1], "prompt": ["a", "b"], "response_a": ["a", "b"], "response_b": ["a", "b"]}
    ).to_parquet(bad)
    assert main(["validate", str(bad)]) == 2
    assert "duplicated id" in capsys.readouterr().err


def test_baseline_writes_valid_submission(comp, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    assert main(["baseline", "--data-dir", str(comp), "--out", str(out)]) == 0
    test_ids = pd.read_parquet(comp / "test.parquet")["id"]
    validate_submission(out, test_ids, "wsdm")
    assert "wrote" in capsys.readouterr().out


def test_baseline_lmsys_csv_integer_ids(tmp_path):
    pd.DataFrame(
        {
            "id": [136060, 211333],
            "prompt": ['["hi"]', '["q"]'],
            "response_a": ['["short"]', '["a much longer answer"]'],
            "response_b": ['["a longer one"]', '["b"]'],
        }
    ).to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "submission.csv"
    assert main(["baseline", "--data-dir", str(tmp_path), "--out", str(out)]) == 0
    sub = pd.read_csv(out)
    assert list(sub.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    assert sub["id"].tolist() == [136060, 211333]
    assert sub.loc[0, "winner_model_b"] > sub.loc[0, "winner_model_a"]
    assert sub.loc[1, "winner_model_a"] > sub.loc[1, "winner_model_b"]
    assert (sub["winner_tie"] == 0.31).all()


def lmsys_with_ties(n: int = 2000, tie_share: float = 0.31, seed: int = 0) -> pd.DataFrame:
    """An LMSYS-shaped labelled frame: ~31 % ties; otherwise the longer response wins more often the
    longer it is, a little less strongly than the length heuristic assumes (temperature 2.5 vs 2)."""
    rng = np.random.default_rng(seed)
    len_a, len_b = (np.exp(rng.normal(4.0, 1.0, n)).astype(int) + 1 for _ in range(2))
    p_b = 1.0 / (1.0 + np.exp(-np.log((1 + len_b) / (1 + len_a)) / 2.5))
    tie = rng.random(n) < tie_share
    b_wins = rng.random(n) < p_b
    return pd.DataFrame(
        {
            "id": np.arange(n) + 1000,
            "prompt": ['["q"]'] * n,
            "response_a": [json.dumps(["a" * k]) for k in len_a],
            "response_b": [json.dumps(["b" * k]) for k in len_b],
            "winner_model_a": (~tie & ~b_wins).astype(int),
            "winner_model_b": (~tie & b_wins).astype(int),
            "winner_tie": tie.astype(int),
        }
    )


def test_lmsys_baseline_log_loss_is_below_uniform_on_data_with_ties(tmp_path):
    labelled = lmsys_with_ties()
    labelled.drop(columns=list(LMSYS_WINNER_COLUMNS)).to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "submission.csv"
    assert main(["baseline", "--data-dir", str(tmp_path), "--out", str(out)]) == 0
    sub = pd.read_csv(out).set_index("id").loc[labelled["id"]]
    probs = sub[["winner_model_a", "winner_model_b", "winner_tie"]].to_numpy()
    labels = labelled[list(LMSYS_WINNER_COLUMNS)].to_numpy().argmax(axis=1)
    assert 0.25 < (labels == 2).mean() < 0.37
    assert log_loss(labels, probs) < np.log(3) - 0.01  # uniform scores log 3 = 1.0986; a 0 tie column ~11


def test_baseline_writes_ids_as_the_test_file_spells_them_and_checks_the_sample(tmp_path, capsys):
    (tmp_path / "test.csv").write_text(
        "id,prompt,response_a,response_b\n"
        '000100,"[""hi""]","[""short""]","[""a longer one""]"\n'
        '1e3,"[""q""]","[""a much longer answer""]","[""b""]"\n'
        '42,"[""x""]","[""y""]","[""z""]"\n',
        encoding="utf-8",
    )
    header = "id,winner_model_a,winner_model_b,winner_tie\n"
    sample = tmp_path / "sample_submission.csv"
    sample.write_text(header + "000100,0.33,0.33,0.34\n1e3,0.33,0.33,0.34\n42,0.33,0.33,0.34\n")
    out = tmp_path / "submission.csv"
    assert main(["baseline", "--data-dir", str(tmp_path), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[1].startswith("000100,")
    assert pd.read_csv(out, dtype=str)["id"].tolist() == ["000100", "1e3", "42"]

    sample.write_text(header + "100,0.33,0.33,0.34\n1000,0.33,0.33,0.34\n42,0.33,0.33,0.34\n")
    capsys.readouterr()
    assert main(["baseline", "--data-dir", str(tmp_path), "--out", str(tmp_path / "other.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sample_submission.csv: ids differ from" in err
    assert (
        "2 test id(s) not in the sample: '000100', '1e3'" in err
        and "2 sample id(s) not in test.csv: '100', '1000'" in err
    )
    assert not (tmp_path / "other.csv").exists()


def test_evaluate_length_baseline_and_preds(comp, tmp_path, capsys):
    assert main(["evaluate", "--data", str(comp / "test_labels.parquet")]) == 0
    out = capsys.readouterr().out
    assert "length baseline" in out and "accuracy" in out and "language" in out
    preds = pd.DataFrame({"id": pd.read_parquet(comp / "test_labels.parquet")["id"], "p_a": 0.5, "p_b": 0.5})
    preds.to_parquet(tmp_path / "p.parquet")
    assert (
        main(["evaluate", "--data", str(comp / "test_labels.parquet"), "--pred", str(tmp_path / "p.parquet")])
        == 0
    )
    assert "0.6931" in capsys.readouterr().out  # log loss of a coin flip
    assert main(["evaluate", "--data", str(comp / "test.parquet")]) == 2
    assert "has no winner labels" in capsys.readouterr().err


# ----------------------------------------------------------------------------- predict: checks before any model


def fake_run(root, name: str, num_labels: int = 2):
    """A run directory whose manifest and config are valid but whose weights folder is empty: any
    attempt to load it fails, so a check that passes the test really ran before loading."""
    from arena_core.config import RunConfig
    from arena_core.models.runs import write_manifest

    run = root / name
    (run / "merged").mkdir(parents=True)
    cfg = RunConfig()
    cfg.model.num_labels = num_labels
    write_manifest(run, cfg, base_path=run / "merged", fingerprint="x", metrics={})
    return run


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("arena: error: ") and "\n" not in err, captured.err
    assert "loaded on" not in captured.out  # no model was loaded
    return err


@pytest.mark.parametrize(
    "case",
    [
        "classes",
        "weight_count",
        "negative_weight",
        "zero_weights",
        "save_probs",
        "out_dir",
        "corrupt_manifest",
        "manifest_without_config",
    ],
)
def test_predict_fails_in_seconds_before_loading_any_model(comp, tmp_path, capsys, case):
    two, three = fake_run(tmp_path, "two"), fake_run(tmp_path, "three", num_labels=3)
    out = tmp_path / "submission.csv"
    models = ["--model", str(two)]
    extra: list[str] = []
    if case == "classes":
        models += ["--model", str(three)]
        expect = [
            f"{two / 'manifest.json'}: model.num_labels=2",
            f"{three / 'manifest.json'}: model.num_labels=3",
        ]
    elif case == "weight_count":
        models += ["--model", str(two)]
        extra, expect = ["--weights", "1"], ["--weights has 1 value(s) for 2 --model run(s)"]
    elif case == "negative_weight":
        models += ["--model", str(two)]
        extra, expect = ["--weights", "1", "-1"], ["--weights must be finite and non-negative"]
    elif case == "zero_weights":
        models += ["--model", str(two)]
        extra, expect = ["--weights", "0", "0"], ["--weights are all zero"]
    elif case == "save_probs":
        (tmp_path / "a_file").write_text("x")
        probs = tmp_path / "a_file" / "probs.parquet"  # a parent that is a file: never writable
        extra, expect = ["--save-probs", str(probs)], [f"{probs}: --save-probs cannot be written there"]
    elif case == "out_dir":
        out = tmp_path / "outdir"
        out.mkdir()
        expect = [f"{out}: --out is a directory"]
    elif case == "corrupt_manifest":
        (two / "manifest.json").write_text('{"config": {"model": ', encoding="utf-8")
        expect = [f"{two / 'manifest.json'}: not valid JSON"]
    else:
        (two / "manifest.json").write_text('{"metrics": {}}', encoding="utf-8")
        expect = [f"{two / 'manifest.json'}: has no 'config' object"]
    argv = ["predict", "--data-dir", str(comp), *models, "--out", str(out), "--device", "cpu", *extra]
    assert main(argv) != 0
    err = one_line_error(capsys)
    for text in expect:
        assert text in err
    if case != "out_dir":
        assert not out.exists()


def test_a_later_members_missing_base_fails_before_any_model_loads(comp, tmp_path, capsys):
    """Checked up front, the ensemble's second run's base is named in seconds, not after run one scored."""
    import json
    import shutil

    good = fake_run(tmp_path, "good")
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "gemma2"}', encoding="utf-8")
    adapter = fake_run(tmp_path, "adapter")
    shutil.rmtree(adapter / "merged")
    (adapter / "adapter").mkdir()
    manifest = json.loads((adapter / "manifest.json").read_text(encoding="utf-8"))
    manifest["base_model"] = {"name": "gone", "path": str(tmp_path / "gone")}
    (adapter / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    argv = ["predict", "--data-dir", str(comp), "--model", str(good), "--model", str(adapter)]
    assert main([*argv, "--out", str(tmp_path / "s.csv"), "--device", "cpu"]) != 0
    err = one_line_error(capsys)
    assert f"{adapter}: base model 'gone' not found" in err


# ----------------------------------------------------------------------------- I/O failures: one line, nothing lost


def test_unwritable_output_is_one_line(comp, tmp_path, capsys, monkeypatch):
    import arena_core.data.atomic_write as atomic_write

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(atomic_write.tempfile, "mkstemp", read_only)
    out = tmp_path / "ro" / "submission.csv"
    assert main(["baseline", "--data-dir", str(comp), "--out", str(out)]) == 1
    err = one_line_error(capsys)
    assert f"{out}: cannot write the submission there: Permission denied; nothing was written" in err


def test_disk_full_keeps_the_previous_submission_and_no_tmp(comp, tmp_path, capsys, monkeypatch):
    import errno
    import os

    out = tmp_path / "submission.csv"
    assert main(["baseline", "--data-dir", str(comp), "--out", str(out)]) == 0
    before = out.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    assert main(["baseline", "--data-dir", str(comp), "--out", str(out)]) == 1
    err = one_line_error(capsys)
    assert (
        f"{out}: writing the submission failed: No space left on device; the previous file is unchanged"
        in err
    )
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]


def test_out_that_is_a_directory_is_one_line(comp, tmp_path, capsys):
    assert main(["baseline", "--data-dir", str(comp), "--out", str(tmp_path)]) == 1
    assert f"{tmp_path}: is a directory" in one_line_error(capsys)


def test_empty_test_file_is_one_line(tmp_path, capsys):
    (tmp_path / "test.csv").write_text("id,prompt,response_a,response_b\n", encoding="utf-8")
    for argv in (["validate", str(tmp_path / "test.csv")], ["baseline", "--data-dir", str(tmp_path)]):
        assert main(argv) == 2
        assert f"{tmp_path / 'test.csv'}: no rows (only a header)" in one_line_error(capsys)


def test_invalid_utf8_in_ids_and_parquet_strings_is_one_line(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "test.csv").write_bytes(b"id,prompt,response_a,response_b\nok,p,a,b\nbad\xff,p,a,b\n")
    assert main(["baseline", "--data-dir", str(tmp_path), "--out", str(tmp_path / "s.csv")]) == 2
    assert f"{tmp_path / 'test.csv'}: column 'id', row(s) [1] (0-based): not valid UTF-8" in one_line_error(
        capsys
    )

    bad = pa.Array.from_buffers(
        pa.string(), 2, [None, pa.py_buffer(np.array([0, 1, 3], np.int32).tobytes()), pa.py_buffer(b"a\xffb")]
    )
    table = pa.table({"id": bad, "prompt": ["p", "q"], "response_a": ["a", "b"], "response_b": ["a", "b"]})
    pq.write_table(table, tmp_path / "t.parquet")
    assert main(["validate", str(tmp_path / "t.parquet")]) == 2
    assert f"{tmp_path / 't.parquet'}: column 'id', row(s) [1] (0-based): not valid UTF-8" in one_line_error(
        capsys
    )


def test_sigterm_while_writing_leaves_the_previous_file_and_no_tmp(comp, tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "submission.csv"
    out.write_text("previous\n")
    script = (
        "import time, pandas as pd\n"
        "real = pd.DataFrame.to_csv\n"
        "def slow(self, f, *a, **k):\n"
        "    f.write('id'); f.flush(); time.sleep(60)\n"
        "pd.DataFrame.to_csv = slow\n"
        "import sys\n"
        "from arena_core.cli import main\n"
        f"sys.argv = ['arena', 'baseline', '--data-dir', {str(comp)!r}, '--out', {str(out)!r}]\n"
        "raise SystemExit(main())  # as the console script calls it\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not any(p.suffix == ".tmp" for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
    finally:
        proc.kill()
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]
