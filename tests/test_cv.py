"""``arena cv`` end to end on the tiny Gemma-2: folds, OOF coverage, resume, merged folds, and the
fitted temperature and ensemble weights as ``arena predict`` applies them."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from test_sources import lmsys
from test_train import toy_rows

from arena_core.cli import main
from arena_core.models.backbones import make_tiny_gemma2

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "tiny-cpu.yaml")
K = 3


def cv_argv(root, out, *more):
    return [
        "cv",
        "--config",
        CONFIG,
        "--model",
        str(root / "tiny"),
        "--train",
        str(root / "a.parquet"),
        "--train",
        str(root / "b.csv"),
        "--folds",
        str(K),
        "--out",
        str(out),
        "--no-progress",
        *[x for kv in more for x in ("--set", kv)],
        "--set",
        "encoding.max_length=96",
        "--set",
        "encoding.min_part_tokens=8",
        "--set",
        "train.max_steps=4",
        "--set",
        "train.learning_rate=5e-3",
        "--set",
        "train.eval_steps=4",
        "--set",
        "train.save_steps=4",
    ]


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    make_tiny_gemma2(root / "tiny")
    a = toy_rows(48, 0)
    a.to_parquet(root / "a.parquet")
    extra = toy_rows(12, 5)
    dup = a.iloc[:4]  # the first four rows again, two of them with A and B swapped
    rows = [
        (100 + i, r.prompt, r.response_a, r.response_b, int(r.winner == "model_b"))
        for i, r in enumerate(extra.itertuples())
    ]
    rows += [(200, dup.prompt[0], dup.response_a[0], dup.response_b[0], int(dup.winner[0] == "model_b"))]
    rows += [(201, dup.prompt[1], dup.response_a[1], dup.response_b[1], int(dup.winner[1] == "model_b"))]
    rows += [(202, dup.prompt[2], dup.response_b[2], dup.response_a[2], int(dup.winner[2] == "model_a"))]
    rows += [(203, dup.prompt[3], dup.response_b[3], dup.response_a[3], int(dup.winner[3] == "model_a"))]
    lmsys(rows, root / "b.csv")
    toy_rows(24, 9).to_parquet(root / "eval.parquet")
    out = root / "cv"
    assert main(cv_argv(root, out) + ["--merge-folds", "--eval", str(root / "eval.parquet")]) == 0
    return root, out


def test_cv_writes_every_fold_and_oof_covers_every_row_once(cv_run, capsys):
    root, out = cv_run
    from arena_core.data.sources import load_sources

    frame = load_sources([root / "a.parquet", root / "b.csv"]).frame
    assert len(frame) == 48 + 12  # the four duplicates across the sources were dropped
    oof = pd.read_parquet(out / "oof.parquet")
    assert list(oof.columns) == ["id", "p_a", "p_b", "fold", "label"]
    assert len(oof) == len(frame) and not oof["id"].duplicated().any()
    assert sorted(oof["id"]) == sorted(frame["id"])
    assert np.allclose(oof[["p_a", "p_b"]].sum(axis=1), 1.0)
    folds = pd.read_parquet(out / "folds.parquet")
    assert oof["fold"].tolist() == folds["fold"].tolist()
    for i in range(K):
        fold = out / f"fold{i}"
        for piece in (
            "manifest.json",
            "adapter/adapter_model.safetensors",
            "oof.parquet",
            "calibration.json",
        ):
            assert (fold / piece).is_file(), (i, piece)
        manifest = json.loads((fold / "manifest.json").read_text())
        # the trainer held out exactly the rows cv predicted for this fold
        assert manifest["metrics"]["eval_rows"] == int((oof["fold"] == i).sum())
        assert manifest["config"]["train"]["fold"] == i
        # OOF rows never choose their own checkpoint: a fold ends on its last one
        assert manifest["config"]["train"]["select_best"] is False
    report = (out / "cv_report.md").read_text()
    assert "length baseline" in report and "per language" in report and "per source" in report
    summary = json.loads((out / "cv.json").read_text())
    assert summary["oof"]["n"] == len(frame) and summary["folds"] == K


def test_oof_rows_are_the_swap_tta_average_of_their_fold_model(cv_run):
    """OOF probabilities come from the inference engine with the config's TTA (swap in tiny-cpu)."""
    root, out = cv_run
    from arena_core.data.sources import load_sources
    from arena_core.encoding.batching import collate
    from arena_core.encoding.encoder import PairEncoder
    from arena_core.models.runs import load_run

    oof = pd.read_parquet(out / "oof.parquet")
    frame = load_sources([root / "a.parquet", root / "b.csv"]).frame.set_index("id")
    held = oof[oof["fold"] == 1].head(5)
    run = load_run(out / "fold1")
    enc = PairEncoder(run.tokenizer, run.config.encoding).encode_frame(frame.loc[held["id"]].reset_index())
    pad = run.tokenizer.pad_token_id
    with torch.inference_mode():
        first = run.model(**collate(enc.input_ids, pad, "right")).logits.softmax(-1).numpy()
        swapped = run.model(**collate(enc.input_ids_swapped, pad, "right")).logits.softmax(-1).numpy()
    expect = (first + swapped[:, ::-1]) / 2
    np.testing.assert_allclose(held[["p_a", "p_b"]].to_numpy(), expect, atol=1e-5)


