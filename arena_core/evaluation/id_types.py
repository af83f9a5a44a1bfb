"""Ids of two kinds (integers in the predictions, text in the data, or the reverse): said in the
user's terms, naming both files, and never matched as text behind the user's back.

Both readers keep an id as text unless every id of the file is a plain integer (see
:mod:`arena_core.data.ids`), so files that spell the same ids get the same kind. Different kinds
mean some id is spelled differently (``000100`` written back as ``100``): matching them as text
would pair some rows and quietly lose the others, so the message counts how many would pair and
shows one that would not, and the user fixes the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.data.errors import show_ids

__all__ = ["id_kind", "id_kind_mismatch"]

_WORDS = {
    "integer": "integers",
    "string": "text",
    "float": "decimal numbers",
    "bool": "true/false values",
    "mixed": "of mixed kinds (some integers, some text)",
}


def id_kind(values: pd.Series) -> str:
    """'integer', 'string', 'float', 'bool', 'mixed' or the dtype name."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        kinds = set()
        for v in values:
            if isinstance(v, str):
                kinds.add("string")
            elif isinstance(v, (bool, np.bool_)):
                kinds.add("bool")
            elif isinstance(v, (int, np.integer)):
                kinds.add("integer")
            elif isinstance(v, (float, np.floating)):
                kinds.add("float")
            else:
                kinds.add(type(v).__name__)
            if len(kinds) > 1:
                return "mixed"
        return kinds.pop() if kinds else "string"
    return str(dtype)


def _as_text(value) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)


def _fix(kind: str, pred: str, data: str) -> str:
    """How to make the predictions' ids the data's kind."""
    if kind == "string":
        return (
            f"write the ids in {pred} exactly as {data} spells them, as text: a program that read them as "
            "numbers drops leading zeros and rewrites ids like 1e3 (keep the id column as text when "
            f"editing the file, or run 'arena predict' on {data} again)"
        )
    if kind == "integer":
        return f"write the ids in {pred} as plain integers, as {data} has them"
    return f"write the ids in {pred} as {data} has them"


def id_kind_mismatch(
    data_ids: pd.Series,
    pred_ids: pd.Series,
    data_file: str | Path | None = None,
    pred_file: str | Path | None = None,
) -> str | None:
    """Why ``pred_ids`` cannot be matched to ``data_ids`` by kind, as a message naming both files; None when they can.

    ``data_ids`` are the ids that need a prediction (the labelled rows).
    """
    kind_d, kind_p = id_kind(data_ids), id_kind(pred_ids)
    if kind_d == kind_p and kind_d != "mixed":
        return None
    pred = f"the predictions file {pred_file}" if pred_file else "the predictions"
    data = f"the data file {data_file}" if data_file else "the data"
    head = (
        f"the ids in {pred} are {_WORDS.get(kind_p, kind_p)} (e.g. {show_ids(pred_ids, 2)}) but the ids in "
        f"{data} are {_WORDS.get(kind_d, kind_d)} (e.g. {show_ids(data_ids, 2)}); ids are matched exactly "
        "as written, so not one prediction matches a row"
    )
    pred_text = {_as_text(v) for v in pred_ids}
    unpaired = [v for v in data_ids if _as_text(v) not in pred_text]
    n = len(data_ids)
    if not unpaired:
        count = f"Written as text, all {n} ids that need a prediction have one spelled the same: only the kind differs"
    else:
        count = (
            f"Written as text, {n - len(unpaired)} of the {n} ids that need a prediction have one spelled the same "
            f"and {len(unpaired)} do not (e.g. {show_ids(unpaired, 3)}), so these files do not spell the same ids"
        )
    fix = _fix(kind_d, pred_file or "the predictions", data_file or "the data")
    return f"{head}. {count}. To fix: {fix}."
