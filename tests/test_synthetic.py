"""The synthetic demo competition is honest: no test row or test prompt is in train, and length alone does not solve it."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from arena_core.data.competition import load_competition_file
from arena_core.data.errors import DataError
from arena_core.data.sources import find_leakage
from arena_core.data.synthetic import (
    SUBJECTS,
    SYNTHETIC_NOTE,
    check_no_leakage,
    make_demo_competition,
    make_rows,
)
from arena_core.evaluation.length import length_baseline
from arena_core.evaluation.metrics import evaluate

SIZES = [(400, 60, 0), (400, 60, 7), (2000, 300, 0), (2000, 300, 3)]


@pytest.fixture(scope="module", params=SIZES, ids=lambda p: f"train{p[0]}-test{p[1]}-seed{p[2]}")
def folder(request, tmp_path_factory):
    n_train, n_test, seed = request.param
    out = make_demo_competition(
        tmp_path_factory.mktemp("synthetic"), n_train=n_train, n_test=n_test, seed=seed
    )
    return {
        "dir": out,
        "train": pd.read_parquet(out / "train.parquet"),
        "test": pd.read_parquet(out / "test.parquet"),
        "labels": pd.read_parquet(out / "test_labels.parquet"),
        "size": request.param,
    }


def test_files_and_schema(folder):
    out, (n_train, n_test, _) = folder["dir"], folder["size"]
    assert {p.name for p in out.iterdir()} == {
        "train.parquet",
        "test.parquet",
        "test_labels.parquet",
        "sample_submission.csv",
        "README.txt",
    }
    assert list(folder["train"].columns) == [
        "id",
        "prompt",
        "response_a",
        "response_b",
        "winner",
        "model_a",
        "model_b",
        "language",
    ]
    assert len(folder["train"]) == n_train and len(folder["test"]) == n_test
    assert set(folder["train"]["winner"]) == {"model_a", "model_b"}
    assert "winner" not in folder["test"].columns and folder["test"]["scored"].all()
    assert (folder["labels"]["id"] == folder["test"]["id"]).all()
    assert pd.read_csv(out / "sample_submission.csv")["id"].tolist() == folder["test"]["id"].tolist()
    assert SYNTHETIC_NOTE in (out / "README.txt").read_text(encoding="utf-8")
    for name in ("train.parquet", "test_labels.parquet"):
        loaded = load_competition_file(out / name)
        assert loaded.frame["label"].notna().all() and "no repairs needed" in loaded.report.summary()


def test_no_train_row_duplicates_a_test_row(folder):
    train, test = folder["train"], folder["test"]
    leak = find_leakage(train, test)
    assert leak.total == 0, leak.summary()
    # and spelled out without find_leakage: neither order of (A, B) of a test row is in train
    seen = set(zip(train["prompt"], train["response_a"], train["response_b"]))
    for p, a, b in zip(test["prompt"], test["response_a"], test["response_b"]):
        assert (p, a, b) not in seen and (p, b, a) not in seen


def test_test_prompts_are_unseen_in_train(folder):
    assert not set(folder["test"]["prompt"]) & set(folder["train"]["prompt"])


def test_rows_are_varied(folder):
    train, (n_train, _, _) = folder["train"], folder["size"]
    distinct = len(train[["prompt", "response_a", "response_b"]].drop_duplicates())
    assert distinct >= 0.99 * n_train
    assert train["prompt"].nunique() >= 0.75 * n_train
    assert (train["response_a"] != train["response_b"]).all()
    assert (train["prompt"].str.len() > 0).all() and (train["response_a"].str.len() > 0).all()
    assert (train["response_b"].str.len() > 0).all()


def test_languages_present(folder):
    for frame in (folder["train"], folder["labels"]):
        langs = set(frame["language"])
        assert {"English", "Spanish", "Chinese"} <= langs
        if len(frame) >= 300:
            assert {"English", "Spanish", "Chinese", "Russian", "French", "German"} <= langs
    zh = folder["train"].query("language == 'Chinese'")
    assert zh["prompt"].str.contains(r"[\u4e00-\u9fff]").all()
    assert not zh["prompt"].str.contains(" ").any()  # a language without spaces between words
    ru = folder["train"].query("language == 'Russian'")
    assert ru["prompt"].str.contains(r"[\u0400-\u04ff]").all()


def test_length_baseline_is_informative_but_far_from_perfect(folder):
    labels = load_competition_file(folder["dir"] / "test_labels.parquet").frame
    acc = float(evaluate(labels, length_baseline(labels)).overall["accuracy"].iloc[0])
    n_test = folder["size"][1]
    lo, hi = (0.52, 0.85) if n_test < 100 else (0.6, 0.8)  # 60 rows: +/- 0.12 at 95 %
    assert lo <= acc <= hi, f"length baseline accuracy {acc:.3f} on {n_test} test rows"


def test_length_baseline_on_many_rows_and_losers_of_both_lengths():
    rows = make_rows(4000, seed=11, kind="train")
    a_wins = (rows["winner"] == "model_a").to_numpy()
    len_a, len_b = rows["response_a"].str.len().to_numpy(), rows["response_b"].str.len().to_numpy()
    winner_len, loser_len = np.where(a_wins, len_a, len_b), np.where(a_wins, len_b, len_a)
    longer_wins = float(np.mean(winner_len > loser_len))
    assert 0.62 <= longer_wins <= 0.78
    assert np.mean(loser_len > winner_len) >= 0.2  # a loser is often the longer answer
    assert 0.4 <= a_wins.mean() <= 0.6
    loser = np.where(a_wins, rows["model_b"], rows["model_a"])
    assert len(set(loser)) >= 6 and set(np.where(a_wins, rows["model_a"], rows["model_b"])) == {
        "synthetic-helpful"
    }


def test_winner_is_on_topic_in_the_prompts_language():
    rows = make_rows(600, seed=2, kind="train")
    for lang, group in rows.groupby("language"):
        for _, row in group.iterrows():
            good = row["response_a"] if row["winner"] == "model_a" else row["response_b"]
            subjects = [s for s in SUBJECTS[lang] if s in row["prompt"]]
            assert subjects, (lang, row["prompt"])
            assert any(s.lower() in good.lower() for s in subjects), (lang, row["prompt"], good)


def test_deterministic_per_seed(tmp_path):
    pd.testing.assert_frame_equal(make_rows(200, 5, "train"), make_rows(200, 5, "train"))
    assert not make_rows(50, 5, "train")["prompt"].equals(make_rows(50, 6, "train")["prompt"])
    a = make_demo_competition(tmp_path / "a", n_train=100, n_test=30, seed=4)
    b = make_demo_competition(tmp_path / "b", n_train=100, n_test=30, seed=4)
    for name in ("train.parquet", "test.parquet", "test_labels.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name))


def test_test_prompts_never_meet_other_kinds_whatever_the_seeds():
    test_prompts = set(make_rows(1500, 0, "test")["prompt"])
    for seed, kind in ((0, "train"), (1, "train"), (3, "report")):
        assert not test_prompts & set(make_rows(1500, seed, kind)["prompt"])


def test_fast():
    start = time.perf_counter()
    make_rows(400, 0, "train"), make_rows(60, 1, "test")
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------------------- the guard
def test_guard_fires_on_a_leaking_folder(tmp_path):
    train = make_rows(40, 0, "train")
    test = make_rows(10, 1, "test")
    check_no_leakage(train, test)  # the generator's own output passes
    leaking = pd.concat([train, test.iloc[[2]]], ignore_index=True)
    leaking.loc[len(leaking) - 1, "id"] = "copied-row"
    with pytest.raises(DataError, match="1 of 41 training rows duplicate a test row.*1 exactly"):
        check_no_leakage(leaking, test, "hand-made folder")
    swapped = test.iloc[[4]].rename(columns={"response_a": "response_b", "response_b": "response_a"})
    leaking = pd.concat([train, swapped.assign(id="swapped-row")], ignore_index=True)
    with pytest.raises(DataError, match=r"hand-made folder: .*with A/B swapped \(train ids 'swapped-row'"):
        check_no_leakage(leaking, test, "hand-made folder")


def test_make_demo_competition_writes_nothing_when_the_guard_fires(tmp_path, monkeypatch):
    import arena_core.data.synthetic as synthetic

    real = synthetic.make_rows
    monkeypatch.setattr(synthetic, "make_rows", lambda n, seed, kind: real(n, 0, "test"))  # train = test
    with pytest.raises(DataError, match="training rows duplicate test rows"):
        synthetic.make_demo_competition(tmp_path / "leaky", n_train=20, n_test=20, seed=0)
    assert not (tmp_path / "leaky").exists()
