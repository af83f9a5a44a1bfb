import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arena_core.data.atomic_write as atomic_write
import arena_core.data.submission as submission_mod
from arena_core.data.competition import LMSYS_TIE_RATE
from arena_core.data.submission import (
    detect_format,
    read_sample_submission,
    submission_frame,
    write_submission,
)
from arena_core.data.submission_checks import SubmissionError, validate_submission


def preds_for(ids, p_b=None, p_tie=None):
    n = len(ids)
    p_b = np.linspace(0.1, 0.9, n) if p_b is None else np.asarray(p_b, dtype=float)
    if p_tie is None:
        return pd.DataFrame({"id": list(ids), "p_a": 1 - p_b, "p_b": p_b})
    p_tie = np.asarray(p_tie, dtype=float)
    return pd.DataFrame({"id": list(ids), "p_a": 1 - p_b - p_tie, "p_b": p_b, "p_tie": p_tie})


def write_text(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------ writing


def test_write_wsdm_argmax_and_tie_goes_to_model_a(tmp_path):
    preds = preds_for([11, 12, 13], p_b=[0.2, 0.8, 0.5])
    out = write_submission(preds, tmp_path / "submission.csv", fmt="wsdm")
    assert out == tmp_path / "submission.csv"
    assert out.read_text().splitlines() == ["id,winner", "11,model_a", "12,model_b", "13,model_a"]


def test_write_wsdm_ignores_p_tie(tmp_path):
    preds = preds_for(["a", "b"], p_b=[0.3, 0.25], p_tie=[0.6, 0.5])
    out = write_submission(preds, tmp_path / "s.csv", fmt="wsdm")
    assert out.read_text().splitlines() == ["id,winner", "a,model_b", "b,model_a"]


def test_integer_ids_preserved_exactly(tmp_path):
    ids = [30192, 53567, 65089, 4294967295, 2**62 + 1]
    out = write_submission(preds_for(ids), tmp_path / "submission.csv", fmt="lmsys", test_ids=ids)
    lines = out.read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [str(i) for i in ids]
    back = pd.read_csv(out)
    assert back["id"].dtype == np.int64 and back["id"].tolist() == ids


def test_string_ids_with_leading_zeros_preserved(tmp_path):
    ids = ["00123", "0007", "abc"]
    out = write_submission(preds_for(ids), tmp_path / "submission.csv", test_ids=ids)
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == ids


def test_write_lmsys_with_and_without_tie(tmp_path):
    with_tie = preds_for([1, 2], p_b=[0.2, 0.5], p_tie=[0.3, 0.1])
    out = write_submission(with_tie, tmp_path / "a.csv", fmt="lmsys", test_ids=[1, 2])
    df = pd.read_csv(out)
    assert list(df.columns) == ["id", "winner_model_a", "winner_model_b", "winner_tie"]
    np.testing.assert_allclose(
        df[["winner_model_a", "winner_model_b", "winner_tie"]], [[0.5, 0.2, 0.3], [0.4, 0.5, 0.1]]
    )

    # 2-class predictions: a calibrated tie column (never 0, which scores ~11 on LMSYS's ties), warned.
    no_tie = preds_for([1, 2], p_b=[0.2, 0.5])
    with pytest.warns(UserWarning, match=r"2-class predictions for the lmsys format: winner_tie = 0\.31"):
        df = pd.read_csv(write_submission(no_tie, tmp_path / "b.csv", fmt="lmsys", test_ids=[1, 2]))
    np.testing.assert_allclose(df["winner_tie"], [LMSYS_TIE_RATE] * 2)
    np.testing.assert_allclose(df["winner_model_b"], [0.2 * 0.69, 0.5 * 0.69])
    with pytest.warns(UserWarning, match=r"winner_tie = 0\.2 "):
        df = pd.read_csv(
            write_submission(no_tie, tmp_path / "c.csv", fmt="lmsys", test_ids=[1, 2], tie_rate=0.2)
        )
    np.testing.assert_allclose(df[["winner_model_a", "winner_tie"]], [[0.64, 0.2], [0.4, 0.2]])


def test_write_orders_rows_like_test_ids(tmp_path):
    out = write_submission(preds_for([3, 1, 2]), tmp_path / "s.csv", test_ids=[1, 2, 3])
    assert pd.read_csv(out)["id"].tolist() == [1, 2, 3]


def test_write_keeps_prediction_order_without_test_ids(tmp_path):
    out = write_submission(preds_for([3, 1, 2]), tmp_path / "s.csv")
    assert pd.read_csv(out)["id"].tolist() == [3, 1, 2]


def test_write_refuses_nan_probabilities(tmp_path):
    with pytest.raises(SubmissionError, match=r"1 prediction row\(s\) contain NaN/inf probabilities, ids: 2"):
        write_submission(preds_for([1, 2], p_b=[0.5, np.nan]), tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()
    assert leftovers(tmp_path) == []


def test_write_refuses_missing_columns_and_unknown_format(tmp_path):
    with pytest.raises(SubmissionError, match=r"lack column\(s\) \['p_b'\]"):
        write_submission(pd.DataFrame({"id": [1], "p_a": [1.0]}), tmp_path / "s.csv")
    with pytest.raises(ValueError, match="unknown submission format 'kaggle'"):
        write_submission(preds_for([1]), tmp_path / "s.csv", fmt="kaggle")


# ------------------------------------------------------------------------------------ atomicity


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_submission(preds_for([1, 2]), tmp_path / "submission.csv", test_ids=[1, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]


def test_temp_files_of_killed_writers_are_swept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid no longer runs (a SIGKILLed writer leaves such a file)
    stale = tmp_path / f".submission.csv.{dead.pid}.abc123.tmp"
    stale.write_text("")
    alive = tmp_path / f".submission.csv.{os.getppid()}.def456.tmp"  # a live writer's file stays
    alive.write_text("")
    other = tmp_path / ".other.csv.1.x.tmp"
    other.write_text("")
    write_submission(preds_for([1, 2]), tmp_path / "submission.csv", test_ids=[1, 2])
    assert leftovers(tmp_path) == sorted([alive.name, other.name])


def test_failed_validation_keeps_previous_file(tmp_path):
    target = tmp_path / "submission.csv"
    write_submission(preds_for([1, 2, 3]), target, test_ids=[1, 2, 3])
    before = target.read_bytes()
    # the new predictions miss id 3: validation of the temp file fails before it replaces the target
    with pytest.raises(SubmissionError, match=r"1 test id\(s\) missing from the submission: '3'"):
        write_submission(preds_for([1, 2], p_b=[0.9, 0.9]), target, test_ids=[1, 2, 3])
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]


def test_crash_during_validation_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "submission.csv"
    write_text(target, "id,winner\n1,model_a\n")
    seen = {}

    def exploding_validate(path, test_ids, fmt):
        # the temp file is complete, in the same directory, and the target is still untouched
        seen["tmp"] = os.path.abspath(path)
        assert os.path.dirname(seen["tmp"]) == str(tmp_path)
        assert pd.read_csv(path)["id"].tolist() == [7, 8]
        assert target.read_text() == "id,winner\n1,model_a\n"
        raise KeyboardInterrupt("killed mid-validation")

    monkeypatch.setattr(submission_mod, "validate_submission", exploding_validate)
    with pytest.raises(KeyboardInterrupt):
        write_submission(preds_for([7, 8]), target, test_ids=[7, 8])
    assert target.read_text() == "id,winner\n1,model_a\n"
    assert not os.path.exists(seen["tmp"])
    assert leftovers(tmp_path) == []


def test_crash_during_replace_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "submission.csv"
    write_text(target, "id,winner\n1,model_a\n")

    def failing_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(atomic_write.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk went away"):
        write_submission(preds_for([1]), target)
    assert target.read_text() == "id,winner\n1,model_a\n"
    assert leftovers(tmp_path) == []


def test_write_creates_file_readable_by_others(tmp_path):
    out = write_submission(preds_for([1]), tmp_path / "sub" / "submission.csv")
    assert out.exists()
    assert os.stat(out).st_mode & 0o044 == 0o044


# ------------------------------------------------------------------------------------ validation


def test_valid_files_pass(tmp_path):
    wsdm = write_text(tmp_path / "w.csv", "id,winner\n1,model_a\n2,model_b\n")
    validate_submission(wsdm, [1, 2], "wsdm")
    validate_submission(wsdm, pd.DataFrame({"id": [2, 1]}), "wsdm")
    lmsys = write_text(tmp_path / "l.csv", "id,winner_model_a,winner_model_b,winner_tie\n1,0.2,0.3,0.5\n")
    validate_submission(lmsys, np.array([1]), "lmsys")
    # column order is free; Kaggle matches by name
    reordered = write_text(tmp_path / "r.csv", "winner_tie,id,winner_model_b,winner_model_a\n0.5,1,0.3,0.2\n")
    validate_submission(reordered, [1], "lmsys")


def test_missing_ids_reported_with_count_and_first_few(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n1,model_a\n")
    with pytest.raises(
        SubmissionError, match=r"9 test id\(s\) missing from the submission: '2', '3', '4', '5', '6', \.\.\."
    ):
        validate_submission(path, list(range(1, 11)), "wsdm")


def test_extra_ids_reported(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n1,model_a\n77,model_b\n")
    with pytest.raises(SubmissionError, match=r"1 submission id\(s\) are not test ids: '77'"):
        validate_submission(path, [1], "wsdm")


def test_duplicated_ids_reported(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n1,model_a\n2,model_b\n2,model_a\n")
    with pytest.raises(SubmissionError, match=r"1 duplicated id\(s\): '2'"):
        validate_submission(path, [1, 2], "wsdm")


def test_illegal_winner_values_with_row_numbers(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n1,model_a\n2,tie\n3,Model_B\n")
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, [1, 2, 3], "wsdm")
    msg = str(info.value)
    assert "2 illegal winner value(s) (allowed: model_a, model_b)" in msg
    assert "row 2 (file line 3): 'tie'" in msg
    assert "row 3 (file line 4): 'Model_B'" in msg
    assert len(info.value.problems) == 1


def test_nan_values_reported(tmp_path):
    path = write_text(
        tmp_path / "s.csv", "id,winner_model_a,winner_model_b,winner_tie\n1,0.5,,0.5\n2,NaN,0.5,0.5\n"
    )
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, [1, 2], "lmsys")
    msg = str(info.value)
    assert "1 NaN/empty value(s) in column 'winner_model_b': row 1 (file line 2): ''" in msg
    assert "1 NaN/empty value(s) in column 'winner_model_a': row 2 (file line 3): 'NaN'" in msg
    assert "non-numeric" not in msg  # NaN is reported once, as NaN


def test_nan_winner_reported(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n1,\n")
    with pytest.raises(SubmissionError, match=r"NaN/empty value\(s\) in column 'winner': row 1"):
        validate_submission(path, [1], "wsdm")


def test_probabilities_out_of_range(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner_model_a,winner_model_b,winner_tie\n1,1.2,-0.2,0.0\n")
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, [1], "lmsys")
    msg = str(info.value)
    assert "1 probability(ies) in 'winner_model_a' not in [0, 1]: row 1 (file line 2): '1.2'" in msg
    assert "in 'winner_model_b' not in [0, 1]: row 1 (file line 2): '-0.2'" in msg


def test_probabilities_not_summing_to_one(tmp_path):
    path = write_text(
        tmp_path / "s.csv", "id,winner_model_a,winner_model_b,winner_tie\n1,0.3,0.3,0.3\n2,0.2,0.3,0.5\n"
    )
    with pytest.raises(
        SubmissionError,
        match=r"1 row\(s\) whose probabilities do not sum to 1 \(tolerance 1e-06\): row 1 sums to 0\.9",
    ):
        validate_submission(path, [1, 2], "lmsys")


def test_non_numeric_probability(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner_model_a,winner_model_b,winner_tie\n1,high,0.5,0.5\n")
    with pytest.raises(
        SubmissionError, match=r"1 non-numeric value\(s\) in 'winner_model_a': row 1 \(file line 2\): 'high'"
    ):
        validate_submission(path, [1], "lmsys")


def test_wrong_columns(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner_model_a,winner_model_b\n1,0.5,0.5\n")
    with pytest.raises(
        SubmissionError, match=r"wrong columns for the lmsys format.*missing \['winner_tie'\]"
    ):
        validate_submission(path, [1], "lmsys")
    with pytest.raises(
        SubmissionError,
        match=r"wrong columns for the wsdm format.*unexpected \['winner_model_a', 'winner_model_b'\]",
    ):
        validate_submission(path, [1], "wsdm")


def test_empty_file_and_missing_file(tmp_path):
    with pytest.raises(SubmissionError, match="is empty"):
        validate_submission(write_text(tmp_path / "e.csv", ""), [1], "wsdm")
    with pytest.raises(SubmissionError, match="no such file"):
        validate_submission(tmp_path / "nope.csv", [1], "wsdm")
    with pytest.raises(SubmissionError, match="has no rows"):
        validate_submission(write_text(tmp_path / "h.csv", "id,winner\n"), [], "wsdm")


def test_int_test_ids_but_leading_zero_strings(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n00123,model_a\n124,model_b\n")
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, [123, 124], "wsdm")
    msg = str(info.value)
    assert "id type differs from the test file: test ids are integers" in msg
    assert "row 1 (file line 2): '00123'" in msg
    # the respelled id is matched, so it is not also reported as missing/extra
    assert "missing" not in msg and "not test ids" not in msg


def test_int_test_ids_but_float_spelled_ids(tmp_path):
    frame = pd.DataFrame({"id": [1.0, 2.0], "winner": ["model_a", "model_b"]})  # ints upcast to float
    with pytest.raises(
        SubmissionError,
        match=r"test ids are integers but 2 submission id\(s\) are not written as plain integers: row 1 \(file line 2\): '1.0'",
    ):
        validate_submission(frame, [1, 2], "wsdm")


def test_string_test_ids_but_submission_lost_leading_zeros(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n123,model_a\nabc,model_b\n")
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, ["00123", "abc"], "wsdm")
    msg = str(info.value)
    assert "test ids are strings but 1 submission id(s) look like integers" in msg
    assert "'123' for '00123'" in msg
    assert "missing" not in msg


def test_string_ids_that_are_genuinely_missing_are_not_type_errors(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\nabc,model_b\n")
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, ["abc", "def"], "wsdm")
    assert "type" not in str(info.value)
    assert "1 test id(s) missing from the submission: 'def'" in str(info.value)


def test_frame_input_is_checked_as_written_csv():
    good = pd.DataFrame({"id": [5, 6], "winner": ["model_a", "model_b"]})
    validate_submission(good, [5, 6], "wsdm")
    validate_submission(good, pd.Series([6, 5], dtype="int32"), "wsdm")
    # string test ids that read like the integers are the same text in the CSV
    validate_submission(good, ["5", "6"], "wsdm")


def test_all_problems_are_listed_together(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n1,model_a\n1,draw\n9,model_b\n")
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, [1, 2], "wsdm")
    problems = info.value.problems
    assert len(problems) == 4
    assert any("duplicated" in p for p in problems)
    assert any("missing" in p and "'2'" in p for p in problems)
    assert any("not test ids: '9'" in p for p in problems)
    assert any("illegal winner" in p for p in problems)
    assert isinstance(info.value, ValueError)


def test_validation_without_test_ids_still_checks_content(tmp_path):
    path = write_text(tmp_path / "s.csv", "id,winner\n1,model_a\n1,model_c\n")
    with pytest.raises(SubmissionError, match="duplicated") as info:
        validate_submission(path, None, "wsdm")
    assert "illegal winner" in str(info.value)


# ------------------------------------------------------------------------------------ sample submission


def test_read_sample_submission_lmsys_int_ids(tmp_path):
    path = write_text(
        tmp_path / "sample_submission.csv",
        "id,winner_model_a,winner_model_b,winner_tie\n136060,0.333,0.333,0.333\n211333,0.333,0.333,0.333\n",
    )
    sample = read_sample_submission(path)
    assert sample.fmt == "lmsys"
    assert sample.ids.dtype == np.int64 and sample.ids.tolist() == [136060, 211333]
    assert len(sample.frame) == 2


def test_read_sample_submission_wsdm_string_ids(tmp_path):
    path = write_text(tmp_path / "sample_submission.csv", "id,winner\n0000abc,model_a\n00123,model_a\n")
    sample = read_sample_submission(path)
    assert sample.fmt == "wsdm"
    assert sample.ids.tolist() == ["0000abc", "00123"]
    # round trip: writing for those ids validates and keeps the spelling
    out = write_submission(
        preds_for(sample.ids), tmp_path / "submission.csv", fmt=sample.fmt, test_ids=sample.ids
    )
    assert "00123,model_b" in out.read_text()


def test_read_sample_submission_leading_zero_numbers_stay_strings(tmp_path):
    path = write_text(tmp_path / "sample_submission.csv", "id,winner\n007,model_a\n8,model_a\n")
    assert read_sample_submission(path).ids.tolist() == ["007", "8"]


def test_detect_format():
    assert detect_format(["id", "winner"]) == "wsdm"
    assert detect_format(["winner_tie", "id", "winner_model_b", "winner_model_a"]) == "lmsys"
    with pytest.raises(ValueError, match="cannot detect the submission format"):
        detect_format(["id", "prediction"])


# ------------------------------------------------------------------------------------ properties


@pytest.mark.filterwarnings("ignore:2-class predictions for the lmsys format")
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 2**53), min_size=1, max_size=15, unique=True),
    st.sampled_from(["wsdm", "lmsys"]),
    st.data(),
)
def test_written_submission_always_validates_and_round_trips(tmp_path_factory, ids, fmt, data):
    p_b = data.draw(st.lists(st.floats(0, 1), min_size=len(ids), max_size=len(ids)))
    preds = preds_for(ids, p_b=p_b)
    directory = tmp_path_factory.mktemp("prop")
    out = write_submission(preds, directory / "submission.csv", fmt=fmt, test_ids=sorted(ids))
    back = pd.read_csv(out, float_precision="round_trip")  # the file carries full precision
    assert back["id"].tolist() == sorted(ids)
    expected = submission_frame(preds, fmt).set_index("id").loc[sorted(ids)]
    if fmt == "wsdm":
        assert back["winner"].tolist() == expected["winner"].tolist()
    else:
        np.testing.assert_allclose(back["winner_model_b"], expected["winner_model_b"], rtol=0, atol=0)
    assert leftovers(directory) == []
