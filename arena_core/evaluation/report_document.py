"""The report's Markdown document, one function per section, from numbers already computed.

Nothing here computes a metric: every table is :func:`~arena_core.evaluation.tables.format_table`
of what :func:`~arena_core.evaluation.report.build_report` scored (a
:class:`~arena_core.evaluation.report_tables.Scored` and two
:class:`~arena_core.evaluation.report_tables.Breakdown`), so the document cannot drift from
``arena evaluate``'s numbers.
"""

from __future__ import annotations

import pandas as pd

from arena_core.evaluation.report_tables import BASELINE_NAME, MAX_LANGUAGES, Breakdown, Scored, wide_table
from arena_core.evaluation.tables import format_table

__all__ = ["markdown_document"]


def markdown_document(
    scored: Scored,
    languages: Breakdown,
    lengths: Breakdown,
    title: str,
    data_label: str | None,
    min_language_rows: int,
) -> str:
    """The whole ``report.md`` text: sections in reading order, one trailing newline."""
    md = [
        *_intro(scored, languages, title, data_label),
        *_headline(scored),
        *_per_source(scored),
        *_by_language(languages, min_language_rows),
        *_by_length_difference(lengths),
        *_calibration(),
        *_position_bias(scored),
        *_notes_and_full_evaluations(scored),
    ]
    return "\n".join(md).rstrip() + "\n"


def _intro(scored: Scored, languages: Breakdown, title: str, data_label: str | None) -> list[str]:
    labelled, counts = scored.labelled, languages.language_counts
    lab_counts = labelled["label"].value_counts()
    return [
        f"# {title}",
        "",
        f"Data: {data_label + ' — ' if data_label else ''}{len(scored.data)} rows, {len(labelled)} labelled "
        f"(A won {int(lab_counts.get(0, 0))}, B won {int(lab_counts.get(1, 0))}, tie {int(lab_counts.get(2, 0))}); "
        f"{counts.size} language(s)"
        + (f", {labelled['source'].nunique()} source(s)" if "source" in labelled else "")
        + ".",
        "",
        "Every accuracy / log loss below is computed by `arena_core.evaluation.metrics.evaluate` and printed with 4 "
        "decimals, exactly as `arena evaluate --data FILE --pred PREDS` prints it"
        + (" (without `--pred` it evaluates the length baseline)." if scored.has_base else ".")
        + " Accuracy uses the argmax (ties go to A); log loss is clipped and renormalised like Kaggle's.",
    ]


def _headline(scored: Scored) -> list[str]:
    return [
        "",
        "## Headline",
        "",
        format_table(scored.headline, markdown=True),
        "",
        "`acc_vs_baseline` / `ll_vs_baseline`: difference to the length baseline (accuracy up and log loss "
        "down are better). `ece`: expected calibration error of P(A wins) over 10 bins."
        if scored.has_base
        else "`ece`: expected calibration error of P(A wins) over 10 bins.",
        "",
    ]


def _per_source(scored: Scored) -> list[str]:
    if "source" not in scored.data.columns:
        return []
    src = {n: r.groups["source"] for n, r in scored.results.items()}
    return [
        "## Per source",
        "",
        "Accuracy:",
        "",
        format_table(wide_table(src, "source", "accuracy"), markdown=True),
        "",
        "Log loss:",
        "",
        format_table(wide_table(src, "source", "log_loss"), markdown=True),
        "",
    ]


def _by_language(languages: Breakdown, min_language_rows: int) -> list[str]:
    capped = languages.language_counts.size > MAX_LANGUAGES
    return [
        "## By language",
        "",
        "![Accuracy and log loss by language](by_language.png)",
        "",
        f"Languages with fewer than {min_language_rows} labelled rows are pooled as **{languages.other}** in the plot"
        + (f" (and at most {MAX_LANGUAGES} languages are shown)" if capped else "")
        + "; bars carry 95% Wilson intervals. Every language is listed in each model's section below.",
        "",
        "Accuracy (plot groups):",
        "",
        format_table(wide_table(languages.tables, "language", "accuracy", languages.groups), markdown=True),
        "",
    ]


def _by_length_difference(lengths: Breakdown) -> list[str]:
    key, buckets = lengths.key, lengths.groups
    accuracy = wide_table(lengths.tables, key, "accuracy", buckets)
    first = next(iter(lengths.tables.values())).set_index(key)
    accuracy.insert(2, "A won", first["true_a_share"].reindex(buckets).astype(float).to_numpy())
    return [
        "## By length difference",
        "",
        "![Accuracy and log loss by length difference](by_length_difference.png)",
        "",
        "Buckets of `(len_b - len_a) / max(len_a, len_b)` in characters (`length.length_difference_buckets`): "
        "negative means B is shorter. `A won` is the share of scored rows that A won.",
        "",
        "Accuracy:",
        "",
        format_table(accuracy, markdown=True),
        "",
        "Log loss:",
        "",
        format_table(wide_table(lengths.tables, key, "log_loss", buckets), markdown=True),
        "",
    ]


def _calibration() -> list[str]:
    return [
        "## Calibration",
        "",
        "![Reliability curves](calibration.png)",
        "",
        "Predicted P(A wins) is binned into 10 equal-width bins; each point is the bins' mean prediction "
        "against the observed share of rows A won (95% Wilson intervals), bin counts beneath. With 2-class "
        "predictions tie rows are left out (as in evaluate); with 3-class a tie counts as 'A did not win'.",
        "",
    ]


def _position_bias(scored: Scored) -> list[str]:
    bias = scored.bias
    md = ["## Position bias (A/B swap)", ""]
    if bias:
        table = pd.DataFrame([{"model": n, **b, "from": scored.bias_from[n]} for n, b in bias.items()])
        md += [
            "![Position bias](position_bias.png)",
            "",
            format_table(table, markdown=True),
            "",
            "`flip_rate`: share of rows whose decision changes when A and B are swapped "
            "(`metrics.position_bias`); `first_minus_second` > 0 means the model favours the response it "
            "reads first.",
            "",
        ]
    missing = [n for n in scored.models if n not in bias and n != BASELINE_NAME]
    if missing:
        md += [
            "Position bias needs swapped predictions, which "
            + ", ".join(f"`{n}`" for n in missing)
            + (" does" if len(missing) == 1 else " do")
            + " not have: pass `--swapped PROBS` (predictions on the same file with response_a and response_b "
            "exchanged) or predictions carrying the per-order columns `p_a_ab, p_b_ab, p_a_ba, p_b_ba`.",
            "",
        ]
    if scored.has_base:
        md += ["The length baseline is symmetric by construction, so it has no position bias.", ""]
    return md


def _notes_and_full_evaluations(scored: Scored) -> list[str]:
    md = ["## Notes", ""] + [f"- {t}" for t in scored.notes] + [""] if scored.notes else []
    for n, r in scored.results.items():
        md += [f"## `{n}`: full evaluation", "", r.to_markdown()]
    return md
