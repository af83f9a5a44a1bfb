import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arena_core.evaluation.length import length_baseline, length_difference_buckets
from arena_core.evaluation.metrics import accuracy, align, evaluate, log_loss, position_bias
from arena_core.evaluation.tables import EvalResult, format_table


def make_frame(ids=(1, 2, 3, 4), labels=(0, 1, 0, 2), **extra):
    n = len(ids)
    frame = pd.DataFrame(
        {
            "id": list(ids),
            "prompt": ["q"] * n,
            "response_a": ["a" * (10 * (i + 1)) for i in range(n)],
            "response_b": ["b" * 20 for _ in range(n)],
            "label": pd.array(list(labels), dtype="Int64"),
            "language": ["English"] * n,
        }
    )
    for k, v in extra.items():
        frame[k] = list(v)
    return frame


def make_preds(ids, p_b, p_tie=None):
    p_b = np.asarray(p_b, dtype=float)
    if p_tie is None:
        return pd.DataFrame({"id": list(ids), "p_a": 1 - p_b, "p_b": p_b})
    p_tie = np.asarray(p_tie, dtype=float)
    return pd.DataFrame({"id": list(ids), "p_a": 1 - p_b - p_tie, "p_b": p_b, "p_tie": p_tie})


# ------------------------------------------------------------------------------------ core metrics


def test_accuracy_two_and_three_classes():
    probs2 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert accuracy([0, 1, 1, 1], probs2) == pytest.approx(0.75)
    probs3 = np.array([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2], [0.1, 0.8, 0.1]])
    assert accuracy([2, 0, 0], probs3) == pytest.approx(2 / 3)


def test_accuracy_argmax_tie_goes_to_a():
    assert accuracy([0], [[0.5, 0.5]]) == 1.0
    assert accuracy([1], [[0.5, 0.5]]) == 0.0


def test_log_loss_known_values():
    assert log_loss([0, 1], [[0.5, 0.5], [0.5, 0.5]]) == pytest.approx(math.log(2))
    assert log_loss([0, 1, 2], np.full((3, 3), 1 / 3)) == pytest.approx(math.log(3))
    assert log_loss([1], [[0.2, 0.8]]) == pytest.approx(-math.log(0.8))


def test_log_loss_renormalises_and_clips():
    # rows are renormalised: [2, 2] is 0.5 / 0.5
    assert log_loss([0], [[2.0, 2.0]]) == pytest.approx(math.log(2))
    # a hard zero on the true class costs -log(eps), not infinity
    ll = log_loss([1], [[1.0, 0.0]], eps=1e-15)
    assert math.isfinite(ll)
    assert ll == pytest.approx(-math.log(1e-15), rel=1e-6)


def test_log_loss_empty_is_nan():
    assert math.isnan(log_loss(np.array([], dtype=int), np.zeros((0, 2))))
    assert math.isnan(accuracy(np.array([], dtype=int), np.zeros((0, 2))))


@pytest.mark.parametrize(
    "labels, probs, match",
    [
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], r"labels must lie in \[0, 1\]"),
        ([0], [0.5, 0.5], r"\(n, 2\) or \(n, 3\)"),
        ([0, 1], [[0.5, 0.5]], "length 1"),
        ([0], [[np.nan, 0.5]], "NaN"),
        ([0.5], [[0.5, 0.5]], "integers"),
    ],
)
def test_metric_input_errors(labels, probs, match):
    with pytest.raises(ValueError, match=match):
        log_loss(labels, probs)


@st.composite
def labelled_probs(draw, k=None):
    k = draw(st.sampled_from([2, 3])) if k is None else k
    n = draw(st.integers(1, 30))
    raw = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(0.01, 1.0)))
    labels = draw(hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)))
    return labels, raw / raw.sum(axis=1, keepdims=True)


