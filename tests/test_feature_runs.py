"""The feature run kind and the stacker through the real commands: train, predict (exact A/B
symmetry, ensembles with a LoRA run, the safety net), cv, calibrate, ensemble, stack (and what it
refuses), the bundle, and a run loading on the competition era's LightGBM."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from arena_core.cli import main
from arena_core.data.synthetic import make_demo_competition, make_rows

REPO = Path(__file__).resolve().parent.parent
FEATURES = str(REPO / "configs" / "features.yaml")
SMALL = ["--set", "booster.min_data_in_leaf=10", "--set", "booster.max_rounds=200"]


@pytest.fixture(scope="module")
def comp(tmp_path_factory) -> Path:
    """A synthetic competition folder (train / test / test_labels), no row shared across the split."""
    return make_demo_competition(tmp_path_factory.mktemp("comp") / "c", n_train=300, n_test=60, seed=3)


@pytest.fixture(scope="module")
def feature_run(comp, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("feat") / "features"
    assert main(["train", "--config", FEATURES, "--data-dir", str(comp), "--out", str(out), *SMALL]) == 0
    return out


def swapped(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"response_a": "response_b", "response_b": "response_a"})


def test_a_feature_run_is_a_run_directory_without_a_base(feature_run):
    manifest = json.loads((feature_run / "manifest.json").read_text())
    assert manifest["kind"] == "features" and manifest["config"]["model"]["kind"] == "features"
    assert "base_model" not in manifest
    assert manifest["metrics"]["eval_rows"] > 0 and manifest["metrics"]["accuracy"] > 0.7
    assert manifest["warnings"] == []
    text = (feature_run / "booster" / "model.txt").read_text()
    assert text.startswith("tree") and "Tree=0" in text  # LightGBM's text format, no pickle anywhere
    assert not list(feature_run.rglob("*.pkl")) and not list(feature_run.rglob("*.pickle"))


def test_swapping_a_and_b_swaps_p_a_and_p_b_exactly(feature_run, comp, tmp_path):
    import arena_core as ac

    test = pd.read_parquet(comp / "test.parquet")
    swapped(test).to_parquet(tmp_path / "swapped.parquet")
    one = ac.predict(ac.load(comp / "test.parquet"), feature_run)
    two = ac.predict(ac.load(tmp_path / "swapped.parquet"), feature_run)
    assert one["id"].tolist() == two["id"].tolist()
    assert np.array_equal(one["p_a"].to_numpy(), two["p_b"].to_numpy())
    assert np.array_equal(one["p_b"].to_numpy(), two["p_a"].to_numpy())


def test_training_is_deterministic_for_a_seed(comp, feature_run, tmp_path):
    again = tmp_path / "again"
    assert main(["train", "--config", FEATURES, "--data-dir", str(comp), "--out", str(again), *SMALL]) == 0
    assert (again / "booster" / "model.txt").read_bytes() == (
        feature_run / "booster" / "model.txt"
    ).read_bytes()


def _with_ties(n: int, seed: int) -> pd.DataFrame:
    """Synthetic rows plus tie rows in the LMSYS sense: both answers equally good (the same helpful
    answer on both sides, lightly varied)."""
    rows = make_rows(n, seed, "train")
    rng = np.random.default_rng(seed)
    tie = rng.random(n) < 0.35
    good = np.where(rows["winner"] == "model_a", rows["response_a"], rows["response_b"])
    rows.loc[tie, "response_a"] = good[tie]
    rows.loc[tie, "response_b"] = [g + " " for g in good[tie]]
    rows.loc[tie, "winner"] = "tie"
    return rows


def test_three_class_run_learns_ties_and_fills_the_lmsys_tie_column(tmp_path):
    _with_ties(400, 1).to_parquet(tmp_path / "train.parquet")
    test = _with_ties(120, 2)
    test.drop(columns="winner").to_parquet(tmp_path / "test.parquet")
    run = tmp_path / "run3"
    argv = ["train", "--config", FEATURES, "--train", str(tmp_path / "train.parquet"), "--out", str(run)]
    assert main([*argv, *SMALL, "--set", "model.num_labels=3"]) == 0
    assert json.loads((run / "manifest.json").read_text())["train_labels"]["tie"] > 0
    out = tmp_path / "sub.csv"
    probs = tmp_path / "probs.parquet"
    rc = main(
        ["predict", "--test", str(tmp_path / "test.parquet"), "--model", str(run), "--format", "lmsys"]
        + ["--out", str(out), "--save-probs", str(probs)]
    )
    assert rc == 0
    sub = pd.read_csv(out)
    assert list(sub.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    is_tie = (test.set_index("id").loc[sub["id"], "winner"] == "tie").to_numpy()
    # a learned class, not a constant: higher where the answers are equally good
    assert sub["winner_tie"].std() > 0.05
    assert sub["winner_tie"][is_tie].mean() > sub["winner_tie"][~is_tie].mean() + 0.3


def test_cv_calibrate_and_ensemble_take_a_feature_run(comp, tmp_path):
    cv = tmp_path / "cv"
    argv = ["cv", "--config", FEATURES, "--data-dir", str(comp), "--folds", "3", "--out", str(cv), *SMALL]
    assert main(argv) == 0
    oof = pd.read_parquet(cv / "oof.parquet")
    train = pd.read_parquet(comp / "train.parquet")
    assert sorted(oof["id"]) == sorted(train["id"]) and oof["fold"].nunique() == 3
    summary = json.loads((cv / "cv.json").read_text())
    assert summary["oof"]["accuracy"] > summary["length_baseline"]["accuracy"]
    # a fold's OOF rows never chose its rounds: arena cv turns select_best off, an inner split decides
    fold_cfg = json.loads((cv / "fold0" / "manifest.json").read_text())["config"]["train"]
    assert fold_cfg["select_best"] is False
    labelled = comp / "test_labels.parquet"
    assert main(["calibrate", "--model", str(cv / "fold0"), "--data", str(labelled), "--no-progress"]) == 0
    assert (cv / "fold0" / "calibration.json").is_file()
    assert (
        main(
            [
                "cv",
                "--config",
                FEATURES,
                "--data-dir",
                str(comp),
                "--out",
                str(tmp_path / "m"),
                "--merge-folds",
            ]
        )
        == 2
    )


@pytest.fixture(scope="module")
def two_cvs(comp, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cvs")
    for name, leaves in (("cv-a", "15"), ("cv-b", "4")):
        argv = [
            "cv",
            "--config",
            FEATURES,
            "--data-dir",
            str(comp),
            "--folds",
            "3",
            "--out",
            str(root / name),
        ]
        assert main([*argv, *SMALL, "--set", f"booster.num_leaves={leaves}"]) == 0
    return root / "cv-a", root / "cv-b"


def test_stack_is_cross_validated_and_applied_after_its_members(comp, two_cvs, tmp_path, capsys):
    cv_a, cv_b = two_cvs
    stack = tmp_path / "stack"
    argv = ["stack", "--data-dir", str(comp), "--oof", str(cv_a), "--oof", str(cv_b), "--out", str(stack)]
    assert main([*argv, *SMALL]) == 0
    printed = capsys.readouterr().out
    for row in ("stack (OOF)", "cv-a (OOF)", "cv-b (OOF)", "length baseline"):
        assert row in printed
    manifest = json.loads((stack / "manifest.json").read_text())
    assert manifest["kind"] == "stack" and [i["name"] for i in manifest["stack_inputs"]] == ["cv-a", "cv-b"]
    table = {r["predictions"]: r for r in manifest["metrics"]["oof_table"]}
    assert table["stack (OOF)"]["accuracy"] > table["length baseline"]["accuracy"]
    # the fold runs stand for their cv; the stack run goes last (any order works)
    members = [
        x for i in range(3) for x in ("--model", str(cv_a / f"fold{i}"), "--model", str(cv_b / f"fold{i}"))
    ]
    probs = tmp_path / "p.parquet"
    out = tmp_path / "sub.csv"
    rc = main(["predict", "--data-dir", str(comp), *members, "--model", str(stack), "--out", str(out)]
              + ["--save-probs", str(probs), "--no-progress"])  # fmt: skip
    assert rc == 0
    assert "60 of 60 rows stacked over cv-a (3 runs), cv-b (3 runs)" in capsys.readouterr().out
    ens = pd.read_parquet(probs).query("model == 'ensemble'")
    assert len(ens) == 60 and np.allclose(ens[["p_a", "p_b"]].sum(axis=1), 1.0)


def test_ensemble_weights_are_fitted_on_feature_runs_oof(two_cvs, tmp_path):
    cv_a, cv_b = two_cvs
    weights = tmp_path / "w.json"
    argv = ["ensemble", "--probs", str(cv_a / "oof.parquet"), "--probs", str(cv_b / "oof.parquet")]
    assert main([*argv, "--out", str(weights)]) == 0
    fitted = json.loads(weights.read_text())
    assert fitted["names"] == ["cv-a", "cv-b"] and sum(fitted["weights"]) == pytest.approx(1.0)


def test_predict_refuses_a_stack_without_its_members_before_writing(comp, two_cvs, tmp_path, capsys):
    cv_a, cv_b = two_cvs
    stack = tmp_path / "stack"
    assert (
        main(
            [
                "stack",
                "--data-dir",
                str(comp),
                "--oof",
                str(cv_a),
                "--oof",
                str(cv_b),
                "--out",
                str(stack),
                *SMALL,
            ]
        )
        == 0
    )
    out = tmp_path / "sub.csv"
    rc = main(
        [
            "predict",
            "--data-dir",
            str(comp),
            "--model",
            str(cv_a / "fold0"),
            "--model",
            str(stack),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Inputs without a run: ['cv-b']" in err and not out.exists()
    rc = main(["predict", "--data-dir", str(comp), "--model", str(stack), "--out", str(out)])
    assert rc == 2 and "it scores after its members" in capsys.readouterr().err


def test_stack_refuses_oof_of_other_data_or_missing_rows(comp, two_cvs, tmp_path, capsys):
    cv_a, _ = two_cvs
    other = tmp_path / "other.parquet"
    pd.read_parquet(comp / "train.parquet").iloc[:-5].to_parquet(other)
    rc = main(["stack", "--train", str(other), "--oof", str(cv_a), "--out", str(tmp_path / "s1")])
    assert rc == 2 and "trained on other data" in capsys.readouterr().err
    torn = tmp_path / "torn"
    shutil.copytree(cv_a, torn)
    oof = pd.read_parquet(torn / "oof.parquet")
    oof.iloc[3:].to_parquet(torn / "oof.parquet")
    rc = main(["stack", "--data-dir", str(comp), "--oof", str(torn), "--out", str(tmp_path / "s2")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not cover the training rows: 3 missing" in err
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2" / "manifest.json").exists()


def test_a_feature_run_and_a_lora_run_ensemble_and_the_feature_run_is_the_safety_net(
    feature_run, tiny_run, comp, tmp_path, capsys
):
    lora, _base = tiny_run
    probs = tmp_path / "p.parquet"
    argv = [
        "predict",
        "--data-dir",
        str(comp),
        "--model",
        str(feature_run),
        "--model",
        str(lora),
        "--no-progress",
    ]
    assert main([*argv, "--out", str(tmp_path / "sub.csv"), "--save-probs", str(probs)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote the safety net to {tmp_path / 'sub.csv'} first (the feature run {feature_run}" in printed
    models = set(pd.read_parquet(probs)["model"])
    assert models == {feature_run.name, lora.name, "ensemble"}
    # no time at all: every row comes from the net, i.e. the feature run's own predictions
    out = tmp_path / "late.csv"
    assert main([*argv, "--out", str(out), "--time-budget", "0.001", "--save-probs", str(probs)]) == 0
    import arena_core as ac

    own = ac.predict(ac.load(comp / "test.parquet"), feature_run)
    late = pd.read_parquet(probs).query("model == 'ensemble'")
    assert np.allclose(late["p_a"].to_numpy(), own["p_a"].to_numpy())
    # asked for the length heuristic, the net says so
    assert main([*argv, "--out", str(out), "--safety-net", "length", "--tta", "none"]) == 0
    assert "(the length heuristic (longer response wins))" in capsys.readouterr().out


def test_a_bundle_carries_a_feature_run_without_a_base(feature_run, tmp_path):
    from arena_core.kaggle.bundle import build_bundle

    report = build_bundle(
        tmp_path / "bundle",
        [feature_run],
        python="3.10",
        dataset_id="jdoe/arena-features-bundle",
        requirements=None,
        download=False,
        repo_root=REPO,
    )
    carried = tmp_path / "bundle" / "models" / feature_run.name
    assert (carried / "booster" / "model.txt").is_file() and (carried / "manifest.json").is_file()
    assert not (tmp_path / "bundle" / "models" / "base").exists()
    assert feature_run.name in report.summary()


@pytest.mark.slow
def test_a_feature_run_scores_identically_on_the_competition_eras_lightgbm(feature_run, comp, tmp_path):
    """LightGBM 4.2.0 (early 2024, older than the competition's image) reads today's text model."""
    old = tmp_path / "lgb-old"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(old),
        "lightgbm==4.2.0",
    ]
    subprocess.run(pip, check=True)
    script = (
        "import sys, json, lightgbm, arena_core as ac\n"
        "p = ac.predict(ac.load(sys.argv[2]), sys.argv[1])\n"
        "print(json.dumps({'v': lightgbm.__version__, 'p_a': p['p_a'].tolist()}))\n"
    )
    outs = []
    for extra in ([str(old)], []):
        env = {"PYTHONPATH": ":".join([*extra, str(REPO)]), "PATH": "/usr/bin:/bin"}
        done = subprocess.run(
            [sys.executable, "-c", script, str(feature_run), str(comp / "test.parquet")],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        outs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert outs[0]["v"] == "4.2.0" and outs[1]["v"] != "4.2.0"
    assert outs[0]["p_a"] == outs[1]["p_a"]
