"""arena_core.api, the notebook API: load -> encode -> train -> predict -> evaluate -> submission on a tiny model.

Every function must give what the ``arena`` command of the same name gives (the prediction is
compared with ``arena predict --save-probs`` on the same run), and ``import arena_core`` must stay
cheap although the API is reachable from it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import arena_core
from arena_core import api
from arena_core.cli import main
from arena_core.data.submission_checks import validate_submission
from arena_core.data.synthetic import make_demo_competition

ROOT = Path(__file__).resolve().parent.parent
TINY_CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
FAST = [
    "encoding.max_length=96",
    "encoding.min_part_tokens=8",
    "train.max_steps=3",
    "train.fold=-1",
    "train.save_steps=1000",
    "train.logging_steps=1",
]


@pytest.fixture(scope="module")
def competition(tmp_path_factory) -> Path:
    return make_demo_competition(
        tmp_path_factory.mktemp("api") / "competition", n_train=48, n_test=24, seed=5
    )


@pytest.fixture(scope="module")
def trained(competition, tiny_gemma2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("api-run") / "run"
    return api.train(competition / "train.parquet", out, TINY_CONFIG, model=tiny_gemma2_dir, overrides=FAST)


def test_root_package_reaches_the_api_lazily():
    assert arena_core.predict is api.predict and arena_core.load is api.load
    assert set(arena_core._API) == set(api.__all__) and set(api.__all__) <= set(dir(arena_core))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        arena_core.nope  # noqa: B018
    code = "import sys, arena_core; print(sorted(m for m in ('pandas', 'torch', 'arena_core.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # nothing heavy, not even the API, until a name is used


def test_load_and_encode(competition, tiny_gemma2_dir):
    frame = api.load(competition / "train.parquet")
    assert list(frame.columns[:6]) == ["id", "prompt", "response_a", "response_b", "label", "language"]
    assert len(frame) == 48 and frame["label"].notna().all()
    test = api.load(competition / "test.parquet")
    assert len(test) == 24 and test["label"].isna().all()

    cfg = api.run_config(TINY_CONFIG, FAST)
    assert cfg.encoding.max_length == 96 and cfg.train.max_steps == 3
    encoded = api.encode(frame.head(6), tiny_gemma2_dir, cfg.encoding)
    assert list(encoded.ids) == frame["id"].head(6).tolist()
    assert len(encoded.input_ids) == len(encoded.input_ids_swapped) == 6
    assert encoded.max_length == 96 and 0 < encoded.lengths.min() and encoded.lengths.max() <= 96
    assert not np.array_equal(encoded.input_ids[0], encoded.input_ids_swapped[0])  # both orders


def test_train_predict_evaluate_submit(competition, trained, tmp_path):
    run_dir = trained.run_dir
    assert (run_dir / "manifest.json").is_file() and (run_dir / "adapter").is_dir()
    assert trained.metrics["global_step"] == 3 and trained.n_train == 48

    test = api.load(competition / "test.parquet")
    probs = api.predict(test, run_dir, tta="swap", device="cpu")
    assert probs["id"].tolist() == test["id"].tolist()
    assert np.allclose(probs[["p_a", "p_b"]].sum(axis=1), 1.0) and probs["p_a"].std() > 0

    # the same numbers `arena predict` writes for the same run
    rc = main(
        [
            "predict",
            "--test",
            str(competition / "test.parquet"),
            "--model",
            str(run_dir),
            "--tta",
            "swap",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            str(tmp_path / "cli-submission.csv"),
            "--save-probs",
            str(tmp_path / "cli-probs.parquet"),
        ]
    )
    assert rc == 0
    cli = pd.read_parquet(tmp_path / "cli-probs.parquet").set_index("id").loc[probs["id"]]
    np.testing.assert_allclose(cli["p_a"].to_numpy(), probs["p_a"].to_numpy(), atol=1e-6)

    labels = pd.read_parquet(competition / "test_labels.parquet")
    labels.to_parquet(tmp_path / "labelled.parquet", index=False)
    labelled = api.load(tmp_path / "labelled.parquet")
    result = api.evaluate(labelled, probs)
    assert result.n == int((labelled["label"] != 2).sum()) and 0.0 <= result.accuracy <= 1.0
    probs.to_csv(tmp_path / "probs.csv", index=False)
    from_file = api.evaluate(labelled, tmp_path / "probs.csv")
    assert from_file.accuracy == result.accuracy and from_file.log_loss == pytest.approx(result.log_loss)
    assert api.evaluate(labelled, api.baseline(labelled)).n == result.n

    path = api.write_submission(probs, tmp_path / "submission.csv", test)
    validate_submission(path, test["id"], "wsdm")
    sub = pd.read_csv(path)
    assert sub["id"].astype(str).tolist() == test["id"].astype(str).tolist()
    assert set(sub["winner"]) <= {"model_a", "model_b"}
    want = np.where(probs["p_a"] >= probs["p_b"], "model_a", "model_b")
    assert (sub["winner"].to_numpy() == want).all()


def test_train_needs_a_model(competition, tmp_path):
    from arena_core.config import ConfigError

    with pytest.raises(ConfigError, match="no model"):
        api.train(competition / "train.parquet", tmp_path / "run", TINY_CONFIG)
    with pytest.raises(ValueError, match="1 weight"):
        api.predict(api.load(competition / "test.parquet"), ["a", "b"], weights=[1.0])