@given(labelled_probs())
def test_log_loss_of_perfect_prediction_is_zero(data):
    labels, probs = data
    perfect = np.eye(probs.shape[1])[labels]
    assert log_loss(labels, perfect) == pytest.approx(0.0, abs=1e-12)
    assert accuracy(labels, perfect) == 1.0


@given(labelled_probs(k=2))
def test_swapping_columns_and_labels_keeps_metrics(data):
    labels, probs = data
    keep = probs[:, 0] != probs[:, 1]  # an exact tie is decided for A, which is not symmetric
    assume(keep.any())
    labels, probs = labels[keep], probs[keep]
    swapped = probs[:, ::-1]
    assert accuracy(1 - labels, swapped) == accuracy(labels, probs)
    assert log_loss(1 - labels, swapped) == pytest.approx(log_loss(labels, probs))


@given(labelled_probs())
def test_log_loss_not_below_zero_and_uniform_bound(data):
    labels, probs = data
    ll = log_loss(labels, probs)
    assert ll >= 0
    # no prediction loses more than -log(min prob)
    assert ll <= -math.log(probs.min()) + 1e-9


# ------------------------------------------------------------------------------------ length baseline


def test_length_baseline_equal_lengths_is_half():
    frame = make_frame(ids=[10, 11], labels=[0, 1])
    frame["response_a"] = ["same", "x" * 50]
    frame["response_b"] = ["four", "y" * 50]
    preds = length_baseline(frame)
    assert list(preds.columns) == ["id", "p_a", "p_b"]
    np.testing.assert_allclose(preds[["p_a", "p_b"]].to_numpy(), 0.5)


def test_length_baseline_longer_wins_smoothly_and_finitely():
    frame = make_frame(ids=[1, 2, 3, 4], labels=[1, 1, 0, 1])
    frame["response_a"] = ["", "a" * 100, "a" * 100, "a" * 100]
    frame["response_b"] = ["b" * 100_000, "b" * 110, "b" * 200, "b" * 50]
    preds = length_baseline(frame, temperature=2.0)
    p_b = preds["p_b"].to_numpy()
    assert np.all((p_b > 0) & (p_b < 1))
    assert p_b[0] > p_b[2] > p_b[1] > 0.5 > p_b[3]
    np.testing.assert_allclose(preds["p_a"] + preds["p_b"], 1.0)
    # twice as long (in log1p terms) with temperature 2: sigmoid(log(201/101) / 2)
    assert p_b[2] == pytest.approx(1 / (1 + (201 / 101) ** -0.5))
    labels = frame["label"].to_numpy(dtype=int)
    assert math.isfinite(log_loss(labels, preds[["p_a", "p_b"]].to_numpy()))
    # a higher temperature is closer to 0.5
    assert length_baseline(frame, temperature=10.0)["p_b"].iloc[2] < p_b[2]


def test_length_baseline_keeps_id_dtype_and_order():
    frame = make_frame(ids=[2**40 + 7, 3, 1], labels=[0, 1, 0])
    preds = length_baseline(frame)
    assert preds["id"].dtype == np.int64
    assert preds["id"].tolist() == [2**40 + 7, 3, 1]
    frame_s = make_frame(ids=["007", "b", "a"], labels=[0, 1, 0])
    assert length_baseline(frame_s)["id"].tolist() == ["007", "b", "a"]


def test_length_baseline_with_tie():
    frame = make_frame()
    preds = length_baseline(frame, with_tie=True, tie_prob=0.25)
    assert list(preds.columns) == ["id", "p_a", "p_b", "p_tie"]
    np.testing.assert_allclose(preds[["p_a", "p_b", "p_tie"]].sum(axis=1), 1.0)
    assert (preds["p_tie"] == 0.25).all()


def test_length_baseline_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        length_baseline(make_frame(), temperature=0)


# ------------------------------------------------------------------------------------ align


