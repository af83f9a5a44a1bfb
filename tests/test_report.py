"""arena_core.evaluation.report (and `arena report`): files written, numbers identical to metrics.evaluate, calibration, position bias."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from arena_core.cli.report import _parse_swapped, register
from arena_core.data.competition import load_competition_file
from arena_core.data.synthetic import make_rows
from arena_core.evaluation.length import length_baseline
from arena_core.evaluation.metrics import align, evaluate, position_bias
from arena_core.evaluation.report import BASELINE_NAME, build_report, calibration_curve

N_ROWS = 600
PLOTS = {"by_language.png", "by_length_difference.png", "calibration.png", "position_bias.png"}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Labelled frame whose winners are drawn from a known P(A wins), plus two models and a swapped pass."""
    rng = np.random.default_rng(7)
    rows = make_rows(N_ROWS, seed=3, kind="report")
    p_true = rng.uniform(0.03, 0.97, N_ROWS)
    u = rng.uniform(size=N_ROWS)
    tie = 0.05  # a few ties: 2-class predictions must leave them out, as evaluate does
    rows["winner"] = np.where(u < tie, "tie", np.where(u < tie + (1 - tie) * p_true, "model_a", "model_b"))
    rows["source"] = np.where(rng.uniform(size=N_ROWS) < 0.7, "alpha", "beta")
    path = tmp_path_factory.mktemp("report-data") / "labelled.parquet"
    rows.to_parquet(path, index=False)
    frame = load_competition_file(path).frame
    p = pd.Series(p_true, index=rows["id"]).loc[frame["id"]].to_numpy()

    calibrated = pd.DataFrame({"id": frame["id"], "p_a": p, "p_b": 1 - p})
    # the swapped pass as the model writes it: its p_a is the original B (plus a pull towards "first")
    p_first = np.clip(1 - p + 0.15 + rng.normal(0, 0.05, N_ROWS), 0.01, 0.99)
    swapped = pd.DataFrame({"id": frame["id"], "p_a": p_first, "p_b": 1 - p_first})

    logit = np.log(p / (1 - p))
    sharp = 1 / (1 + np.exp(-3 * logit))  # overconfident
    over = pd.DataFrame({"id": frame["id"], "p_a": sharp, "p_b": 1 - sharp})
    ba = np.clip(sharp - 0.2, 0.01, 0.99)
    over = over.assign(p_a_ab=sharp, p_b_ab=1 - sharp, p_a_ba=ba, p_b_ba=1 - ba)
    over.loc[over.index[:50], ["p_a_ba", "p_b_ba"]] = np.nan  # rows the uncertain-first TTA did not re-score

    preds = {"calibrated": calibrated, "overconfident": over}
    out = tmp_path_factory.mktemp("report") / "out"
    report = build_report(
        frame, preds, out, swapped={"calibrated": swapped}, title="Test report", min_language_rows=50
    )
    return {"frame": frame, "preds": preds, "swapped": swapped, "report": report, "out": out, "p": p}


def _table(md: str, first_header: str) -> pd.DataFrame:
    """The first Markdown table whose first column header is ``first_header``, as strings."""
    lines = md.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header:
            body = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                body.append([c.strip() for c in row.strip().strip("|").split("|")])
            return pd.DataFrame(body, columns=cells)
    raise AssertionError(f"no table starting with {first_header!r}")


def test_files_written_and_images_open(case):
    out = case["out"]
    md = case["report"].read_text(encoding="utf-8")
    links = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    assert links == PLOTS  # relative links, one per plot
    for name in links:
        f = out / name
        assert f.is_file() and f.stat().st_size > 10_000
        img = imread(f)
        assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 500
        assert img[..., :3].std() > 0.05  # not a blank canvas
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["models"]) == {"calibrated", "overconfident", BASELINE_NAME}
    assert set(summary["plots"]) == PLOTS
    assert summary["data"]["labelled"] == N_ROWS


