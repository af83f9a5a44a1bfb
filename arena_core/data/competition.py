"""Read competition files (WSDM parquet, LMSYS csv) into one canonical frame, loudly.

Every later stage consumes the canonical frame, so training and inference see the same rows
rendered the same way. Problems that would silently corrupt a run (missing columns, duplicate
ids, unknown winners, wrong types) stop with an error naming the file, column and row id;
problems that can be repaired without losing a row (null/empty texts, broken UTF-8, lone
surrogates) are repaired and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.data.errors import DataError, fmt_id, show_ids
from arena_core.data.ids import check_duplicate_ids, normalise_ids
from arena_core.data.schema import (
    LMSYS_WINNER_COLUMNS,
    detect_schema,
    is_missing,
    parse_lmsys_column,
    render_turns,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "LABEL_NAMES",
    "LMSYS_TIE_RATE",
    "TEXT_COLUMNS",
    "LoadedData",
    "RepairReport",
    "find_competition_file",
    "load_competition_file",
    "repair_text",
]

TEXT_COLUMNS = ("prompt", "response_a", "response_b")
CANONICAL_COLUMNS = ("id", "prompt", "response_a", "response_b", "label", "language")
LABEL_NAMES = ("model_a", "model_b", "tie")
WINNER_TO_LABEL = {"model_a": 0, "model_b": 1, "tie": 2}
# Share of ties among LMSYS's training rows (about 17.8k of 57.5k). An LMSYS submission scores a tie
# column; when neither the model nor its training data says better, ties get this probability.
LMSYS_TIE_RATE = 0.31
UNKNOWN_LANGUAGE = "unknown"


@dataclass
class RepairReport:
    """What was repaired on the way in, so nothing is changed silently."""

    path: str
    schema: str
    rows: int = 0
    null_texts: Counter = field(default_factory=Counter)
    empty_texts: Counter = field(default_factory=Counter)
    bad_unicode: Counter = field(default_factory=Counter)
    null_turns: Counter = field(default_factory=Counter)
    multi_turn_rows: int = 0
    null_language: int = 0
    schema_reason: str = ""
    # lmsys only: per column, the row ids whose value was not a JSON list (read as one plain-text turn)
    not_json: dict = field(default_factory=dict)

    def schema_line(self) -> str:
        """Which schema the file was read as, and the evidence."""
        return (
            f"schema {self.schema}: {self.schema_reason}" if self.schema_reason else f"schema {self.schema}"
        )

    def summary(self) -> str:
        """One line a person can read at a glance."""
        parts = [f"{self.path}: {self.rows} rows ({self.schema})"]

        def fmt(name: str, counter: Counter) -> None:
            if sum(counter.values()):
                inner = ", ".join(f"{k}={v}" for k, v in sorted(counter.items()))
                parts.append(f"{name}: {inner}")

        fmt("null texts -> ''", self.null_texts)
        fmt("empty texts", self.empty_texts)
        fmt("invalid UTF-8/surrogates repaired", self.bad_unicode)
        fmt("null turns -> ''", self.null_turns)
        for col, ids in sorted(self.not_json.items()):
            parts.append(
                f"not a JSON list, read as one plain-text turn: {col} {len(ids)} (row ids {show_ids(ids)})"
            )
        if self.multi_turn_rows:
            parts.append(f"multi-turn rows: {self.multi_turn_rows}")
        if self.null_language:
            parts.append(f"missing language -> '{UNKNOWN_LANGUAGE}': {self.null_language}")
        if len(parts) == 1:
            parts.append("no repairs needed")
        return "; ".join(parts)


@dataclass
class LoadedData:
    frame: pd.DataFrame
    report: RepairReport

    @property
    def is_labelled(self) -> bool:
        return bool(self.frame["label"].notna().all()) and len(self.frame) > 0


# --------------------------------------------------------------------------- text repair


def repair_text(value: str) -> tuple[str, bool]:
    """Return ``value`` as valid UTF-8-encodable text and whether anything had to change.

    Surrogate pairs written as two code points (JSON ``\\ud83d\\ude00``) are joined; lone
    surrogates and undecodable bytes become U+FFFD.
    """
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        fixed = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return fixed, True


def _decode_bytes(value: bytes) -> tuple[str, bool]:
    try:
        return value.decode("utf-8"), False
    except UnicodeDecodeError:
        return value.decode("utf-8", "replace"), True


# --------------------------------------------------------------------------- reading


def _read_parquet(path: Path) -> pd.DataFrame:
    """A parquet file as a frame; a string column holding invalid UTF-8 comes back as raw bytes.

    pyarrow refuses (or, behind pandas 3's lazy strings, fails later on) invalid UTF-8 in a
    string column; as bytes, texts are repaired and counted like a CSV's and ids are refused by row.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    as_bytes = []
    for i, fld in enumerate(table.schema):
        if not (pa.types.is_string(fld.type) or pa.types.is_large_string(fld.type)):
            continue
        try:
            table.column(i).validate(full=True)
        except pa.ArrowInvalid:
            binary = pa.large_binary() if pa.types.is_large_string(fld.type) else pa.binary()
            table = table.set_column(i, fld.name, table.column(i).cast(binary))
            as_bytes.append(fld.name)
    return _without_string_dtype(table, as_bytes).to_pandas()


def _without_string_dtype(table, columns: list[str]):
    """``table`` whose pandas metadata no longer asks for a string dtype on ``columns``.

    A file written by pandas records each column's dtype; pyarrow honours it and casts the bytes
    back to (invalid) text, so those entries must say bytes, as they now are.
    """
    import json

    meta = table.schema.metadata or {}
    if not columns or b"pandas" not in meta:
        return table
    pandas_meta = json.loads(meta[b"pandas"])
    for col in pandas_meta.get("columns", []):
        if col.get("field_name", col.get("name")) in columns:
            col.update(pandas_type="bytes", numpy_type="object", metadata=None)
    return table.replace_schema_metadata({**meta, b"pandas": json.dumps(pandas_meta).encode()})


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".csv":
        # surrogateescape keeps undecodable bytes visible so they can be counted and repaired.
        # Text columns stay Python objects: pandas' Arrow-backed strings cannot hold the escaped bytes.
        # Ids are read as text so ``000100`` and ``1e3`` keep their spelling (see _normalise_ids).
        return pd.read_csv(
            path,
            encoding="utf-8",
            encoding_errors="surrogateescape",
            dtype={c: object for c in ("id", *TEXT_COLUMNS)},
        )
    if suffix in (".jsonl", ".json"):
        # dtype=False: no guessing, so a string id "000100" is not turned into the number 100.
        return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    raise DataError(f"{path}: unsupported file type {suffix!r} (expected .parquet, .csv, .json or .jsonl)")


def _check_columns(df: pd.DataFrame, path: Path, schema: str) -> None:
    required = ["id", *TEXT_COLUMNS]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {missing} for the {schema} schema; "
            f"found columns {list(df.columns)}"
        )
    if schema == "lmsys":
        present = [c for c in LMSYS_WINNER_COLUMNS if c in df.columns]
        if present and len(present) != len(LMSYS_WINNER_COLUMNS):
            absent = [c for c in LMSYS_WINNER_COLUMNS if c not in df.columns]
            raise DataError(f"{path}: has {present} but is missing winner column(s) {absent}")


