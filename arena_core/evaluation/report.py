"""A Markdown + PNG evaluation report for one or more preference models (``arena report``).

Every number in the report comes from :func:`arena_core.evaluation.metrics.evaluate` (or
:func:`~arena_core.evaluation.metrics.position_bias`) and is printed with the same formatting as
``arena evaluate``, so a reader can cross-check the report against the command line. The plots
only add views that tables make hard to see: per-language and per-length-difference bars,
reliability curves and the A/B swap disagreement.

:func:`build_report` runs in named steps: check the inputs, collect the models, score them (every
number, before a file is written), break them down by language and by length difference, draw the
plots, write the Markdown document, write ``summary.json``. The numbers the steps share live in
:mod:`~arena_core.evaluation.report_tables`, the figures in :mod:`~arena_core.evaluation.report_plots`;
and the Markdown sections in :mod:`~arena_core.evaluation.report_document`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from arena_core.evaluation.length import length_baseline, length_difference_buckets
from arena_core.evaluation.metrics import align, evaluate, position_bias
from arena_core.evaluation.report_document import markdown_document
from arena_core.evaluation.report_plots import calibration_plot, colors_for, grouped_bars, position_plot
from arena_core.evaluation.report_tables import (
    BASELINE_NAME,
    MAX_LANGUAGES,
    Breakdown,
    Scored,
    calibration_curve,
    ece,
    jsonable,
    position_inputs,
    split_stacked,
    wide_table,
)

__all__ = ["BASELINE_NAME", "build_report", "calibration_curve"]


def build_report(
    data_frame: pd.DataFrame,
    preds: dict[str, pd.DataFrame],
    out_dir: str | Path,
    *,
    swapped: dict[str, pd.DataFrame] | None = None,
    include_length_baseline: bool = True,
    title: str = "Preference model report",
    data_label: str | None = None,
    min_language_rows: int = 10,
) -> Path:
    """Write ``out_dir/report.md``, its PNG plots and ``summary.json``; return the report's path.

    ``data_frame``: a labelled canonical frame (:func:`arena_core.data.competition.load_competition_file`).
    ``preds``: model name -> predictions frame (id, p_a, p_b[, p_tie]); a frame with a ``model``
    column holding several models (``arena predict --save-probs``) becomes one entry per model.
    Frames with ``p_a_ab, p_b_ab, p_a_ba, p_b_ba`` (the swapped pass already mapped back to the
    original columns; NaN where a row was not re-scored) feed the position-bias section.
    ``swapped``: model name -> predictions on the same ids with A and B exchanged, *as the model
    wrote them* (their p_a is the original B); they take precedence over per-order columns.
    Ids are joined with :func:`metrics.align`, whose ``ValueError`` names any mismatch.
    Languages with fewer than ``min_language_rows`` labelled rows share one "other" bar.
    """
    _require_matplotlib()
    labelled = _labelled_rows(data_frame, preds, include_length_baseline)
    models, swapped = _collect_models(data_frame, preds, swapped, include_length_baseline)
    scored = _score(data_frame, labelled, models, swapped)
    languages = _by_language(scored, min_language_rows)
    lengths = _by_length_difference(scored)

    out = Path(out_dir)  # created only once every input has been checked and scored
    out.mkdir(parents=True, exist_ok=True)
    plots = _draw_plots(out, scored, languages, lengths)
    report = out / "report.md"
    report.write_text(
        markdown_document(scored, languages, lengths, title, data_label, min_language_rows), encoding="utf-8"
    )
    _write_summary(out / "summary.json", scored, languages, title, data_label, plots)
    return report


# ----------------------------------------------------------------------------- step 1: inputs


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # matplotlib is an optional extra
        raise ImportError(
            "the report needs matplotlib: pip install 'arena_core[dev]' or pip install matplotlib"
        ) from exc


def _labelled_rows(
    data_frame: pd.DataFrame, preds: dict[str, pd.DataFrame], include_length_baseline: bool
) -> pd.DataFrame:
    """The labelled rows, once the frame is known to be canonical and there is something to report."""
    if not preds and not include_length_baseline:
        raise ValueError("nothing to report: pass at least one predictions frame or keep the length baseline")
    for col in ("id", "label", "language", "response_a", "response_b"):
        if col not in data_frame.columns:
            raise ValueError(
                f"data frame has no {col!r} column; load it with arena_core.data.competition.load_competition_file"
            )
    labelled = data_frame[data_frame["label"].notna()]
    if labelled.empty:
        raise ValueError("the data has no labelled rows (winner); a report needs labels")
    return labelled


def _collect_models(
    data_frame: pd.DataFrame,
    preds: dict[str, pd.DataFrame],
    swapped: dict[str, pd.DataFrame] | None,
    include_length_baseline: bool,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Model name -> predictions (stacked files split, the length baseline last) and the swapped passes."""
    models: dict[str, pd.DataFrame] = {}
    for name, df in preds.items():
        models.update(split_stacked(str(name), df))
    swapped = dict(swapped or {})
    unknown = sorted(set(swapped) - set(models))
    if unknown:
        raise ValueError(f"swapped predictions for unknown model(s) {unknown}; models are {list(models)}")
    if include_length_baseline:
        if BASELINE_NAME in models:
            raise ValueError(
                f"a model is already called {BASELINE_NAME!r}; rename it or pass include_length_baseline=False"
            )
        models[BASELINE_NAME] = length_baseline(data_frame)
    return models, swapped