def test_align_joins_by_id_not_position():
    frame = make_frame(ids=[5, 6, 7, 8], labels=[0, 1, 1, 0])
    preds = make_preds([8, 6, 5, 7], p_b=[0.1, 0.9, 0.2, 0.8])  # shuffled
    labels, probs, sub = align(frame, preds)
    assert labels.tolist() == [0, 1, 1, 0]
    assert sub["id"].tolist() == [5, 6, 7, 8]
    np.testing.assert_allclose(probs[:, 1], [0.2, 0.9, 0.8, 0.1])
    assert accuracy(labels, probs) == 1.0


def test_align_skips_unlabelled_rows_and_their_predictions():
    frame = make_frame(ids=[1, 2, 3], labels=[0, None, 1])
    labels, probs, sub = align(frame, make_preds([3, 1], p_b=[0.7, 0.4]))
    assert sub["id"].tolist() == [1, 3]
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1]
    # a prediction for the unlabelled id 2 is allowed and ignored
    labels, probs, sub = align(frame, make_preds([1, 2, 3], p_b=[0.4, 0.5, 0.7]))
    np.testing.assert_allclose(probs[:, 1], [0.4, 0.7])


def test_align_three_class_probs():
    frame = make_frame(ids=[1, 2], labels=[2, 0])
    _, probs, _ = align(frame, make_preds([2, 1], p_b=[0.1, 0.2], p_tie=[0.1, 0.7]))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs[0], [0.1, 0.2, 0.7])


def test_align_missing_ids_are_named():
    frame = make_frame(ids=list(range(10)), labels=[0] * 10)
    preds = make_preds([0, 1, 2], p_b=[0.5] * 3)
    with pytest.raises(ValueError, match=r"7 labelled id\(s\) have no prediction: 3, 4, 5, 6, 7, \.\.\."):
        align(frame, preds)


def test_align_duplicated_prediction_ids():
    frame = make_frame(ids=[1, 2], labels=[0, 1])
    preds = make_preds([1, 2, 2], p_b=[0.5] * 3)
    with pytest.raises(ValueError, match=r"1 duplicated prediction id\(s\): 2"):
        align(frame, preds)


def test_align_unknown_prediction_ids():
    frame = make_frame(ids=[1, 2], labels=[0, 1])
    preds = make_preds([1, 2, 99], p_b=[0.5] * 3)
    with pytest.raises(ValueError, match=r"not in the frame: 99"):
        align(frame, preds)


def test_align_duplicated_frame_ids():
    frame = make_frame(ids=[1, 1], labels=[0, 1])
    with pytest.raises(ValueError, match=r"frame has 1 duplicated id\(s\): 1"):
        align(frame, make_preds([1], p_b=[0.5]))


def test_align_id_kind_mismatch_is_explained_in_user_terms():
    frame = make_frame(ids=[123, 124], labels=[0, 1])
    with pytest.raises(ValueError) as err:
        align(frame, make_preds(["123", "124"], p_b=[0.5, 0.5]))
    msg = str(err.value)
    assert msg.startswith(
        "the ids in the predictions are text (e.g. '123', '124') but the ids in the data are integers"
    )
    assert "all 2 ids that need a prediction have one spelled the same: only the kind differs" in msg
    assert "as plain integers" in msg and "astype" not in msg and "preds[" not in msg
    frame_s = make_frame(ids=["a1", "a2"], labels=[0, 1])
    with pytest.raises(
        ValueError, match=r"predictions are integers .* data are text .* 0 of the 2 ids"
    ) as err:
        align(frame_s, make_preds([1, 2], p_b=[0.5, 0.5]))
    assert "astype" not in str(err.value)