def _clean_text_column(
    values: pd.Series, ids: pd.Series, column: str, path: Path, report: RepairReport
) -> list[str]:
    out: list[str] = []
    for row_id, value in zip(ids, values):
        if is_missing(value):
            report.null_texts[column] += 1
            report.empty_texts[column] += 1
            out.append("")
            continue
        if isinstance(value, bytes):
            value, changed = _decode_bytes(value)
        elif isinstance(value, str):
            value, changed = repair_text(value)
        else:
            raise DataError(
                f"{path}: column {column!r}, row id {fmt_id(row_id)}: expected text, got {type(value).__name__} {value!r:.60}"
            )
        if changed:
            report.bad_unicode[column] += 1
        if not value.strip():
            report.empty_texts[column] += 1
        out.append(value)
    return out


def _labels_wsdm(df: pd.DataFrame, ids: pd.Series, path: Path) -> pd.Series:
    if "winner" not in df.columns:
        return pd.Series(pd.array([pd.NA] * len(df), dtype="Int64"))
    labels = []
    for row_id, value in zip(ids, df["winner"]):
        key = value.strip().lower() if isinstance(value, str) else value
        if key not in WINNER_TO_LABEL:
            raise DataError(
                f"{path}: column 'winner', row id {fmt_id(row_id)}: unknown value {value!r} "
                f"(expected one of {sorted(WINNER_TO_LABEL)})"
            )
        labels.append(WINNER_TO_LABEL[key])
    return pd.Series(pd.array(labels, dtype="Int64"))