# ----------------------------------------------------------------------------- step 2: every number


def _score(
    data_frame: pd.DataFrame,
    labelled: pd.DataFrame,
    models: dict[str, pd.DataFrame],
    swapped: dict[str, pd.DataFrame],
) -> Scored:
    """evaluate() per model (as `arena evaluate` prints it), calibration, position bias, headline table."""
    scored = Scored(data=data_frame, labelled=labelled, models=models)
    scored.results = {n: evaluate(data_frame, p) for n, p in models.items()}
    for n, p in models.items():
        y, probs, _ = align(data_frame, p)
        scored.curves[n] = calibration_curve(y, probs)
        scored.eces[n] = ece(scored.curves[n])
    _score_position_bias(scored, swapped)
    _headline(scored)
    return scored


def _score_position_bias(scored: Scored, swapped: dict[str, pd.DataFrame]) -> None:
    """Position bias for every model with a swapped pass or per-order columns (not the baseline)."""
    for n, p in scored.models.items():
        if n == BASELINE_NAME:
            continue  # symmetric by construction
        got = position_inputs(scored.data, p, swapped.get(n))
        if got is None:
            continue
        ab, ba, where = got
        scored.bias[n] = position_bias(ab, ba)
        scored.bias_from[n] = where
        if scored.bias[n]["n"] and scored.bias[n]["flip_rate"] > 0.5:
            scored.notes.append(
                f"{n}: more than half of the decisions flip under the swap; check that the swapped "
                "predictions are as the model wrote them (p_a = response shown first), not already mapped back"
            )


def _headline(scored: Scored) -> None:
    """One row per model: n, accuracy, log loss, the difference to the baseline, ECE."""
    results = scored.results
    for n, r in results.items():
        row = {
            "model": n,
            "classes": r.n_classes,
            "n": r.n,
            "ties_excluded": r.n_ties_excluded,
            "accuracy": r.accuracy,
            "log_loss": r.log_loss,
        }
        if scored.has_base:
            base = results[BASELINE_NAME]
            if n != BASELINE_NAME:
                row["acc_vs_baseline"] = r.accuracy - base.accuracy
                row["ll_vs_baseline"] = r.log_loss - base.log_loss
            else:
                row["acc_vs_baseline"] = row["ll_vs_baseline"] = float("nan")
        row["ece"] = scored.eces[n]
        scored.rows.append(row)
    scored.headline = pd.DataFrame(scored.rows)
    if len({r.n for r in results.values()}) > 1:
        scored.notes.append(
            "models were scored on different numbers of rows (2-class predictions leave tie rows "
            "out); compare them with care"
        )


# ----------------------------------------------------------------------------- step 3: breakdowns