def test_markdown_numbers_are_evaluates(case):
    frame, md = case["frame"], case["report"].read_text(encoding="utf-8")
    models = {**case["preds"], BASELINE_NAME: length_baseline(frame)}
    head = _table(md, "model").set_index("model")
    summary = json.loads((case["out"] / "summary.json").read_text(encoding="utf-8"))
    for name, pred in models.items():
        res = evaluate(frame, pred)
        assert res.n_ties_excluded > 0  # the ties were left out, as evaluate does
        assert head.loc[name, "accuracy"] == f"{res.accuracy:.4f}"
        assert head.loc[name, "log_loss"] == f"{res.log_loss:.4f}"
        assert head.loc[name, "n"] == str(res.n)
        assert res.to_markdown() in md  # the full `arena evaluate` tables, verbatim
        assert summary["models"][name]["accuracy"] == pytest.approx(res.accuracy, abs=1e-12)
        assert summary["models"][name]["log_loss"] == pytest.approx(res.log_loss, abs=1e-12)
        assert summary["headline"][name]["accuracy"] == summary["models"][name]["accuracy"]
        per_source = res.groups["source"].set_index("source")
        acc = _table(md, "source").set_index("source")  # first source table is accuracy
        for src in per_source.index:
            assert acc.loc[src, name] == f"{per_source.loc[src, 'accuracy']:.4f}"
    lang = _table(md, "language")  # the plot's groups: small languages pooled
    assert any(g.startswith("other (n<50)") for g in lang["language"])
    assert lang["n"].astype(int).sum() == evaluate(frame, case["preds"]["calibrated"]).n  # ties left out


def test_calibrated_model_lies_on_the_diagonal(case):
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 40_000)
    labels = (rng.uniform(size=p.size) >= p).astype(int)  # 0 (A wins) with probability p
    curve = calibration_curve(labels, np.column_stack([p, 1 - p]))
    assert curve["n"].sum() == p.size
    assert np.all(np.abs(curve["observed"] - curve["mean_pred"]) < 0.03)

    summary = json.loads((case["out"] / "summary.json").read_text(encoding="utf-8"))
    ece = {n: m["ece"] for n, m in summary["models"].items()}
    assert ece["calibrated"] < 0.08
    assert ece["overconfident"] > 2 * ece["calibrated"]
    y, probs, _ = align(case["frame"], case["preds"]["calibrated"])
    small = calibration_curve(y, probs)
    big = small[small["n"] >= 40]
    assert np.all(np.abs(big["observed"] - big["mean_pred"]) < 0.2)


def test_position_bias_from_swapped_file_and_per_order_columns(case):
    frame, md = case["frame"], case["report"].read_text(encoding="utf-8")
    section = md.split("## Position bias", 1)[1]
    pb = _table(section, "model").set_index("model")

    _, ab, _ = align(frame, case["preds"]["calibrated"])
    _, sw, _ = align(frame, case["swapped"])
    want = position_bias(ab, sw[:, ::-1])
    assert pb.loc["calibrated", "flip_rate"] == f"{want['flip_rate']:.4f}"
    assert pb.loc["calibrated", "first_minus_second"] == f"{want['first_minus_second']:.4f}"
    assert want["first_minus_second"] > 0.1  # the planted pull towards the first response shows

    over = case["preds"]["overconfident"].iloc[50:]
    want = position_bias(over[["p_a_ab", "p_b_ab"]].to_numpy(), over[["p_a_ba", "p_b_ba"]].to_numpy())
    assert pb.loc["overconfident", "n"] == str(N_ROWS - 50)
    assert pb.loc["overconfident", "flip_rate"] == f"{want['flip_rate']:.4f}"
    assert BASELINE_NAME not in pb.index