def test_cv_resumes_fold_by_fold(cv_run, tmp_path):
    root, out = cv_run
    before = pd.read_parquet(out / "oof.parquet")
    copy = tmp_path / "cv"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "fold1")
    (copy / "fold2" / "oof.parquet").unlink()  # trained, killed while scoring: scored, not retrained
    from arena_core.config import load_config
    from arena_core.training.cv import run_cv

    argv = cv_argv(root, copy)
    overrides = [argv[i + 1] for i, x in enumerate(argv) if x == "--set"]
    cfg = load_config(CONFIG, [f"model.path={root / 'tiny'}", f"train.n_folds={K}", *overrides])
    result = run_cv(cfg, [root / "a.parquet", root / "b.csv"], copy)
    assert result.folds_trained == [1] and result.folds_skipped == [0]
    after = pd.read_parquet(copy / "oof.parquet")
    assert after["id"].tolist() == before["id"].tolist()
    untouched = after["fold"] != 1
    np.testing.assert_allclose(after.loc[untouched, "p_a"], before.loc[untouched, "p_a"], rtol=1e-6)
    # a different fold setting cannot resume into the same folder
    cfg.train.n_folds = 4
    with pytest.raises(ValueError, match="folds.parquet: written for other rows or fold settings"):
        run_cv(cfg, [root / "a.parquet", root / "b.csv"], copy)


def test_merged_folds_adapter_is_the_exact_mean_of_the_fold_updates(cv_run):
    _, out = cv_run
    from safetensors.torch import load_file

    merged_dir = out / "merged_folds"
    cfg = json.loads((merged_dir / "adapter/adapter_config.json").read_text())
    fold_cfg = json.loads((out / "fold0/adapter/adapter_config.json").read_text())
    assert cfg["r"] == K * fold_cfg["r"] and cfg["lora_alpha"] == K * fold_cfg["lora_alpha"]
    merged = load_file(merged_dir / "adapter/adapter_model.safetensors")
    folds = [load_file(out / f"fold{i}/adapter/adapter_model.safetensors") for i in range(K)]
    name = next(k for k in merged if "q_proj.lora_A" in k)
    b_name = name.replace("lora_A", "lora_B")
    scale, merged_scale = fold_cfg["lora_alpha"] / fold_cfg["r"], cfg["lora_alpha"] / cfg["r"]
    mean_delta = sum(scale * f[b_name] @ f[name] for f in folds) / K
    torch.testing.assert_close(merged_scale * merged[b_name] @ merged[name], mean_delta, rtol=1e-5, atol=1e-7)
    head = next(k for k in merged if "score" in k)
    torch.testing.assert_close(merged[head], sum(f[head] for f in folds) / K)
    summary = json.loads((out / "cv.json").read_text())
    assert summary["merged_folds"]["scored_on"].endswith("eval.parquet")
    assert summary["merged_folds"]["metrics"]["n"] == 24
    assert (merged_dir / "calibration.json").is_file()


