"""Soft labels: reading teacher files, joining them to the training rows, swapping them with A/B."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_core.data.competition import DataError
from arena_core.training.distill import attach_soft_labels, read_soft_labels, swap_soft
from arena_core.training.frames import training_frame


def test_swap_maps_teacher_probabilities_to_the_swapped_order():
    two = np.array([[0.9, 0.1], [0.3, 0.7]])
    assert swap_soft(two).tolist() == [[0.1, 0.9], [0.7, 0.3]]
    three = np.array([[0.6, 0.1, 0.3]])
    assert swap_soft(three).tolist() == [[0.1, 0.6, 0.3]]  # the tie stays a tie
    assert np.array_equal(swap_soft(swap_soft(three)), three)


def test_read_oof_and_save_probs_files(tmp_path):
    oof = pd.DataFrame(
        {"id": ["a", "b"], "p_a": [0.8, 0.2], "p_b": [0.2, 0.8], "fold": [0, 1], "label": [0, 1]}
    )
    oof.to_parquet(tmp_path / "oof.parquet")
    assert read_soft_labels(tmp_path / "oof.parquet").columns.tolist() == ["id", "p_a", "p_b"]
    long = pd.DataFrame(
        {
            "id": ["a", "b", "a", "b", "a", "b"],
            "model": ["m1", "m1", "m2", "m2", "ensemble", "ensemble"],
            "p_a": [0.8, 0.2, 0.6, 0.4, 0.7, 0.3],
            "p_b": [0.2, 0.8, 0.4, 0.6, 0.3, 0.7],
        }
    )
    long.to_parquet(tmp_path / "ens.parquet")
    assert read_soft_labels(tmp_path / "ens.parquet")["p_a"].tolist() == [0.7, 0.3]
    long[long["model"] == "m2"].to_parquet(tmp_path / "one.parquet")
    assert read_soft_labels(tmp_path / "one.parquet")["p_a"].tolist() == [0.6, 0.4]
    long[long["model"] != "ensemble"].to_parquet(tmp_path / "two.parquet")
    with pytest.raises(DataError, match=r"two.parquet: holds several models \['m1', 'm2'\]"):
        read_soft_labels(tmp_path / "two.parquet")
    oof.assign(p_b=[0.5, 0.8]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet: 1 row\(s\) are not probabilities .* ids 'a'"):
        read_soft_labels(tmp_path / "bad.parquet")


def frame(labels):
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(labels))],
            "prompt": "p",
            "response_a": "a",
            "response_b": "b",
            "label": pd.array(labels, dtype="Int64"),
            "language": "en",
        }
    )


def test_attach_two_and_three_classes_and_refusals():
    soft3 = pd.DataFrame({"id": ["r0", "r1"], "p_a": [0.6, 0.2], "p_b": [0.2, 0.2], "p_tie": [0.2, 0.6]})
    got = attach_soft_labels(frame([0, None, 1]), soft3.assign(id=["r0", "r1"]), 2, "t.parquet")
    # a 2-class student: p_tie dropped, the rest renormalised; r2 has a winner and no soft label
    np.testing.assert_allclose(got[["soft_a", "soft_b"]].to_numpy()[:2], [[0.75, 0.25], [0.5, 0.5]])
    assert np.isnan(got["soft_a"].iloc[2])
    three = attach_soft_labels(frame([0, 2]), soft3, 3, "t.parquet")
    np.testing.assert_allclose(three[["soft_a", "soft_b", "soft_tie"]], [[0.6, 0.2, 0.2], [0.2, 0.2, 0.6]])
    with pytest.raises(DataError, match="has no p_tie column; a 3-class model"):
        attach_soft_labels(frame([0]), soft3.drop(columns="p_tie"), 3, "t.parquet")
    with pytest.raises(
        DataError, match=r"1 training row\(s\) have neither a winner nor a soft label, ids 'r2'"
    ):
        attach_soft_labels(frame([0, 1, None]), soft3, 2, "t.parquet")
    with pytest.raises(DataError, match="none of its ids matches a training row"):
        attach_soft_labels(frame([0]), soft3.assign(id=["x", "y"]), 2, "t.parquet")


def test_training_frame_keeps_unlabelled_rows_that_have_soft_labels(tmp_path):
    rows = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "prompt": ["p1", "p2", "p3", "p4"],
            "response_a": ["a"] * 4,
            "response_b": ["b"] * 4,
            "winner": ["model_a", "tie", "model_b", "model_a"],
            "language": ["en"] * 4,
        }
    )
    rows.to_parquet(tmp_path / "train.parquet")
    rows.drop(columns="winner").assign(id=[5, 6, 7, 8], prompt=["q1", "q2", "q3", "q4"]).to_parquet(
        tmp_path / "extra.parquet"
    )
    soft = pd.DataFrame(
        {"id": [1, 5, 6, 7, 8], "p_a": [0.9, 0.3, 0.5, 0.6, 0.1], "p_b": [0.1, 0.7, 0.5, 0.4, 0.9]}
    )
    soft.to_parquet(tmp_path / "soft.parquet")
    got = training_frame(
        [tmp_path / "train.parquet", tmp_path / "extra.parquet"], 2, soft_labels=tmp_path / "soft.parquet"
    )
    assert got["id"].tolist() == [1, 3, 4, 5, 6, 7, 8]  # the tie (id 2) dropped for 2 classes
    assert got["label"].isna().sum() == 4
    assert got["soft_b"].tolist()[3:] == [0.7, 0.5, 0.4, 0.9]