def _labelled_files(tmp_path, ids):
    """A labelled WSDM csv with ``ids`` as written, read back as ``arena evaluate`` reads it."""
    from arena_core.data.competition import load_competition_file

    data = tmp_path / "labels.csv"
    n = len(ids)
    pd.DataFrame(
        {
            "id": ids,
            "prompt": "q",
            "response_a": "a",
            "response_b": "b",
            "winner": ["model_a", "model_b"] * (n // 2),
        }
    ).to_csv(data, index=False)
    return data, load_competition_file(data).frame


def test_evaluate_names_both_files_when_integer_ids_meet_text_ids(tmp_path):
    from arena_core.evaluation.predictions_io import read_predictions

    data, frame = _labelled_files(tmp_path, ["000100", "abc"])
    assert frame["id"].tolist() == ["000100", "abc"]  # text: '000100' is not a plain integer
    pred = tmp_path / "preds.parquet"
    make_preds([100, 7], p_b=[0.2, 0.8]).to_parquet(pred)  # ids that went through a number on the way
    with pytest.raises(ValueError) as err:
        evaluate(frame, read_predictions(pred), data_file=data, pred_file=pred)
    msg = str(err.value)
    assert msg.startswith(
        f"the ids in the predictions file {pred} are integers (e.g. 100, 7) but the ids in the data file {data} "
        "are text (e.g. '000100', 'abc')"
    )
    assert "0 of the 2 ids that need a prediction have one spelled the same and 2 do not" in msg
    assert f"write the ids in {pred} exactly as {data} spells them, as text" in msg


def test_predictions_csv_ids_are_read_as_the_data_reads_them(tmp_path):
    """'000100' in a predictions csv stays text, as in the data file, instead of becoming the number 100."""
    from arena_core.evaluation.predictions_io import read_predictions

    data, frame = _labelled_files(tmp_path, ["000100", "42"])
    pred = tmp_path / "preds.csv"
    pred.write_text("id,p_a,p_b\n42,0.3,0.7\n000100,0.9,0.1\n", encoding="utf-8")
    preds = read_predictions(pred)
    assert preds["id"].tolist() == ["42", "000100"]
    result = evaluate(frame, preds, data_file=data, pred_file=pred)
    assert result.n == 2 and result.accuracy == 1.0
    plain = tmp_path / "plain.csv"  # plain integers stay integers, on both sides
    plain.write_text("id,p_a,p_b\n7,0.5,0.5\n", encoding="utf-8")
    assert read_predictions(plain)["id"].dtype == np.int64


def test_align_string_ids_with_pandas_string_dtype():
    frame = make_frame(ids=["x", "y"], labels=[0, 1])
    frame["id"] = frame["id"].astype("string")
    labels, probs, _ = align(frame, make_preds(["y", "x"], p_b=[0.9, 0.1]))
    assert accuracy(labels, probs) == 1.0


def test_align_nan_prediction():
    frame = make_frame(ids=[1, 2], labels=[0, 1])
    with pytest.raises(ValueError, match=r"NaN/inf: 2"):
        align(frame, make_preds([1, 2], p_b=[0.5, np.nan]))


# ------------------------------------------------------------------------------------ evaluate


def test_evaluate_overall_groups_and_ties_excluded():
    frame = make_frame(
        ids=[1, 2, 3, 4, 5, 6],
        labels=[0, 1, 1, 2, 0, 2],
        source=["lmsys", "lmsys", "lmsys", "lmsys", "oasst", "oasst"],
        language=["English", "English", "German", "English", "Spanish", "Spanish"],
    )
    preds = make_preds([6, 5, 4, 3, 2, 1], p_b=[0.5, 0.3, 0.5, 0.4, 0.8, 0.1])
    res = evaluate(frame, preds)
    assert isinstance(res, EvalResult)
    assert res.n_classes == 2
    assert res.n_ties_excluded == 2
    assert res.n == 4
    # ids 1,2,3,5: p_b = 0.1, 0.8, 0.4, 0.3 with labels 0,1,1,0 -> id 3 wrong
    assert res.accuracy == pytest.approx(0.75)
    expected_ll = -np.mean(np.log([0.9, 0.8, 0.4, 0.7]))
    assert res.log_loss == pytest.approx(expected_ll)
    assert res.overall["pred_a_share"].iloc[0] == pytest.approx(0.75)
    assert any("2 tie-labelled row(s) excluded" in n for n in res.notes)

    src = res.groups["source"].set_index("source")
    assert src.loc["lmsys", "n"] == 3 and src.loc["lmsys", "ties_excluded"] == 1
    assert src.loc["oasst", "n"] == 1 and src.loc["oasst", "accuracy"] == 1.0
    lang = res.groups["language"].set_index("language")
    assert set(lang.index) == {"English", "German", "Spanish"}
    assert lang.loc["German", "n"] == 1 and lang.loc["German", "accuracy"] == 0.0
    # sorted by n, largest first
    assert res.groups["language"]["n"].tolist() == sorted(res.groups["language"]["n"], reverse=True)


def test_evaluate_three_class_scores_ties():
    frame = make_frame(ids=[1, 2, 3], labels=[0, 1, 2])
    preds = make_preds([1, 2, 3], p_b=[0.1, 0.8, 0.2], p_tie=[0.1, 0.1, 0.6])
    res = evaluate(frame, preds, by="language")
    assert res.n == 3 and res.n_ties_excluded == 0
    assert res.accuracy == 1.0
    assert res.log_loss == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.6])))
    assert any("3-class" in n for n in res.notes)


