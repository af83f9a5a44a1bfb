"""Reading a predictions file back: ``arena predict`` probabilities or a ``submission.csv``.

``arena evaluate`` and ``arena report`` score files written by any of the toolkit's commands (or
by hand), so the one reader that knows their shapes lives here, below both commands.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_prob_table", "read_predictions"]


def read_prob_table(path: str | Path, made_by: str, error: type[Exception] = ValueError):
    """A probabilities file (parquet or csv) with at least ``id, p_a, p_b``, or ``error`` naming the file.

    ``made_by`` completes the message ("expected id, p_a, p_b[, p_tie] (<made_by>)"): OOF files,
    ``--save-probs`` files and teachers' soft labels share this shape and this check.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise (FileNotFoundError if error is ValueError else error)(f"{path}: file not found")
    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    missing = [c for c in ("id", "p_a", "p_b") if c not in df.columns]
    if missing:
        raise error(f"{path}: missing column(s) {missing}; expected id, p_a, p_b[, p_tie] ({made_by})")
    return df


def read_predictions(path: str | Path):
    """Predictions frame (id, p_a, p_b[, p_tie]) from parquet or csv; WSDM-style winners accepted too.

    Ids are read as the data loader reads them (text, int64 only when every id is a plain integer),
    so a file that spells the data's ids gets ids of the same kind: ``000100`` stays text.
    """
    import pandas as pd

    from arena_core.data.ids import normalise_ids

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    if path.suffix.lower() == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, dtype={"id": object})
    if "id" in df.columns:
        ids = normalise_ids(df, path)
        df["id"] = ids.to_numpy(dtype=object if ids.dtype == object else "int64")
    if {"p_a", "p_b"} <= set(df.columns):
        return df
    if {"winner_model_a", "winner_model_b"} <= set(df.columns):
        out = pd.DataFrame({"id": df["id"], "p_a": df["winner_model_a"], "p_b": df["winner_model_b"]})
        if "winner_tie" in df.columns:
            out["p_tie"] = df["winner_tie"]
        return out
    if "winner" in df.columns:
        hard = (df["winner"] == "model_a").astype(float)
        return pd.DataFrame({"id": df["id"], "p_a": hard, "p_b": 1.0 - hard})
    raise ValueError(
        f"{path}: expected columns id,p_a,p_b (arena predictions), id,winner (WSDM) or "
        f"id,winner_model_a,winner_model_b,winner_tie (LMSYS); found {list(df.columns)}"
    )
