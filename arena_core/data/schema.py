"""Which schema a file is in (LMSYS or WSDM), decided by evidence, and LMSYS's JSON-list turns.

One plain-text prompt must not turn a whole LMSYS file into WSDM: the decision uses the label
columns, else the share of JSON-list prompts over the whole file, and the cells that do not fit
are named in the report.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from arena_core.data.errors import DataError, show_ids

LMSYS_WINNER_COLUMNS = ("winner_model_a", "winner_model_b", "winner_tie")
TURN_MARKER = "[Turn {n}]"
LMSYS_MIN_SHARE = 0.5  # share of JSON-list prompts above which a file without label columns is LMSYS


def is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _looks_like_json_list(value) -> bool:
    if isinstance(value, (list, np.ndarray)):
        return True
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return False
    text = value.strip()
    return text.startswith("[") and text.endswith("]")


def detect_schema(df: pd.DataFrame) -> tuple[str, str]:
    """``lmsys`` (JSON-list turns, one-hot winners) or ``wsdm`` (plain text, ``winner``), and why.

    Decided from the whole file, never from its first rows: label columns when there are some,
    else the share of prompts written as JSON lists (a majority means LMSYS). A few rows that do
    not fit the chosen schema are named in the report instead of flipping the whole file.
    """
    winner_cols = [c for c in LMSYS_WINNER_COLUMNS if c in df.columns]
    has_winner = "winner" in df.columns
    prompts = (
        [(i, v) for i, v in enumerate(df["prompt"]) if not is_missing(v)] if "prompt" in df.columns else []
    )
    listed = [i for i, v in prompts if _looks_like_json_list(v)]
    share = f"{len(listed)} of {len(prompts)} prompts are JSON lists"
    if winner_cols and has_winner:
        raise DataError(
            f"has both a 'winner' column (WSDM) and {winner_cols} (LMSYS); cannot tell the schema"
        )
    if winner_cols:
        return "lmsys", f"winner columns {winner_cols}; {share}"
    if has_winner:
        schema, why = "wsdm", f"column 'winner'; {share}"
    elif prompts and len(listed) >= LMSYS_MIN_SHARE * len(prompts):
        return "lmsys", f"no winner columns; {share} (LMSYS form)"
    else:
        schema, why = "wsdm", f"no winner columns; {share} (WSDM plain text)"
    if listed:
        ids = df["id"].iloc[listed[:5]].tolist() if "id" in df.columns else listed[:5]
        why += f"; kept as plain text: row ids {show_ids(ids)}" + (", ..." if len(listed) > 5 else "")
    return schema, why


def render_turns(turns: list[str | None]) -> str:
    """One string for a conversation: plain for one turn, ``[Turn n]`` markers for several."""
    texts = ["" if t is None else str(t) for t in turns]
    if len(texts) == 1:
        return texts[0]
    return "\n\n".join(f"{TURN_MARKER.format(n=i + 1)} {t}" for i, t in enumerate(texts))


def parse_lmsys_column(values: pd.Series, ids: pd.Series, column: str, report) -> list:
    """Each cell as its list of turns; a cell that is not a JSON list is one plain-text turn, named in
    ``report.not_json``; null turns are counted in ``report.null_turns`` (a RepairReport)."""
    parsed = []
    for row_id, value in zip(ids, values):
        if is_missing(value):
            parsed.append([None])
            continue
        if isinstance(value, (list, np.ndarray)):
            turns = list(value)
        else:
            text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
            try:
                turns = json.loads(text)
            except (TypeError, ValueError):
                turns = None
            if isinstance(turns, str):
                turns = [turns]
            if not isinstance(turns, list):
                report.not_json.setdefault(column, []).append(
                    row_id.item() if hasattr(row_id, "item") else row_id
                )
                turns = [text]
        nulls = sum(t is None for t in turns)
        if nulls:
            report.null_turns[column] += nulls
        parsed.append(turns)
    return parsed