def test_evaluate_group_of_only_ties_is_shown_with_nan_metrics():
    frame = make_frame(ids=[1, 2, 3], labels=[0, 1, 2], language=["en", "en", "fr"])
    res = evaluate(frame, make_preds([1, 2, 3], p_b=[0.3, 0.6, 0.5]), by=["language"])
    lang = res.groups["language"].set_index("language")
    assert lang.loc["fr", "n"] == 0 and lang.loc["fr", "ties_excluded"] == 1
    assert math.isnan(lang.loc["fr", "accuracy"])
    assert "fr" in res.to_text()


def test_evaluate_skips_missing_group_column():
    frame = make_frame()  # no source column
    res = evaluate(frame, make_preds([1, 2, 3, 4], p_b=[0.4] * 4))
    assert "source" not in res.groups and "language" in res.groups
    # source is optional (WSDM files have none): skipped without a note on every evaluate and report
    assert not any("'source'" in n for n in res.notes)
    res = evaluate(frame, make_preds([1, 2, 3, 4], p_b=[0.4] * 4), by=("model_family",))
    assert any("'model_family' is not in the frame" in n for n in res.notes)


def test_eval_result_rendering():
    frame = make_frame(ids=[1, 2, 3, 4], labels=[0, 1, 0, 1], source=["a|b", "a|b", "c", "c"])
    res = evaluate(frame, make_preds([1, 2, 3, 4], p_b=[0.2, 0.7, 0.6, 0.9]))
    md = res.to_markdown()
    assert "### overall" in md and "### source" in md and "### language" in md
    assert "| group |   n |" in md
    assert "a\\|b" in md  # pipes in cells are escaped
    header_sep = [line for line in md.splitlines() if line.startswith("| ---")][0]
    assert "--:" in header_sep  # numbers right-aligned
    assert "0.7500" in md  # accuracy with 4 decimals
    text = res.to_text()
    assert "overall" in text and "log_loss" in text and "|" not in text.splitlines()[2]
    assert str(res) == text
    d = res.to_dict()
    assert d["overall"]["n"] == 4 and len(d["groups"]["source"]) == 2


def test_format_table_alignment():
    table = pd.DataFrame({"name": ["x", "longer"], "value": [1.5, float("nan")], "n": [3, 12]})
    lines = format_table(table).splitlines()
    assert lines[0].startswith("name  ")
    assert lines[1].replace(" ", "").strip("-") == ""
    assert lines[2].endswith(" 3") and lines[3].endswith("12")
    assert "-" in lines[3].split()[1]  # NaN shown as '-'
    assert len({len(line) for line in lines[1:2]}) == 1


# ------------------------------------------------------------------------------------ position bias


