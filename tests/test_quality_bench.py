"""The quality benchmark's split and report, and what `arena demo` says about quality on real pairs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.cli.demo import QUALITY_RESULT, _repo_root, real_quality_lines

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_quality.py"


def bench():
    spec = importlib.util.spec_from_file_location("bench_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pairs(n_by_source: dict) -> pd.DataFrame:
    rows = []
    for source, n in n_by_source.items():
        rows += [{"id": f"{source}-{i}", "source": source, "label": i % 2} for i in range(n)]
    return pd.DataFrame(rows)


def test_split_is_seeded_disjoint_stratified_and_eval_rows_do_not_follow_train_rows():
    b = bench()
    frame = pairs({"hh": 600, "pandalm": 250, "oasst2": 40})
    train, ev = b.split(frame, 100, 60, 0.2, seed=0)
    again_train, again_ev = b.split(frame, 100, 60, 0.2, seed=0)
    assert train["id"].tolist() == again_train["id"].tolist() and ev["id"].tolist() == again_ev["id"].tolist()
    assert not set(train["id"]) & set(ev["id"])
    assert len(train) == 100 and len(ev) == 60
    # proportional to the sources (600:250:40 of 890)
    assert ev["source"].value_counts().to_dict() == {"hh": 40, "pandalm": 17, "oasst2": 3}
    _, ev_more_train = b.split(frame, 300, 60, 0.2, seed=0)
    assert ev_more_train["id"].tolist() == ev["id"].tolist()
    _, other_seed = b.split(frame, 100, 60, 0.2, seed=1)
    assert other_seed["id"].tolist() != ev["id"].tolist()


def _report(tmp_path: Path) -> Path:
    b = bench()
    group = {"source": [{"source": "hh", "n": 3, "accuracy": 0.5, "log_loss": 0.7}]}
    rows = [
        {"name": "length baseline", "n": 3, "accuracy": 0.5, "log_loss": 0.72, "steps": 0, "groups": group},
        {"name": "random head + marker template", "n": 3, "accuracy": 0.6, "log_loss": 0.69, "steps": 40},
        {"name": "verdict head + judge template", "n": 3, "accuracy": 0.7, "log_loss": 0.64, "steps": 40},
    ]
    for r in rows[1:]:
        r["groups"] = group
    report = {
        "settings": {
            "data": "../shared/data/real_pref_dev.parquet",
            "model_name": "gemma3-270m-hf",
            "train_rows": 320,
        },
        "headline": b.headline(rows),
        "rows": rows,
    }
    assert report["headline"]["best_fine_tuned"]["name"] == "verdict head + judge template"
    path = tmp_path / "quality.json"
    path.write_text(json.dumps(report))
    return path


def test_demo_quotes_the_benchmark_result_beside_the_synthetic_number(tmp_path):
    line, verdict = real_quality_lines(_report(tmp_path))
    assert "3 held out from real_pref_dev.parquet" in line and "gemma3-270m-hf" in line
    assert "verdict head + judge template: accuracy 0.700, log loss 0.640" in line
    assert "length baseline 0.500 / 0.720" in line
    # +0.2 on 3 rows is inside the 95 % interval (+/-0.566): the demo must not claim a win
    assert "does not beat the length baseline beyond noise (+0.200 accuracy" in verdict


def test_demo_says_beats_only_beyond_the_interval(tmp_path):
    report = json.loads(_report(tmp_path).read_text())
    report["headline"]["best_fine_tuned"].update(n=2000, accuracy=0.62)
    report["headline"]["length_baseline"]["accuracy"] = 0.55
    path = tmp_path / "big.json"
    path.write_text(json.dumps(report))
    assert "beats the length baseline beyond noise" in real_quality_lines(path)[1]


def test_demo_says_not_measured_yet_when_there_is_no_result(tmp_path):
    (line,) = real_quality_lines(tmp_path / "missing.json")
    assert "not measured yet" in line and "bench_quality.py" in line
    (tmp_path / "broken.json").write_text("{")
    assert "not measured yet" in real_quality_lines(tmp_path / "broken.json")[0]
    assert "not measured yet" in real_quality_lines(None)[0]


def test_demo_reports_the_held_out_rows_of_a_real_train_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    metrics = {"eval_rows": 40, "accuracy": 0.625, "log_loss": 0.66}
    (run / "manifest.json").write_text(json.dumps({"metrics": metrics}))
    lines = real_quality_lines(tmp_path / "missing.json", run)
    assert lines[0] == "  your --train file, 40 held-out rows: accuracy 0.625, log loss 0.660"
    (run / "manifest.json").write_text(json.dumps({"metrics": {"train_rows": 10}}))  # trained on every row
    assert "no held-out rows" in real_quality_lines(None, run)[0]


def test_the_demo_looks_where_the_benchmark_writes():
    b = bench()
    assert _repo_root() is not None
    assert _repo_root() / QUALITY_RESULT == b.DEFAULT_OUT
    assert np.isclose(b._proportional(pd.Series({"a": 2, "b": 1}), 3)["a"], 2)


def test_demo_quotes_the_committed_feature_model_results_and_survives_their_absence(tmp_path):
    from arena_core.cli.demo import FEATURES_RESULT, feature_quality_lines

    lines = feature_quality_lines(Path(__file__).resolve().parent.parent / FEATURES_RESULT)
    assert len(lines) == 3 and all("length" in line and "rows, 5-fold CV" in line for line in lines)
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    for missing in (tmp_path / "none.json", tmp_path / "broken.json", None):
        (line,) = feature_quality_lines(missing)
        assert "not measured yet" in line