def test_predict_applies_the_fitted_temperature_and_weights_file(cv_run, tmp_path, capsys):
    root, out = cv_run
    from arena_core.evaluation.calibration import Calibration, apply_temperature
    from arena_core.inference.combine import combine

    test = root / "eval.parquet"
    probs = tmp_path / "probs.parquet"
    one = ["predict", "--test", str(test), "--model", str(out / "fold0"), "--no-progress"]
    assert main([*one, "--out", str(tmp_path / "s1.csv"), "--save-probs", str(probs)]) == 0
    assert "applied temperature" in capsys.readouterr().out
    t = Calibration.load(out / "fold0").temperature
    assert t != 1.0
    got = pd.read_parquet(probs)
    raw = (
        got[["p_a_ab", "p_b_ab"]].to_numpy() + got[["p_a_ba", "p_b_ba"]].to_numpy()
    ) / 2  # swap TTA, uncalibrated
    np.testing.assert_allclose(got[["p_a", "p_b"]], apply_temperature(raw, t), atol=1e-9)

    # calibrate on a labelled file the run did not train on, scored the way predict scores
    assert main(["calibrate", "--model", str(out / "fold0"), "--data", str(test), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "temperature" in printed and "log loss" in printed and " -> " in printed
    assert Calibration.load(out / "fold0").fitted_on.startswith(str(test))

    # ensemble weights fitted on OOF predictions, read back by predict --weights FILE
    from arena_core.data.sources import load_sources
    from arena_core.evaluation.length import length_baseline

    frame = load_sources([root / "a.parquet", root / "b.csv"]).frame
    length_baseline(frame).assign(label=frame["label"].to_numpy()).to_parquet(tmp_path / "baseline.parquet")
    weights = tmp_path / "weights.json"
    members = ["--probs", str(out / "oof.parquet"), "--probs", str(tmp_path / "baseline.parquet")]
    mixed = tmp_path / "mixed.parquet"
    assert main(["ensemble", *members, "--out", str(weights), "--save-probs", str(mixed)]) == 0
    fitted = json.loads(weights.read_text())
    oof, mix = pd.read_parquet(out / "oof.parquet"), pd.read_parquet(mixed)
    assert mix["id"].tolist() == oof["id"].tolist() and mix["label"].tolist() == oof["label"].tolist()
    w = fitted["weights"]
    base = pd.read_parquet(tmp_path / "baseline.parquet")
    np.testing.assert_allclose(mix["p_a"], w[0] * oof["p_a"] + w[1] * base["p_a"], atol=1e-12)
    assert fitted["names"] == ["cv", "baseline"]
    assert fitted["log_loss"] <= min(fitted["log_loss_members"].values()) + 1e-12
    assert sum(fitted["weights"]) == pytest.approx(1.0) and min(fitted["weights"]) >= 0
    # names in the file (cv, baseline) are not the runs' names (fold0, fold1): refused, not applied by position
    named = [*one, "--model", str(out / "fold1"), "--weights", str(weights)]
    assert main([*named, "--out", str(tmp_path / "s1.csv")]) == 2
    assert "weights are matched by name only" in capsys.readouterr().err
    two = [
        *one,
        "--model",
        str(out / "fold1"),
        "--weights",
        *map(str, fitted["weights"]),
        "--save-probs",
        str(probs),
    ]
    assert main([*two, "--out", str(tmp_path / "s2.csv")]) == 0
    got = pd.read_parquet(probs)
    part = {m: got[got["model"] == m][["p_a", "p_b"]].to_numpy() for m in ("fold0", "fold1", "ensemble")}
    expect = combine([part["fold0"], part["fold1"]], fitted["weights"])  # the numbers, in --model order
    np.testing.assert_allclose(part["ensemble"], expect, atol=1e-12)


@pytest.mark.parametrize("select_best", [True, False])
def test_select_best_decides_whether_the_eval_rows_pick_the_final_checkpoint(tmp_path, select_best):
    from arena_core.config import load_config
    from arena_core.training.trainer import _training_arguments

    cfg = load_config(CONFIG, [f"train.select_best={str(select_best).lower()}"])
    args = _training_arguments(cfg, tmp_path, True, 64, 1, False, torch.float32)
    assert args.load_best_model_at_end is select_best
    assert (args.metric_for_best_model == "log_loss") is select_best
    assert args.eval_steps == cfg.train.eval_steps  # the eval rows are still scored and logged