def test_mismatched_ids_raise_the_align_error(case, tmp_path):
    frame, pred = case["frame"], case["preds"]["calibrated"].copy()
    pred = pred.iloc[1:].copy()
    pred.loc[pred.index[0], "id"] = "not-an-id"
    with pytest.raises(ValueError, match="predictions do not match the labelled ids"):
        build_report(frame, {"m": pred}, tmp_path / "r")
    with pytest.raises(ValueError, match="predictions do not match the labelled ids"):
        build_report(frame, {"m": case["preds"]["calibrated"]}, tmp_path / "r", swapped={"m": pred})
    with pytest.raises(ValueError, match="unknown model"):
        build_report(frame, {"m": case["preds"]["calibrated"]}, tmp_path / "r", swapped={"other": pred})
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_cli_command(case, tmp_path, capsys):
    frame = case["frame"]
    data = tmp_path / "data.parquet"
    raw = frame.assign(winner=frame["label"].map({0: "model_a", 1: "model_b", 2: "tie"}).astype(str))
    raw.drop(columns=["label"]).to_parquet(data, index=False)
    # a --save-probs style file: two models stacked with a `model` column
    stacked = pd.concat(
        [
            case["preds"]["calibrated"].assign(model="m1"),
            case["preds"]["calibrated"].assign(model="m2", p_a=0.5, p_b=0.5),
        ]
    )
    stacked.to_parquet(tmp_path / "probs.parquet", index=False)
    case["swapped"].to_csv(tmp_path / "swapped.csv", index=False)

    parser = argparse.ArgumentParser(prog="arena")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    help_text = sub.choices["report"].format_help()
    assert "Outputs" in help_text and "summary.json" in help_text and "--swapped" in help_text

    out = tmp_path / "rep"
    args = parser.parse_args(
        [
            "report",
            "--data",
            str(data),
            "--pred",
            str(tmp_path / "probs.parquet"),
            "--name",
            "run",
            "--swapped",
            "-",
            "--out",
            str(out),
            "--no-baseline",
        ]
    )
    assert args.func(args) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert list(summary["models"]) == ["run/m1", "run/m2"]
    assert f"{evaluate(frame, case['preds']['calibrated']).accuracy:.4f}" in capsys.readouterr().out

    args = parser.parse_args(
        [
            "report",
            "--data",
            str(data),
            "--pred",
            str(tmp_path / "probs.parquet"),
            "--pred",
            str(tmp_path / "probs.parquet"),
            "--name",
            "only-one",
            "--out",
            str(out),
        ]
    )
    with pytest.raises(ValueError, match="one name per --pred"):
        args.func(args)

    # without swapped predictions or per-order columns the report says what position bias needs
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Position bias needs swapped predictions" in md
    assert not (out / "position_bias.png").exists() and "position_bias.png" not in md
    assert BASELINE_NAME not in md


def test_swapped_arguments_pair_by_order_or_name():
    names = ["a", "b"]
    assert _parse_swapped(["sa.csv", "-"], names) == {"a": "sa.csv"}
    assert _parse_swapped(["b=x=y.csv"], names) == {"b": "x=y.csv"}
    with pytest.raises(ValueError, match="one file per --pred"):
        _parse_swapped(["sa.csv"], names)


def test_wilson_half_widths_never_negative_at_the_edges():
    from arena_core.evaluation.report_tables import wilson_errors

    acc = np.array([0.0, 1.0, 0.3, 1.0, 0.0])
    n = np.array([7, 13, 10, 1, 3])
    below, above = wilson_errors(acc, n)
    assert (below >= 0).all() and (above >= 0).all()
    assert below[0] == 0 and above[1] == 0 and above[0] > 0 and below[1] > 0


# ----------------------------------------------------------------------------- golden report
GOLDEN = Path(__file__).parent / "golden" / "report"
REGENERATE = "ARENA_REGENERATE_GOLDEN"