def _by_language(scored: Scored, min_language_rows: int) -> Breakdown:
    """Per-language tables; languages under ``min_language_rows`` labelled rows pooled as one group."""
    labelled, data_frame = scored.labelled, scored.data
    counts = (
        labelled["language"].astype("object").where(labelled["language"].notna(), "<missing>").astype(str)
    )
    counts = counts.value_counts()
    keep = [lang for lang, c in counts.items() if c >= min_language_rows][:MAX_LANGUAGES]
    rest = counts.drop(keep)
    other = f"other (n<{min_language_rows})" if all(rest < min_language_rows) else "other languages"
    lang_frame = data_frame.copy()
    lang_col = (
        lang_frame["language"].astype("object").where(lang_frame["language"].notna(), "<missing>").astype(str)
    )
    lang_frame["language"] = lang_col.where(lang_col.isin(keep), other)
    groups = keep + ([other] if len(rest) else [])
    tables = {n: evaluate(lang_frame, p, by="language").groups["language"] for n, p in scored.models.items()}
    n_scored = wide_table(tables, "language", "n", groups)["n"].tolist()  # scored rows, as in the tables
    return Breakdown("language", groups, n_scored, tables, language_counts=counts, other=other)


def _by_length_difference(scored: Scored) -> Breakdown:
    """Per-bucket tables of the relative length difference (``length.length_difference_buckets``)."""
    bucket_frame = scored.data.copy()
    bucket_frame["length_bucket"] = length_difference_buckets(scored.data).astype(str)
    buckets = [str(c) for c in length_difference_buckets(scored.labelled).cat.categories]
    tables = {
        n: evaluate(bucket_frame, p, by="length_bucket").groups["length_bucket"]
        for n, p in scored.models.items()
    }
    n_scored = wide_table(tables, "length_bucket", "n", buckets)["n"].tolist()
    return Breakdown("length_bucket", buckets, n_scored, tables)


# ----------------------------------------------------------------------------- step 4: plots


def _draw_plots(out: Path, scored: Scored, languages: Breakdown, lengths: Breakdown) -> list[str]:
    """Write the PNGs into ``out``; return their file names in the order the document shows them."""
    colors = colors_for(list(scored.models))
    ks = {r.n_classes for r in scored.results.values()}
    ll_ref = None
    if ks == {2}:
        ll_ref = (math.log(2), "50/50 guess (ln 2)")
    elif ks == {3}:
        ll_ref = (math.log(3), "uniform 3-way guess (ln 3)")
    plots = ["by_language.png", "by_length_difference.png", "calibration.png"]
    for name, title, xlabel, breakdown in (
        ("by_language.png", "Accuracy and log loss by language", "language (n = rows scored)", languages),
        (
            "by_length_difference.png",
            "Accuracy and log loss by length difference",
            "relative length difference (len_b - len_a) / max(len_a, len_b)\n"
            "negative: B is shorter, positive: B is longer",
            lengths,
        ),
    ):
        grouped_bars(
            out / name,
            title,
            xlabel,
            breakdown.groups,
            breakdown.counts,
            breakdown.tables,
            breakdown.key,
            colors,
            ll_ref,
        )
    calibration_plot(out / "calibration.png", scored.curves, scored.eces, colors)
    if scored.bias:
        position_plot(out / "position_bias.png", scored.bias, colors)
        plots.append("position_bias.png")
    return plots


# ----------------------------------------------------------------------------- step 5: summary.json


def _write_summary(
    path: Path, scored: Scored, languages: Breakdown, title: str, data_label: str | None, plots: list[str]
) -> None:
    """The headline numbers per model as strict JSON (NaN -> null) for scripts and dashboards."""
    labelled, data_frame = scored.labelled, scored.data
    summary = {
        "title": title,
        "data": {
            "label": data_label,
            "rows": len(data_frame),
            "labelled": len(labelled),
            "languages": {k: int(v) for k, v in languages.language_counts.items()},
            "sources": (
                {k: int(v) for k, v in labelled["source"].astype(str).value_counts().items()}
                if "source" in labelled
                else None
            ),
        },
        "baseline": BASELINE_NAME if scored.has_base else None,
        "headline": {
            r["model"]: {"n": r["n"], "accuracy": r["accuracy"], "log_loss": r["log_loss"]}
            for r in scored.rows
        },
        "models": {},
        "plots": plots,
        "notes": scored.notes,
    }
    for row in scored.headline.to_dict(orient="records"):
        n = row.pop("model")
        row["position_bias"] = scored.bias.get(n)
        row["position_bias_from"] = scored.bias_from.get(n)
        if "source" in data_frame.columns:
            g = scored.results[n].groups["source"]
            row["by_source"] = {
                s: {"n": int(k), "accuracy": a, "log_loss": ll}
                for s, k, a, ll in zip(g["source"], g["n"], g["accuracy"], g["log_loss"])
            }
        summary["models"][n] = row
    path.write_text(json.dumps(jsonable(summary), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
