"""The data contract: both competition schemas in, one canonical frame out, errors that say where."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from arena_core.data.competition import (
    find_competition_file,
    load_competition_file,
    repair_text,
)
from arena_core.data.errors import DataError
from arena_core.data.folds import assign_folds


def wsdm_frame(n=4, **overrides):
    df = pd.DataFrame(
        {
            "id": [f"id{i}" for i in range(n)],
            "prompt": [f"question {i}" for i in range(n)],
            "response_a": [f"answer a {i}" for i in range(n)],
            "response_b": [f"answer b {i}" for i in range(n)],
            "winner": ["model_a", "model_b"] * (n // 2) + ["model_a"] * (n % 2),
            "model_a": "m1",
            "model_b": "m2",
            "language": ["English", "Spanish"] * (n // 2) + ["English"] * (n % 2),
        }
    )
    for k, v in overrides.items():
        df[k] = v
    return df


def test_wsdm_parquet_canonical(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame().to_parquet(path)
    loaded = load_competition_file(path)
    f = loaded.frame
    assert list(f.columns[:6]) == ["id", "prompt", "response_a", "response_b", "label", "language"]
    assert f["label"].tolist() == [0, 1, 0, 1]
    assert str(f["label"].dtype) == "Int64"
    assert f["id"].tolist() == ["id0", "id1", "id2", "id3"]
    assert loaded.is_labelled
    assert "no repairs needed" in loaded.report.summary()


def test_wsdm_test_file_has_no_labels(tmp_path):
    path = tmp_path / "test.parquet"
    wsdm_frame().drop(columns=["winner", "model_a", "model_b"]).assign(scored=True).to_parquet(path)
    f = load_competition_file(path).frame
    assert f["label"].isna().all()
    assert f["scored"].all()


def test_lmsys_csv_multi_turn_and_null_turns(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame(
        {
            "id": [30192, 53567],
            "model_a": ["x", "y"],
            "model_b": ["y", "x"],
            "prompt": [json.dumps(["Hi"]), json.dumps(["First q", "Second q"])],
            "response_a": [json.dumps(["Hello!"]), json.dumps(["ans 1", None])],
            "response_b": [json.dumps([None]), json.dumps(["b1", "b2"])],
            "winner_model_a": [1, 0],
            "winner_model_b": [0, 0],
            "winner_tie": [0, 1],
        }
    ).to_csv(path, index=False)
    loaded = load_competition_file(path)
    f, rep = loaded.frame, loaded.report
    assert rep.schema == "lmsys"
    assert f["id"].dtype == np.int64 and f["id"].tolist() == [30192, 53567]
    assert f["label"].tolist() == [0, 2]
    assert f.loc[0, "prompt"] == "Hi"
    assert f.loc[1, "prompt"] == "[Turn 1] First q\n\n[Turn 2] Second q"
    assert f.loc[1, "response_a"] == "[Turn 1] ans 1\n\n[Turn 2] "
    assert f.loc[0, "response_b"] == ""
    assert rep.null_turns == {"response_a": 1, "response_b": 1}
    assert rep.multi_turn_rows == 1
    assert f["language"].tolist() == ["unknown", "unknown"]
    assert "null turns -> ''" in rep.summary()


def test_missing_columns_named(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame().drop(columns=["response_b"]).to_parquet(path)
    with pytest.raises(DataError, match=r"train\.parquet: missing required column\(s\) \['response_b'\]"):
        load_competition_file(path)


def test_duplicate_ids_named(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame(id=["a", "b", "a", "c"]).to_parquet(path)
    with pytest.raises(DataError, match=r"column 'id' has 1 duplicated id\(s\): id 'a' at rows \[0, 2\]"):
        load_competition_file(path)


def test_unknown_winner_names_row(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame(winner=["model_a", "model_c", "model_a", "model_b"]).to_parquet(path)
    with pytest.raises(DataError, match=r"column 'winner', row id 'id1': unknown value 'model_c'"):
        load_competition_file(path)


def test_lmsys_bad_onehot_names_row(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame(
        {
            "id": [1, 2],
            "prompt": ['["a"]', '["b"]'],
            "response_a": ['["a"]', '["b"]'],
            "response_b": ['["a"]', '["b"]'],
            "winner_model_a": [1, 1],
            "winner_model_b": [0, 1],
            "winner_tie": [0, 0],
        }
    ).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row id 2: expected exactly one 1"):
        load_competition_file(path)


def test_lmsys_cells_that_are_not_json_lists_are_named_not_fatal(tmp_path):
    path = tmp_path / "test.csv"
    pd.DataFrame(
        {
            "id": [7, 8, 9],
            "prompt": ['["ok"]', '["broken', '["fine"]'],
            "response_a": ['["x"]', '["x"]', "plain answer"],
            "response_b": ['["y"]'] * 3,
        }
    ).to_csv(path, index=False)
    loaded = load_competition_file(path)
    assert loaded.report.schema == "lmsys"
    assert loaded.frame["prompt"].tolist() == ["ok", '["broken', "fine"]
    assert loaded.report.not_json == {"prompt": [8], "response_a": [9]}
    summary = loaded.report.summary()
    assert "not a JSON list, read as one plain-text turn: prompt 1 (row ids 8)" in summary
    assert "response_a 1 (row ids 9)" in summary


def test_schema_is_decided_by_the_whole_file_and_explained(tmp_path):
    n = 60
    rows = pd.DataFrame(
        {
            "id": range(n),
            "prompt": [json.dumps([f"question {i}"]) for i in range(n)],
            "response_a": [json.dumps(["answer", None]) for _ in range(n)],
            "response_b": [json.dumps(["other"]) for _ in range(n)],
        }
    )
    rows.loc[3, "prompt"] = "a plain-text prompt among JSON lists"  # within the first 50 rows
    rows.loc[40, "prompt"] = "another one"
    path = tmp_path / "test.csv"
    rows.to_csv(path, index=False)
    loaded = load_competition_file(path)
    rep = loaded.report
    assert rep.schema == "lmsys" and "58 of 60 prompts are JSON lists" in rep.schema_line()
    assert rep.not_json == {"prompt": [3, 40]}
    assert rep.null_turns == {"response_a": n}  # every row parsed as turns, nulls counted
    assert loaded.frame.loc[0, "prompt"] == "question 0"
    assert loaded.frame.loc[3, "prompt"] == "a plain-text prompt among JSON lists"

    wsdm = wsdm_frame(6).drop(columns=["winner"])
    wsdm.loc[2, "prompt"] = "[citation needed]"  # plain text that happens to look like a list
    wsdm.loc[4, "prompt"] = '["x"]'
    path = tmp_path / "test.parquet"
    wsdm.to_parquet(path)
    rep = load_competition_file(path).report
    assert rep.schema == "wsdm"
    assert rep.schema_line() == (
        "schema wsdm: no winner columns; 2 of 6 prompts are JSON lists (WSDM plain text); "
        "kept as plain text: row ids 'id2', 'id4'"
    )


def test_both_winner_schemas_at_once_is_an_error(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame(2, winner_model_a=1, winner_model_b=0, winner_tie=0).to_parquet(path)
    with pytest.raises(DataError, match=r"train\.parquet: has both a 'winner' column"):
        load_competition_file(path)


def test_wrong_text_type_named(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = wsdm_frame(2).to_dict("records")
    rows[1]["response_a"] = {"oops": 1}
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match=r"column 'response_a', row id 'id1': expected text, got dict"):
        load_competition_file(path)


def test_ids_of_wrong_type(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame(id=[1.0, 2.5, 3.0, 4.0]).to_parquet(path)
    with pytest.raises(DataError, match=r"column 'id' holds non-integer numbers"):
        load_competition_file(path)
    path2 = tmp_path / "nullid.parquet"
    wsdm_frame(id=["a", None, "c", "d"]).to_parquet(path2)
    with pytest.raises(DataError, match=r"column 'id' is empty at row\(s\) \[1\]"):
        load_competition_file(path2)


def test_float_ids_that_are_integers_become_int(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame(id=[1.0, 2.0, 3.0, 4.0]).to_parquet(path)
    assert load_competition_file(path).frame["id"].tolist() == [1, 2, 3, 4]


def test_csv_ids_keep_their_spelling_unless_clean_integers(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("id,prompt,response_a,response_b\n000100,p,a,b\n1e3,p,a,b\n42,p,a,b\n", encoding="utf-8")
    ids = load_competition_file(path).frame["id"]
    assert ids.tolist() == ["000100", "1e3", "42"] and not pd.api.types.is_integer_dtype(ids)
    path.write_text("id,prompt,response_a,response_b\n100,p,a,b\n-7,p,a,b\n0,p,a,b\n", encoding="utf-8")
    ids = load_competition_file(path).frame["id"]
    assert ids.dtype == np.int64 and ids.tolist() == [100, -7, 0]
    huge = "123456789012345678901234567890"  # past int64: stays text, spelled as in the file
    path.write_text(f"id,prompt,response_a,response_b\n{huge},p,a,b\n5,p,a,b\n", encoding="utf-8")
    assert load_competition_file(path).frame["id"].tolist() == [huge, "5"]


def test_jsonl_string_ids_keep_their_spelling(tmp_path):
    path = tmp_path / "test.jsonl"
    wsdm_frame(2, id=["000100", "7"]).to_json(path, orient="records", lines=True)
    assert load_competition_file(path).frame["id"].tolist() == ["000100", "7"]


def test_float_ids_above_2_53_are_refused_for_precision_not_duplicates(tmp_path):
    path = tmp_path / "test.parquet"
    ids = (2**53 + np.arange(1, 5, dtype=np.int64)).astype(
        np.float64
    )  # 2**53+1 and +3 collapse onto even numbers
    wsdm_frame(id=ids).to_parquet(path)
    with pytest.raises(DataError, match=r"test\.parquet: column 'id' holds float ids above 2\*\*53") as err:
        load_competition_file(path)
    assert "duplicated" not in str(err.value) and "precision" in str(err.value)


def test_invalid_utf8_in_a_csv_id_is_an_error_naming_the_row(tmp_path):
    path = tmp_path / "test.csv"
    path.write_bytes(b"id,prompt,response_a,response_b\nok,p,a,b\ncaf\xe9,p,a,b\n")
    with pytest.raises(
        DataError, match=r"test\.csv: column 'id', row\(s\) \[1\] \(0-based\): not valid UTF-8"
    ):
        load_competition_file(path)


def _parquet_with_raw_bytes(path, column: str, values: list[bytes], base: pd.DataFrame) -> None:
    """A parquet file whose string column holds the given raw bytes (possibly invalid UTF-8)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets = np.cumsum([0] + [len(v) for v in values]).astype(np.int32)
    raw = pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(values))]
    )
    table = pa.Table.from_pandas(base.drop(columns=[column]), preserve_index=False)
    pq.write_table(table.append_column(column, raw), path)