def _golden_inputs():
    """A canonical frame built here (not through data/), two models, a swapped pass: fixed seeds."""
    rng = np.random.default_rng(11)
    langs = ["English"] * 120 + ["Spanish"] * 60 + ["Chinese"] * 40 + ["Russian"] * 12 + ["German"] * 8
    n = len(langs)
    len_a, len_b = rng.integers(5, 400, n), rng.integers(5, 400, n)
    p_true = 1 / (1 + np.exp(-(len_a - len_b) / 150))
    u = rng.uniform(size=n)
    label = np.where(u < 0.06, 2, np.where(u < 0.06 + 0.94 * p_true, 0, 1))
    frame = pd.DataFrame(
        {
            "id": [f"row-{i:04d}" for i in range(n)],
            "prompt": ["question"] * n,
            "response_a": ["a" * k for k in len_a],
            "response_b": ["b" * k for k in len_b],
            "label": pd.array(label, dtype="Int64"),
            "language": langs,
            "source": np.where(rng.uniform(size=n) < 0.6, "alpha", "beta"),
        }
    )
    p = np.clip(p_true + rng.normal(0, 0.1, n), 0.02, 0.98)
    ba = np.clip(p - 0.1, 0.02, 0.98)
    two = pd.DataFrame({"id": frame["id"], "p_a": p, "p_b": 1 - p, "p_a_ab": p, "p_b_ab": 1 - p})
    two = two.assign(p_a_ba=ba, p_b_ba=1 - ba)
    two.loc[two.index[:20], ["p_a_ba", "p_b_ba"]] = np.nan
    tie = np.full(n, 0.1)
    three = pd.DataFrame({"id": frame["id"], "p_a": 0.9 * p, "p_b": 0.9 * (1 - p), "p_tie": tie})
    first = np.clip(1 - p + 0.05, 0.02, 0.98)
    swapped = pd.DataFrame({"id": frame["id"], "p_a": 0.9 * first, "p_b": 0.9 * (1 - first), "p_tie": tie})
    return frame, {"two-class": two, "three-class": three}, {"three-class": swapped}


def test_report_matches_the_golden_files(tmp_path):
    """report.md byte for byte (and summary.json's numbers) as committed: a refactor must not change them.

    After an intended change to the report, regenerate with
    ``ARENA_REGENERATE_GOLDEN=1 pytest tests/test_report.py -k golden`` and review the diff.
    """
    frame, preds, swapped = _golden_inputs()
    build_report(
        frame,
        preds,
        tmp_path,
        swapped=swapped,
        title="Golden report",
        data_label="golden.parquet",
        min_language_rows=20,
    )
    if os.environ.get(REGENERATE):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name in ("report.md", "summary.json"):
            shutil.copyfile(tmp_path / name, GOLDEN / name)
    how = f"if the change is intended: {REGENERATE}=1 pytest tests/test_report.py -k golden"
    got = (tmp_path / "report.md").read_text(encoding="utf-8")
    want = (GOLDEN / "report.md").read_text(encoding="utf-8")
    assert got == want, f"report.md differs from {GOLDEN / 'report.md'}; {how}"
    got_summary = _leaves(json.loads((tmp_path / "summary.json").read_text(encoding="utf-8")))
    want_summary = _leaves(json.loads((GOLDEN / "summary.json").read_text(encoding="utf-8")))
    assert list(got_summary) == list(want_summary), f"summary.json's keys changed; {how}"
    for key, want_value in want_summary.items():
        # floats to 1e-9: last-bit differences between numpy builds are not a change of the report
        ok = (
            got_summary[key] == pytest.approx(want_value, rel=1e-9)
            if isinstance(want_value, float)
            else got_summary[key] == want_value
        )
        assert ok, f"summary.json {key}: {got_summary[key]!r} != {want_value!r}; {how}"


def _leaves(value, path: str = "") -> dict:
    """Nested JSON as {"a/b/0": leaf}, in document order."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {path: value}
    out = {}
    for key, item in items:
        out.update(_leaves(item, f"{path}/{key}"))
    return out
