"""The ``arena`` command as a user runs it: exit codes, messages, files left behind."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from arena_core.cli import main
from arena_core.data.submission import validate_submission
from arena_core.data.synthetic import make_demo_competition


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
    assert sub.loc[0, "winner_model_b"] > 0.5 and sub.loc[1, "winner_model_a"] > 0.5


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
