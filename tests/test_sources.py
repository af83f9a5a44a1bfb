"""Several training sources in one frame (duplicates dropped and counted) and leakage into a test file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from arena_core.cli import main
from arena_core.data.sources import find_leakage, load_sources
from arena_core.training.frames import training_frame


def wsdm(rows, path):
    pd.DataFrame(rows, columns=["id", "prompt", "response_a", "response_b", "winner", "language"]).to_parquet(
        path
    )
    return path


def lmsys(rows, path):
    """LMSYS csv: JSON-list turns and one-hot winners; ``rows`` as (id, prompt, a, b, label)."""
    out = []
    for i, p, a, b, lab in rows:
        out.append(
            {
                "id": i,
                "model_a": "x",
                "model_b": "y",
                "prompt": json.dumps([p]),
                "response_a": json.dumps([a]),
                "response_b": json.dumps([b]),
                "winner_model_a": int(lab == 0),
                "winner_model_b": int(lab == 1),
                "winner_tie": int(lab == 2),
            }
        )
    pd.DataFrame(out).to_csv(path, index=False)
    return path


@pytest.fixture()
def two_sources(tmp_path):
    a = wsdm(
        [
            ("w1", "p1", "a1", "b1", "model_a", "English"),
            ("w2", "p2", "a2", "b2", "model_b", "English"),
            ("w3", "p3", "a3", "b3", "model_a", "German"),
            ("w4", "p4", "a4", "b4", "model_b", "English"),
            ("w5", "p5", "a5", "b5", "model_a", "English"),
        ],
        tmp_path / "wsdm_train.parquet",
    )
    b = lmsys(
        [
            (10, "p1", "a1", "b1", 0),  # exact duplicate of w1, same winner
            (11, "p2", "b2", "a2", 0),  # w2 with A/B swapped: "A wins" here is w2's "B wins" -> agrees
            (12, "p3", "b3", "a3", 0),  # w3 swapped, but the winner disagrees
            (13, "p6", "a6", "b6", 2),  # new row, a tie
            (14, "p7", "a7", "b7", 1),  # new row
            (15, "p6", "a6", "b6", 1),  # duplicate WITHIN this file: kept
        ],
        tmp_path / "lmsys_train.csv",
    )
    return a, b


def test_duplicates_across_two_sources_dropped_and_counted(two_sources, capsys):
    a, b = two_sources
    combined = load_sources([a, b], verbose=True)
    frame = combined.frame
    assert len(frame) == 5 + 3
    assert combined.dropped == 3
    assert combined.duplicates == {("lmsys_train", "wsdm_train"): 3}
    assert combined.conflicting == 1
    # ids were str and int: unique as text, so they become text, unchanged otherwise
    assert combined.ids == "as text"
    assert frame["id"].tolist() == ["w1", "w2", "w3", "w4", "w5", "13", "14", "15"]
    assert frame["source"].tolist() == ["wsdm_train"] * 5 + ["lmsys_train"] * 3
    assert frame["label"].tolist() == [0, 1, 0, 1, 0, 2, 1, 1]
    out = capsys.readouterr().out
    assert "dropped 3 duplicate(s) across sources (lmsys_train vs wsdm_train: 3)" in out
    assert "1 of them had a different winner" in out


def test_ties_per_num_labels_and_source_column_kept(two_sources, tmp_path):
    a, b = two_sources
    assert len(training_frame([a, b], num_labels=3)) == 8
    two = training_frame([a, b], num_labels=2)
    assert len(two) == 7 and 2 not in set(two["label"])
    # a file with its own source column keeps it (real_pref_dev.parquet has one)
    frame = pd.read_parquet(a)
    frame["source"] = ["hh", "hh", "oasst", "oasst", "oasst"]
    frame.to_parquet(tmp_path / "with_source.parquet")
    got = load_sources([tmp_path / "with_source.parquet", b]).frame
    assert got["source"].tolist()[:5] == ["hh", "hh", "oasst", "oasst", "oasst"]
    assert set(got["source_file"]) == {"with_source", "lmsys_train"}


def test_colliding_ids_are_prefixed_with_the_source(tmp_path):
    a = wsdm([("1", "p1", "a1", "b1", "model_a", "en")], tmp_path / "one.parquet")
    b = wsdm([("1", "q1", "c1", "d1", "model_b", "en")], tmp_path / "two.parquet")
    combined = load_sources([a, b])
    assert combined.ids == "prefixed"
    assert combined.frame["id"].tolist() == ["one:1", "two:1"]


def test_unlabelled_rows_refused_for_hard_label_training(tmp_path):
    pd.DataFrame(
        {"id": ["t1"], "prompt": ["p"], "response_a": ["a"], "response_b": ["b"], "language": ["en"]}
    ).to_parquet(tmp_path / "test.parquet")
    with pytest.raises(ValueError, match=r"test.parquet: 1 row\(s\) without a winner \(e.g. id 't1'\)"):
        training_frame(tmp_path / "test.parquet", 2)


def test_leakage_exact_and_swapped(two_sources, tmp_path, capsys):
    a, _ = two_sources
    test_path = tmp_path / "test.parquet"
    pd.DataFrame(
        {
            "id": ["t1", "t2", "t3"],
            "prompt": ["p1", "p4", "zz"],
            "response_a": ["a1", "b4", "a5"],  # t2 is w4 with A and B swapped
            "response_b": ["b1", "a4", "b5"],  # t3 shares responses with w5 but not the prompt
            "language": ["English"] * 3,
        }
    ).to_parquet(test_path)
    from arena_core.data.competition import load_competition_file

    leak = find_leakage(load_competition_file(a).frame, load_competition_file(test_path).frame)
    assert leak.exact.values.tolist() == [["w1", "t1"]]
    assert leak.swapped.values.tolist() == [["w4", "t2"]]
    assert leak.rows == 2

    assert main(["validate", str(a), "--against", str(test_path)]) == 0
    out = capsys.readouterr().out
    assert "LEAKAGE: 2 of 5 training rows duplicate a test row: 1 exactly" in out
    assert "1 with A/B swapped (train ids 'w4'; test ids 't2')" in out
    assert main(["validate", str(a), "--against", str(test_path), "--strict"]) == 1
    clean = wsdm([("c1", "new", "x", "y", "model_a", "en")], tmp_path / "clean.parquet")
    assert main(["validate", str(clean), "--against", str(test_path), "--strict"]) == 0
    assert "no leakage: none of 1 training rows" in capsys.readouterr().out