def test_position_bias_consistent_model():
    p = np.array([[0.8, 0.2], [0.3, 0.7]])
    res = position_bias(p, p.copy())
    assert res["n"] == 2
    assert res["flip_rate"] == 0.0 and res["mean_abs_diff"] == 0.0
    assert res["mean_p_first"] == pytest.approx(0.5)
    assert res["first_minus_second"] == pytest.approx(0.0)


def test_position_bias_model_that_always_prefers_first():
    ab = np.array([[0.7, 0.3], [0.7, 0.3]])
    # swapped pass: the first-shown (original B) gets 0.7; mapped back that is column 1
    ba = np.array([[0.3, 0.7], [0.3, 0.7]])
    res = position_bias(ab, ba)
    assert res["flip_rate"] == 1.0
    assert res["mean_abs_diff"] == pytest.approx(0.4)
    assert res["mean_p_first"] == pytest.approx(0.7)
    assert res["mean_p_second"] == pytest.approx(0.3)
    assert res["first_minus_second"] == pytest.approx(0.4)


def test_position_bias_three_classes_and_shape_check():
    ab = np.array([[0.5, 0.2, 0.3]])
    ba = np.array([[0.2, 0.5, 0.3]])
    res = position_bias(ab, ba)
    assert res["mean_abs_diff"] == pytest.approx(0.3)
    assert res["flip_rate"] == 1.0
    with pytest.raises(ValueError, match="same shape"):
        position_bias(ab, np.array([[0.5, 0.5]]))


# ------------------------------------------------------------------------------------ length buckets


def test_length_difference_buckets_default():
    frame = make_frame(ids=[1, 2, 3, 4, 5, 6], labels=[0] * 6)
    frame["response_a"] = ["x" * 100, "x" * 100, "x" * 10, "", "x" * 100, ""]
    frame["response_b"] = ["y" * 100, "y" * 1000, "y" * 100, "y" * 5, "", ""]
    frame.index = [10, 11, 12, 13, 14, 15]
    b = length_difference_buckets(frame)
    assert b.name == "length_bucket"
    assert list(b.index) == [10, 11, 12, 13, 14, 15]
    cats = list(b.cat.categories)
    assert cats == ["[-100%, -60%)", "[-60%, -20%)", "[-20%, +20%)", "[+20%, +60%)", "[+60%, +100%]"]
    assert b.cat.ordered
    assert b.tolist() == [cats[2], cats[4], cats[4], cats[4], cats[0], cats[2]]


def test_length_difference_buckets_custom_edges():
    frame = make_frame(ids=[1, 2], labels=[0, 0])
    frame["response_a"] = ["x" * 100, "x" * 100]
    frame["response_b"] = ["y" * 95, "y" * 300]
    b = length_difference_buckets(frame, edges=[-1, -0.1, 0.1, 1])
    assert b.tolist() == ["[-10%, +10%)", "[+10%, +100%]"]
    with pytest.raises(ValueError, match="strictly increasing"):
        length_difference_buckets(frame, edges=[0.5, 0.1])
    with pytest.raises(ValueError, match="do not cover"):
        length_difference_buckets(frame, edges=[0, 1])


@settings(max_examples=50)
@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=1, max_size=20), st.integers(1, 9)
)
def test_length_buckets_cover_every_row(lengths, n_buckets):
    frame = pd.DataFrame(
        {
            "id": range(len(lengths)),
            "response_a": ["a" * a for a, _ in lengths],
            "response_b": ["b" * b for _, b in lengths],
        }
    )
    b = length_difference_buckets(frame, n_buckets=n_buckets)
    assert b.notna().all()
    assert len(b.cat.categories) == n_buckets
    # B longer never lands in a lower bucket than B shorter
    codes = b.cat.codes.to_numpy()
    diff = np.array([y - x for x, y in lengths])
    assert np.all(codes[diff > 0].min(initial=n_buckets) >= codes[diff < 0].max(initial=-1))
