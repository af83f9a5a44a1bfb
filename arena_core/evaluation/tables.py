"""Evaluation results as tables: overall and per-group scores, printed alike by the CLI and the report.

:class:`EvalResult` holds what :func:`~arena_core.evaluation.metrics.evaluate` computed;
:func:`format_table` prints any table as aligned plain text or GitHub Markdown (no ``tabulate``
dependency): numbers right-aligned with 4 decimals, text left-aligned, NaN as ``-``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EvalResult", "format_table"]


@dataclass
class EvalResult:
    """Result of :func:`evaluate`.

    ``overall`` is a one-row DataFrame and ``groups`` maps each grouping column to a DataFrame with
    one row per value (sorted by ``n`` descending). Columns: the group value, ``n`` (rows scored),
    ``ties_excluded`` (tie-labelled rows left out because the probabilities have no tie column),
    ``accuracy``, ``log_loss``, ``pred_a_share`` (share of scored rows predicted "A wins") and
    ``true_a_share`` (share of scored rows where A actually won).
    """

    overall: pd.DataFrame
    groups: dict[str, pd.DataFrame]
    n_classes: int
    n_ties_excluded: int
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(self.overall["accuracy"].iloc[0])

    @property
    def log_loss(self) -> float:
        return float(self.overall["log_loss"].iloc[0])

    @property
    def n(self) -> int:
        return int(self.overall["n"].iloc[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.iloc[0].to_dict(),
            "groups": {k: v.to_dict(orient="records") for k, v in self.groups.items()},
            "n_classes": self.n_classes,
            "n_ties_excluded": self.n_ties_excluded,
            "notes": list(self.notes),
        }

    def _render(self, markdown: bool) -> str:
        parts = []
        for title, table in [("overall", self.overall), *self.groups.items()]:
            heading = f"### {title}" if markdown else title
            parts.append(heading + "\n\n" + format_table(table, markdown=markdown))
        if self.notes:
            parts.append("\n".join(("- " if markdown else "* ") + n for n in self.notes))
        return "\n\n".join(parts) + "\n"

    def to_markdown(self) -> str:
        return self._render(markdown=True)

    def to_text(self) -> str:
        return self._render(markdown=False)

    def __str__(self) -> str:
        return self.to_text()


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4f}"
    return str(v)


def format_table(table: pd.DataFrame, markdown: bool = False) -> str:
    """Render a DataFrame as an aligned plain-text or GitHub-markdown table.

    Numbers are right-aligned (floats with 4 decimals, NaN as ``-``), text left-aligned.
    """
    headers = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c].dtype) for c in table.columns]
    body = [[_cell(v) for v in row] for row in table.itertuples(index=False, name=None)]
    if markdown:
        body = [[c.replace("|", "\\|") for c in row] for row in body]
        headers = [h.replace("|", "\\|") for h in headers]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    # markdown needs at least 3 dashes per column
    widths = [max(w, 3) for w in widths] if markdown else widths

    def fmt(cells: list[str]) -> list[str]:
        return [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]

    if markdown:
        lines = ["| " + " | ".join(fmt(headers)) + " |"]
        lines.append(
            "| "
            + " | ".join(("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric))
            + " |"
        )
        lines += ["| " + " | ".join(fmt(r)) + " |" for r in body]
    else:
        lines = ["  ".join(fmt(headers)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(fmt(r)).rstrip() for r in body]
    return "\n".join(lines)