def _labels_lmsys(df: pd.DataFrame, ids: pd.Series, path: Path) -> pd.Series:
    if LMSYS_WINNER_COLUMNS[0] not in df.columns:
        return pd.Series(pd.array([pd.NA] * len(df), dtype="Int64"))
    onehot = df[list(LMSYS_WINNER_COLUMNS)]
    try:
        values = onehot.to_numpy(dtype=float)
    except (TypeError, ValueError):
        for col in LMSYS_WINNER_COLUMNS:
            bad = pd.to_numeric(df[col], errors="coerce").isna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{path}: column {col!r}, row id {fmt_id(ids.iloc[row])}: not a 0/1 value: {df[col].iloc[row]!r}"
                ) from None
        raise
    ok = np.isin(values, (0.0, 1.0)).all(axis=1) & (values.sum(axis=1) == 1)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"{path}: columns {list(LMSYS_WINNER_COLUMNS)}, row id {fmt_id(ids.iloc[row])}: expected exactly one 1, "
            f"got {values[row].tolist()} ({int((~ok).sum())} such row(s))"
        )
    return pd.Series(pd.array(values.argmax(axis=1), dtype="Int64"))


def load_competition_file(path: str | Path, *, verbose: bool = False) -> LoadedData:
    """Read a WSDM or LMSYS train/test file into the canonical frame.

    Columns: id (int64 or str, as in the file), prompt, response_a, response_b (never null),
    label (Int64: 0 = A wins, 1 = B wins, 2 = tie, <NA> for test rows), language, and
    ``source`` when the file has it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = _read_table(path)
    except DataError:
        raise
    except Exception as exc:  # pyarrow / pandas parse errors
        raise DataError(f"{path}: could not read file: {exc}") from exc
    df = df.reset_index(drop=True)
    if len(df) == 0:
        raise DataError(f"{path}: no rows (only a header); columns {list(df.columns)}")
    try:
        schema, reason = detect_schema(df)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    _check_columns(df, path, schema)
    report = RepairReport(path=str(path), schema=schema, rows=len(df), schema_reason=reason)

    ids = normalise_ids(df, path)
    check_duplicate_ids(ids, path)

    out = pd.DataFrame({"id": ids.to_numpy(dtype=object if ids.dtype == object else "int64")})
    if schema == "lmsys":
        turn_lists = {c: parse_lmsys_column(df[c], ids, c, report) for c in TEXT_COLUMNS}
        multi = [max(len(turn_lists[c][i]) for c in TEXT_COLUMNS) > 1 for i in range(len(df))]
        report.multi_turn_rows = int(sum(multi))
        for c in TEXT_COLUMNS:
            rendered = pd.Series([render_turns(t) for t in turn_lists[c]], dtype=object)
            out[c] = _clean_text_column(rendered, ids, c, path, report)
        out["label"] = _labels_lmsys(df, ids, path)
    else:
        for c in TEXT_COLUMNS:
            out[c] = _clean_text_column(df[c], ids, c, path, report)
        out["label"] = _labels_wsdm(df, ids, path)

    if "language" in df.columns:
        lang = df["language"]
        report.null_language = int(lang.isna().sum() + (lang.astype(str).str.strip() == "").sum())
        out["language"] = [
            UNKNOWN_LANGUAGE
            if (v is None or (isinstance(v, float) and np.isnan(v)) or not str(v).strip())
            else str(v)
            for v in lang
        ]
    else:
        out["language"] = UNKNOWN_LANGUAGE
    for extra in ("source", "scored", "model_a", "model_b"):
        if extra in df.columns:
            out[extra] = df[extra].to_numpy()
    if verbose:
        print(report.summary())
        print(f"  {report.schema_line()}")
    return LoadedData(out, report)


def find_competition_file(data_dir: str | Path, split: str) -> Path:
    """``DIR/{split}.parquet`` or ``DIR/{split}.csv``; a clear error when neither exists."""
    data_dir = Path(data_dir)
    candidates = [data_dir / f"{split}.parquet", data_dir / f"{split}.csv"]
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"{data_dir}: no {split} file found (looked for {', '.join(c.name for c in candidates)})")