def test_invalid_utf8_in_parquet_text_is_repaired_and_counted(tmp_path):
    path = tmp_path / "test.parquet"
    base = wsdm_frame(2).drop(columns=["winner"])
    _parquet_with_raw_bytes(path, "response_a", [b"fine", b"caf\xe9 bad"], base)
    loaded = load_competition_file(path)
    assert loaded.frame["response_a"].tolist() == ["fine", "caf\ufffd bad"]
    assert loaded.report.bad_unicode == {"response_a": 1}


def test_invalid_utf8_in_parquet_id_is_an_error_naming_the_row(tmp_path):
    path = tmp_path / "test.parquet"
    _parquet_with_raw_bytes(path, "id", [b"ok", b"caf\xe9"], wsdm_frame(2))
    with pytest.raises(
        DataError, match=r"test\.parquet: column 'id', row\(s\) \[1\] \(0-based\): not valid UTF-8"
    ):
        load_competition_file(path)


def _pandas_parquet_with_raw_bytes(path, column: str, values: list[bytes], base: pd.DataFrame, dtype) -> None:
    """As pandas writes ``base`` (its metadata names ``column``'s dtype), with ``column`` holding raw bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = base.astype({column: dtype})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    offsets = np.cumsum([0] + [len(v) for v in values]).astype(np.int64)
    raw = pa.Array.from_buffers(
        pa.large_string(),
        len(values),
        [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(values))],
    )
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, table.schema.field(i), raw), path)


@pytest.mark.parametrize("dtype", ["str", "string"])
def test_invalid_utf8_in_a_pandas_written_parquet_is_repaired_and_counted(tmp_path, dtype):
    import pyarrow.parquet as pq

    path = tmp_path / "test.parquet"
    base = wsdm_frame(2).drop(columns=["winner"])
    _pandas_parquet_with_raw_bytes(path, "response_a", [b"fine", b"\xff\xfe bad"], base, dtype)
    meta = pq.read_schema(path).pandas_metadata  # the metadata that made pyarrow decode the bytes as text
    assert any(c["name"] == "response_a" and c["numpy_type"] == dtype for c in meta["columns"])
    loaded = load_competition_file(path)
    assert loaded.frame["response_a"].tolist() == ["fine", "\ufffd\ufffd bad"]
    assert loaded.frame["id"].tolist() == ["id0", "id1"]
    assert loaded.report.bad_unicode == {"response_a": 1}
    assert "invalid UTF-8/surrogates repaired: response_a=1" in loaded.report.summary()


def test_invalid_utf8_id_in_a_pandas_written_parquet_is_an_error_naming_the_row(tmp_path):
    path = tmp_path / "test.parquet"
    _pandas_parquet_with_raw_bytes(path, "id", [b"ok", b"caf\xe9"], wsdm_frame(2), "str")
    with pytest.raises(
        DataError, match=r"test\.parquet: column 'id', row\(s\) \[1\] \(0-based\): not valid UTF-8"
    ):
        load_competition_file(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_without_rows_is_a_clear_error(tmp_path, suffix):
    path = tmp_path / f"test{suffix}"
    empty = wsdm_frame(2).iloc[:0]
    empty.to_csv(path, index=False) if suffix == ".csv" else empty.to_parquet(path)
    with pytest.raises(DataError, match=rf"test\{suffix}: no rows \(only a header\)"):
        load_competition_file(path)


def test_null_and_empty_texts_kept_and_counted(tmp_path):
    path = tmp_path / "train.parquet"
    wsdm_frame(response_a=[None, "", "x", "y"], prompt=["p", "p", None, "p"]).to_parquet(path)
    loaded = load_competition_file(path)
    assert len(loaded.frame) == 4
    assert loaded.frame["response_a"].tolist()[:2] == ["", ""]
    assert loaded.frame.loc[2, "prompt"] == ""
    assert loaded.report.null_texts == {"response_a": 1, "prompt": 1}
    assert loaded.report.empty_texts == {"response_a": 2, "prompt": 1}
    assert "null texts -> '': prompt=1, response_a=1" in loaded.report.summary()


def test_invalid_utf8_csv_repaired_and_counted(tmp_path):
    path = tmp_path / "test.csv"
    raw = b'id,prompt,response_a,response_b\n1,"caf\xe9 ok","fine","also \xff\xfe fine"\n2,"p","a","b"\n'
    path.write_bytes(raw)
    loaded = load_competition_file(path)
    assert loaded.frame.loc[0, "prompt"] == "caf\ufffd ok"
    assert loaded.frame.loc[0, "response_b"] == "also \ufffd\ufffd fine"
    assert loaded.report.bad_unicode == {"prompt": 1, "response_b": 1}
    for col in ("prompt", "response_a", "response_b"):
        for v in loaded.frame[col]:
            v.encode("utf-8")  # every text is valid UTF-8 now


def test_lone_surrogates_repaired():
    assert repair_text("ok") == ("ok", False)
    fixed, changed = repair_text("emoji \ud83d\ude00 and lone \ud83d end")
    assert changed and fixed == "emoji \U0001f600 and lone \ufffd end"


def test_lmsys_json_escaped_surrogates(tmp_path):
    path = tmp_path / "test.csv"
    pd.DataFrame(
        {
            "id": [1],
            "prompt": ['["smile \\ud83d\\ude00 lone \\udc80"]'],
            "response_a": ['["a"]'],
            "response_b": ['["b"]'],
        }
    ).to_csv(path, index=False)
    loaded = load_competition_file(path)
    assert loaded.frame.loc[0, "prompt"] == "smile \U0001f600 lone \ufffd"
    assert loaded.report.bad_unicode == {"prompt": 1}


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match="nope.parquet: file not found"):
        load_competition_file(tmp_path / "nope.parquet")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_competition_file(tmp_path / "x.txt")
    with pytest.raises(DataError, match="no test file found"):
        find_competition_file(tmp_path, "test")


def test_huge_text_survives(tmp_path):
    path = tmp_path / "train.parquet"
    big = "word " * 400_000
    wsdm_frame(response_b=[big, "b", "c", "d"]).to_parquet(path)
    assert len(load_competition_file(path).frame.loc[0, "response_b"]) == len(big)


def test_folds_are_stratified_and_cover_all_rows():
    n = 500
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "label": pd.array(rng.integers(0, 2, n), dtype="Int64"),
            "language": rng.choice(["English", "Spanish", "Chinese", "Tagalog"], n, p=[0.6, 0.2, 0.18, 0.02]),
        }
    )
    folds = assign_folds(frame, n_splits=5, seed=1, groups="none")
    assert set(folds) == set(range(5))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 5
    for lang in ["English", "Spanish", "Chinese"]:
        per_fold = np.bincount(folds[frame["language"].to_numpy() == lang], minlength=5)
        assert per_fold.max() - per_fold.min() <= 3, (lang, per_fold)
    for label in (0, 1):
        per_fold = np.bincount(folds[frame["label"].to_numpy() == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 5
    assert (assign_folds(frame, 5, seed=1, groups="none") == folds).all()
    # Prompts that never repeat: grouping by prompt deals the very same folds.
    unique = frame.assign(prompt=[f"question {i}" for i in range(n)])
    assert (assign_folds(unique, 5, seed=1) == folds).all()


def test_rows_sharing_a_prompt_share_a_fold_and_folds_stay_balanced():
    """MT-Bench shape: 40 questions judged 6-10 times each, plus 100 prompts seen once."""
    rng = np.random.default_rng(0)
    repeats = rng.integers(6, 11, 40)
    prompts = [
        f"  q{i} " if k % 2 else f"q{i}" for i, r in enumerate(repeats) for k in range(r)
    ]  # spaces too
    prompts += [f"single {i}" for i in range(100)]
    n = len(prompts)
    frame = pd.DataFrame(
        {
            "prompt": prompts,
            "label": pd.array(rng.integers(0, 2, n), dtype="Int64"),
            "language": rng.choice(["English", "German"], n, p=[0.8, 0.2]),
        }
    )
    folds = assign_folds(frame, n_splits=5, seed=3)
    per_prompt = pd.Series(folds).groupby(frame["prompt"].str.strip()).nunique()
    assert (per_prompt == 1).all()  # no question on both sides of a split
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= repeats.max(), sizes  # balanced up to one group
    assert (assign_folds(frame, 5, seed=3) == folds).all()
    row_folds = assign_folds(frame, 5, seed=3, groups="none")
    assert (pd.Series(row_folds).groupby(frame["prompt"].str.strip()).nunique() > 1).any()  # what it fixes
    with pytest.raises(ValueError, match="cannot split 3 distinct prompt"):
        assign_folds(frame.assign(prompt=[f"p{i % 3}" for i in range(n)]), 5)
    with pytest.raises(ValueError, match="train.fold_groups must be one of prompt, none"):
        assign_folds(frame, 5, groups="language")
