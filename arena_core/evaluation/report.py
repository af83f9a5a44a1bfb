"""A Markdown + PNG evaluation report for one or more preference models (``arena report``).

Every number in the report comes from :func:`arena_core.evaluation.metrics.evaluate` (or
:func:`~arena_core.evaluation.metrics.position_bias`) and is printed with the same formatting as
``arena evaluate``, so a reader can cross-check the report against the command line. The plots
only add views that tables make hard to see: per-language and per-length-difference bars,
reliability curves and the A/B swap disagreement.

Heavy libraries (numpy, pandas, matplotlib) are imported inside the functions, so registering
the subcommand keeps ``arena --help`` instant. Plots are drawn on ``matplotlib.figure.Figure``
objects (no pyplot), so building a report never switches the caller's backend or leaks figures.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

__all__ = ["BASELINE_NAME", "build_report", "calibration_curve", "register"]

#: Name of the built-in length-baseline model in tables, plots and summary.json.
BASELINE_NAME = "length baseline"
#: Per-order probability columns (swapped pass already mapped back to the original A/B columns).
ORDER_COLUMNS = ("p_a_ab", "p_b_ab", "p_a_ba", "p_b_ba")
_BASELINE_COLOR = "#8c8c8c"
_MAX_LANGUAGES = 12


# ----------------------------------------------------------------------------- small helpers


def _colors(names: list[str]) -> dict[str, str]:
    """Stable colours: tab10 for models, grey for the baseline so it reads as a reference."""
    from matplotlib import colormaps

    tab = colormaps["tab10"]
    out, i = {}, 0
    for name in names:
        if name == BASELINE_NAME:
            out[name] = _BASELINE_COLOR
        else:
            out[name] = tab(i % 10)
            i += 1
    return out


def _label_bars(ax, bars, values) -> None:
    """Each bar's value written inside it (blank for NaN), small enough not to crowd the axis."""
    import numpy as np

    labels = [f"{v:.2f}" if np.isfinite(v) else "" for v in values]
    ax.bar_label(bars, labels=labels, label_type="center", rotation=90, fontsize=7, color="black")


def _wilson(acc: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson interval half-widths (below, above): small groups must look uncertain."""
    import numpy as np

    acc, n = np.asarray(acc, float), np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1 + z**2 / n
        centre = (acc + z**2 / (2 * n)) / denom
        half = z * np.sqrt(acc * (1 - acc) / n + z**2 / (4 * n**2)) / denom
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    # Rounding can leave -1e-17 at accuracy 0 or 1; matplotlib refuses negative error bars.
    return np.clip(np.nan_to_num(acc - lo), 0, None), np.clip(np.nan_to_num(hi - acc), 0, None)


def _jsonable(value: Any) -> Any:
    """NaN -> null and numpy scalars -> Python, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _binary_target(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(A wins), A won) the way evaluate scores: 2-class probs drop tie rows, rows renormalised."""
    import numpy as np

    if probs.shape[1] == 2:
        keep = labels != 2
        labels, probs = labels[keep], probs[keep]
    total = probs.sum(axis=1)
    p = np.divide(probs[:, 0], total, out=np.full(total.shape, 0.5), where=total > 0)
    return p, (labels == 0).astype(float)


def calibration_curve(labels: Any, probs: Any, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table of P(A wins): equal-width bins with n, mean predicted and observed share.

    With 2-class probabilities tie-labelled rows are left out (as in :func:`metrics.evaluate`);
    with 3-class probabilities a tie counts as "A did not win". Empty bins have n = 0 and NaNs.
    """
    import numpy as np
    import pandas as pd

    from arena_core.evaluation.metrics import _as_labels, _as_probs

    probs = _as_probs(probs)
    labels = _as_labels(labels, probs.shape[0], 3)  # tie labels allowed: 2-class probs drop them below
    p, y = _binary_target(labels, probs)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    n = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(idx, weights=p, minlength=n_bins) / n
        observed = np.bincount(idx, weights=y, minlength=n_bins) / n
    return pd.DataFrame(
        {"lo": edges[:-1], "hi": edges[1:], "n": n, "mean_pred": mean_pred, "observed": observed}
    )


def _ece(table: pd.DataFrame) -> float:
    """Expected calibration error: count-weighted mean |observed - predicted| over bins."""
    import numpy as np

    n = table["n"].to_numpy(float)
    if n.sum() == 0:
        return float("nan")
    gap = np.abs(table["observed"] - table["mean_pred"]).fillna(0.0).to_numpy()
    return float((n * gap).sum() / n.sum())


def _split_long(name: str, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A ``--save-probs`` file stacks several models (column ``model``): one entry per model."""
    if "model" not in df.columns or df["model"].nunique() <= 1:
        return {name: df}
    return {
        f"{name}/{m}": g.drop(columns="model").reset_index(drop=True)
        for m, g in df.groupby("model", sort=False)
    }


def _wide(
    results: dict[str, pd.DataFrame], key: str, metric: str, order: list[str] | None = None
) -> pd.DataFrame:
    """One row per group, one column per model: the per-group numbers side by side."""
    import pandas as pd

    first = next(iter(results.values()))
    groups = order if order is not None else first[key].tolist()
    out = pd.DataFrame({key: groups})
    out["n"] = first.set_index(key)["n"].reindex(groups).fillna(0).astype(int).to_numpy()
    for name, table in results.items():
        out[name] = table.set_index(key)[metric].reindex(groups).astype(float).to_numpy()
    return out


# ----------------------------------------------------------------------------- position bias


def _position_inputs(frame: pd.DataFrame, pred: pd.DataFrame, swapped: pd.DataFrame | None):
    """(probs_ab, probs_ba mapped back, where from) or None when the predictions carry no second order."""
    import numpy as np

    from arena_core.evaluation.metrics import align

    if swapped is not None:
        _, ab, _ = align(frame, pred)
        _, sw, _ = align(frame, swapped)
        if sw.shape[1] != ab.shape[1]:
            raise ValueError(
                f"swapped predictions have {sw.shape[1]} classes but the originals have {ab.shape[1]}"
            )
        ba = sw.copy()
        ba[:, [0, 1]] = sw[:, [1, 0]]  # swapped pass: its p_a is the original B
        return ab, ba, "swapped predictions file"
    if not set(ORDER_COLUMNS) <= set(pred.columns):
        return None
    _, _, sub = align(frame, pred)
    cols_ab, cols_ba = ["p_a_ab", "p_b_ab"], ["p_a_ba", "p_b_ba"]
    if {"p_tie_ab", "p_tie_ba"} <= set(pred.columns):
        cols_ab.append("p_tie_ab")
        cols_ba.append("p_tie_ba")
    by_id = pred.set_index("id").loc[sub["id"]]
    ab = by_id[cols_ab].to_numpy(float)
    ba = by_id[cols_ba].to_numpy(float)
    both = np.all(np.isfinite(ab), axis=1) & np.all(np.isfinite(ba), axis=1)
    return (
        ab[both],
        ba[both],
        f"per-order columns ({int(both.sum())} of {len(both)} rows scored in both orders)",
    )


# ----------------------------------------------------------------------------- plots


def _grouped_bars(
    path: Path,
    title: str,
    xlabel: str,
    groups: list[str],
    counts: list[int],
    tables: dict[str, pd.DataFrame],
    key: str,
    colors: dict[str, str],
    ll_ref: tuple[float, str] | None,
) -> None:
    """Accuracy (with 95% intervals) above log loss, one bar per model in each group."""
    import numpy as np
    from matplotlib.figure import Figure

    names = list(tables)
    x = np.arange(len(groups))
    width = 0.8 / len(names)
    show_values = len(names) <= 3  # narrower bars cannot hold a label; the report's tables have the numbers
    fig = Figure(
        figsize=(max(7.0, 1.1 + len(groups) * (0.45 + 0.32 * len(names))), 7.2), layout="constrained"
    )
    ax_acc, ax_ll = fig.subplots(2, 1, sharex=True)
    for i, name in enumerate(names):
        t = tables[name].set_index(key).reindex(groups)
        acc, ll, n = (
            t["accuracy"].to_numpy(float),
            t["log_loss"].to_numpy(float),
            t["n"].fillna(0).to_numpy(float),
        )
        off = x - 0.4 + width * (i + 0.5)
        hatch = "//" if name == BASELINE_NAME else None
        bars = ax_acc.bar(
            off,
            acc,
            width,
            color=colors[name],
            label=name,
            hatch=hatch,
            edgecolor="white",
            yerr=np.vstack(_wilson(acc, n)),
            error_kw={"elinewidth": 0.8, "capsize": 2, "alpha": 0.7},
        )
        if show_values:
            _label_bars(ax_acc, bars, acc)
        bars = ax_ll.bar(off, ll, width, color=colors[name], hatch=hatch, edgecolor="white")
        if show_values:
            _label_bars(ax_ll, bars, ll)
    ax_acc.axhline(0.5, color="black", lw=0.8, ls="--")
    ax_acc.set_ylim(0, 1.05)
    ax_acc.set_ylabel("accuracy (higher is better)")
    ax_acc.set_title("accuracy, with 95% Wilson intervals; dashed line = 0.5", fontsize=9)
    if ll_ref is not None:
        ax_ll.axhline(ll_ref[0], color="black", lw=0.8, ls="--")
    ax_ll.set_ylabel("log loss (lower is better)")
    ax_ll.set_title("log loss" + (f"; dashed line = {ll_ref[1]}" if ll_ref else ""), fontsize=9)
    ax_ll.set_xticks(x, [f"{g}\nn={c}" for g, c in zip(groups, counts)])
    ax_ll.set_xlabel(xlabel)
    for ax in (ax_acc, ax_ll):
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle(title, fontsize=12)
    fig.legend(loc="outside lower center", ncols=min(len(names), 6), fontsize=9, frameon=False)
    fig.savefig(path, dpi=110)


def _calibration_plot(
    path: Path, curves: dict[str, pd.DataFrame], eces: dict[str, float], colors: dict[str, str]
) -> None:
    """Reliability curve per model (observed vs predicted P(A wins)) with bin counts beneath."""
    import numpy as np
    from matplotlib.figure import Figure

    names = list(curves)
    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(4.3 * ncols, 5.4 * nrows), layout="constrained")
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[3, 1.1] * nrows)
    for i, name in enumerate(names):
        r, c = divmod(i, ncols)
        ax = fig.add_subplot(grid[2 * r, c])
        ax_n = fig.add_subplot(grid[2 * r + 1, c], sharex=ax)
        t = curves[name]
        ok = t["n"].to_numpy() > 0
        n, pred, obs = (
            t["n"].to_numpy(float)[ok],
            t["mean_pred"].to_numpy(float)[ok],
            t["observed"].to_numpy(float)[ok],
        )
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--", label="perfect calibration")
        ax.errorbar(
            pred,
            obs,
            yerr=np.vstack(_wilson(obs, n)),
            color=colors[name],
            marker="o",
            ms=4,
            lw=1.4,
            capsize=2,
            elinewidth=0.8,
            label=name,
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_ylabel("observed share: A won")
        ax.set_title(f"{name}\nECE {eces[name]:.3f}, n={int(t['n'].sum())}", fontsize=10)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=False)
        width = (t["hi"] - t["lo"]).to_numpy()
        bars = ax_n.bar(t["lo"] + width / 2, t["n"], width * 0.9, color=colors[name], alpha=0.8)
        ax_n.bar_label(bars, labels=[str(int(v)) if v else "" for v in t["n"]], fontsize=7, padding=1)
        ax_n.set_ylim(0, max(1, t["n"].max()) * 1.3)
        ax_n.set_ylabel("rows")
        ax_n.set_xlabel("predicted P(A wins), binned")
    fig.suptitle("Calibration (reliability): points on the diagonal are well calibrated", fontsize=12)
    fig.savefig(path, dpi=110)


def _position_plot(path: Path, bias: dict[str, dict[str, float]], colors: dict[str, str]) -> None:
    """Swap-disagreement rate and first-shown preference, one bar per model."""
    import numpy as np
    from matplotlib.figure import Figure

    names = list(bias)
    x = np.arange(len(names))
    fig = Figure(figsize=(max(7.0, 2.0 + 1.6 * len(names)), 4.2), layout="constrained")
    ax_f, ax_d = fig.subplots(1, 2)
    cols = [colors[n] for n in names]
    flips = [bias[n]["flip_rate"] for n in names]
    bars = ax_f.bar(x, flips, 0.6, color=cols)
    ax_f.bar_label(
        bars, labels=[f"{v:.3f}\nn={bias[n]['n']}" for v, n in zip(flips, names)], fontsize=8, padding=2
    )
    ax_f.set_ylim(0, max(0.1, max(flips) * 1.35))
    ax_f.set_ylabel("share of rows whose decision flips")
    ax_f.set_title("swap disagreement (flip rate)", fontsize=10)
    diffs = [bias[n]["first_minus_second"] for n in names]
    bars = ax_d.bar(x, diffs, 0.6, color=cols)
    ax_d.bar_label(bars, labels=[f"{v:+.3f}" for v in diffs], fontsize=8, padding=2)
    lim = max(0.05, max(abs(v) for v in diffs) * 1.4)
    ax_d.set_ylim(-lim, lim)
    ax_d.axhline(0, color="black", lw=0.8)
    ax_d.set_ylabel("mean P(first shown wins) - P(second)")
    ax_d.set_title("preference for the response shown first", fontsize=10)
    pad = 0.7 if len(names) >= 3 else 1.0 if len(names) == 2 else 1.4  # keep lone bars from filling the axes
    for ax in (ax_f, ax_d):
        ax.set_xlim(-pad, len(names) - 1 + pad)
        ax.set_xticks(
            x, names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center"
        )
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle("Position bias: original order vs A/B swapped", fontsize=12)
    fig.savefig(path, dpi=110)


# ----------------------------------------------------------------------------- the report


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
    import pandas as pd

    from arena_core.evaluation.metrics import (
        align,
        evaluate,
        format_table,
        length_baseline,
        length_difference_buckets,
        position_bias,
    )

    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # matplotlib is an optional extra
        raise ImportError(
            "the report needs matplotlib: pip install 'arena_core[dev]' or pip install matplotlib"
        ) from exc

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

    models: dict[str, pd.DataFrame] = {}
    for name, df in preds.items():
        models.update(_split_long(str(name), df))
    swapped = dict(swapped or {})
    unknown = sorted(set(swapped) - set(models))
    if unknown:
        raise ValueError(f"swapped predictions for unknown model(s) {unknown}; models are {list(models)}")
    if include_length_baseline:
        base = BASELINE_NAME
        if base in models:
            raise ValueError(
                f"a model is already called {base!r}; rename it or pass include_length_baseline=False"
            )
        models[base] = length_baseline(data_frame)
    names = list(models)

    colors = _colors(names)
    notes: list[str] = []

    # every number shown below comes from evaluate(), as `arena evaluate` prints it
    results = {n: evaluate(data_frame, p) for n, p in models.items()}
    ks = {n: r.n_classes for n, r in results.items()}

    # (c) calibration, needed for the headline table
    curves, eces = {}, {}
    for n, p in models.items():
        y, probs, _ = align(data_frame, p)
        curves[n] = calibration_curve(y, probs)
        eces[n] = _ece(curves[n])

    # (d) position bias
    bias: dict[str, dict[str, float]] = {}
    bias_from: dict[str, str] = {}
    for n, p in models.items():
        if n == BASELINE_NAME:
            continue  # symmetric by construction
        got = _position_inputs(data_frame, p, swapped.get(n))
        if got is None:
            continue
        ab, ba, where = got
        bias[n] = position_bias(ab, ba)
        bias_from[n] = where
        if bias[n]["n"] and bias[n]["flip_rate"] > 0.5:
            notes.append(
                f"{n}: more than half of the decisions flip under the swap; check that the swapped "
                "predictions are as the model wrote them (p_a = response shown first), not already mapped back"
            )

    # ------------------------------------------------------------------ headline table
    has_base = BASELINE_NAME in results
    rows = []
    for n, r in results.items():
        row = {
            "model": n,
            "classes": r.n_classes,
            "n": r.n,
            "ties_excluded": r.n_ties_excluded,
            "accuracy": r.accuracy,
            "log_loss": r.log_loss,
        }
        if has_base and n != BASELINE_NAME:
            row["acc_vs_baseline"] = r.accuracy - results[BASELINE_NAME].accuracy
            row["ll_vs_baseline"] = r.log_loss - results[BASELINE_NAME].log_loss
        elif has_base:
            row["acc_vs_baseline"] = row["ll_vs_baseline"] = float("nan")
        row["ece"] = eces[n]
        rows.append(row)
    headline = pd.DataFrame(rows)
    if len({r.n for r in results.values()}) > 1:
        notes.append(
            "models were scored on different numbers of rows (2-class predictions leave tie rows "
            "out); compare them with care"
        )

    # ------------------------------------------------------------------ plots
    out = Path(out_dir)  # created only once every input has been checked
    out.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    ll_ref = None
    if set(ks.values()) == {2}:
        ll_ref = (math.log(2), "50/50 guess (ln 2)")
    elif set(ks.values()) == {3}:
        ll_ref = (math.log(3), "uniform 3-way guess (ln 3)")

    counts = (
        labelled["language"].astype("object").where(labelled["language"].notna(), "<missing>").astype(str)
    )
    counts = counts.value_counts()
    keep = [lang for lang, c in counts.items() if c >= min_language_rows][:_MAX_LANGUAGES]
    rest = counts.drop(keep)
    other = f"other (n<{min_language_rows})" if all(rest < min_language_rows) else "other languages"
    lang_frame = data_frame.copy()
    lang_col = (
        lang_frame["language"].astype("object").where(lang_frame["language"].notna(), "<missing>").astype(str)
    )
    lang_frame["language"] = lang_col.where(lang_col.isin(keep), other)
    lang_groups = keep + ([other] if len(rest) else [])
    lang_tables = {n: evaluate(lang_frame, p, by="language").groups["language"] for n, p in models.items()}
    lang_counts = _wide(lang_tables, "language", "n", lang_groups)[
        "n"
    ].tolist()  # scored rows, as in the tables
    _grouped_bars(
        out / "by_language.png",
        "Accuracy and log loss by language",
        "language (n = rows scored)",
        lang_groups,
        lang_counts,
        lang_tables,
        "language",
        colors,
        ll_ref,
    )
    plots.append("by_language.png")

    bucket_frame = data_frame.copy()
    bucket_frame["length_bucket"] = length_difference_buckets(data_frame).astype(str)
    buckets = [str(c) for c in length_difference_buckets(labelled).cat.categories]
    bucket_tables = {
        n: evaluate(bucket_frame, p, by="length_bucket").groups["length_bucket"] for n, p in models.items()
    }
    bucket_counts = _wide(bucket_tables, "length_bucket", "n", buckets)["n"]
    _grouped_bars(
        out / "by_length_difference.png",
        "Accuracy and log loss by length difference",
        "relative length difference (len_b - len_a) / max(len_a, len_b)\nnegative: B is shorter, positive: B is longer",
        buckets,
        bucket_counts.tolist(),
        bucket_tables,
        "length_bucket",
        colors,
        ll_ref,
    )
    plots.append("by_length_difference.png")

    _calibration_plot(out / "calibration.png", curves, eces, colors)
    plots.append("calibration.png")
    if bias:
        _position_plot(out / "position_bias.png", bias, colors)
        plots.append("position_bias.png")

    # ------------------------------------------------------------------ markdown
    n_lab = len(labelled)
    lab_counts = labelled["label"].value_counts()
    md = [f"# {title}", ""]
    md.append(
        f"Data: {data_label + ' — ' if data_label else ''}{len(data_frame)} rows, {n_lab} labelled "
        f"(A won {int(lab_counts.get(0, 0))}, B won {int(lab_counts.get(1, 0))}, tie {int(lab_counts.get(2, 0))}); "
        f"{counts.size} language(s)"
        + (f", {labelled['source'].nunique()} source(s)" if "source" in labelled else "")
        + "."
    )
    md.append("")
    md.append(
        "Every accuracy / log loss below is computed by `arena_core.evaluation.metrics.evaluate` and printed with 4 "
        "decimals, exactly as `arena evaluate --data FILE --pred PREDS` prints it"
        + (" (without `--pred` it evaluates the length baseline)." if has_base else ".")
        + " Accuracy uses the argmax (ties go to A); log loss is clipped and renormalised like Kaggle's."
    )
    md += ["", "## Headline", "", format_table(headline, markdown=True), ""]
    md.append(
        "`acc_vs_baseline` / `ll_vs_baseline`: difference to the length baseline (accuracy up and log loss "
        "down are better). `ece`: expected calibration error of P(A wins) over 10 bins."
        if has_base
        else "`ece`: expected calibration error of P(A wins) over 10 bins."
    )
    md.append("")
    if "source" in data_frame.columns:
        md += ["## Per source", ""]
        src = {n: r.groups["source"] for n, r in results.items()}
        md += ["Accuracy:", "", format_table(_wide(src, "source", "accuracy"), markdown=True), ""]
        md += ["Log loss:", "", format_table(_wide(src, "source", "log_loss"), markdown=True), ""]
    md += ["## By language", "", "![Accuracy and log loss by language](by_language.png)", ""]
    md.append(
        f"Languages with fewer than {min_language_rows} labelled rows are pooled as **{other}** in the plot"
        + (f" (and at most {_MAX_LANGUAGES} languages are shown)" if counts.size > _MAX_LANGUAGES else "")
        + "; bars carry 95% Wilson intervals. Every language is listed in each model's section below."
    )
    md += [
        "",
        "Accuracy (plot groups):",
        "",
        format_table(_wide(lang_tables, "language", "accuracy", lang_groups), markdown=True),
        "",
    ]
    md += [
        "## By length difference",
        "",
        "![Accuracy and log loss by length difference](by_length_difference.png)",
        "",
    ]
    md.append(
        "Buckets of `(len_b - len_a) / max(len_a, len_b)` in characters (`metrics.length_difference_buckets`): "
        "negative means B is shorter. `A won` is the share of scored rows that A won."
    )
    acc_b = _wide(bucket_tables, "length_bucket", "accuracy", buckets)
    first = next(iter(bucket_tables.values())).set_index("length_bucket")
    acc_b.insert(2, "A won", first["true_a_share"].reindex(buckets).astype(float).to_numpy())
    md += ["", "Accuracy:", "", format_table(acc_b, markdown=True), ""]
    md += [
        "Log loss:",
        "",
        format_table(_wide(bucket_tables, "length_bucket", "log_loss", buckets), markdown=True),
        "",
    ]
    md += ["## Calibration", "", "![Reliability curves](calibration.png)", ""]
    md.append(
        "Predicted P(A wins) is binned into 10 equal-width bins; each point is the bins' mean prediction "
        "against the observed share of rows A won (95% Wilson intervals), bin counts beneath. With 2-class "
        "predictions tie rows are left out (as in evaluate); with 3-class a tie counts as 'A did not win'."
    )
    md.append("")
    md += ["## Position bias (A/B swap)", ""]
    if bias:
        md += ["![Position bias](position_bias.png)", ""]
        table = pd.DataFrame([{"model": n, **b, "from": bias_from[n]} for n, b in bias.items()])
        md += [format_table(table, markdown=True), ""]
        md.append(
            "`flip_rate`: share of rows whose decision changes when A and B are swapped "
            "(`metrics.position_bias`); `first_minus_second` > 0 means the model favours the response it "
            "reads first."
        )
        md.append("")
    missing = [n for n in names if n not in bias and n != BASELINE_NAME]
    if missing:
        md.append(
            "Position bias needs swapped predictions, which "
            + ", ".join(f"`{n}`" for n in missing)
            + (" does" if len(missing) == 1 else " do")
            + " not have: pass `--swapped PROBS` (predictions on the same file with response_a and response_b "
            "exchanged) or predictions carrying the per-order columns `p_a_ab, p_b_ab, p_a_ba, p_b_ba`."
        )
        md.append("")
    if has_base:
        md.append("The length baseline is symmetric by construction, so it has no position bias.")
        md.append("")
    if notes:
        md += ["## Notes", ""] + [f"- {t}" for t in notes] + [""]
    for n, r in results.items():
        md += [f"## `{n}`: full evaluation", "", r.to_markdown()]

    report = out / "report.md"
    report.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")

    summary = {
        "title": title,
        "data": {
            "label": data_label,
            "rows": len(data_frame),
            "labelled": n_lab,
            "languages": {k: int(v) for k, v in counts.items()},
            "sources": (
                {k: int(v) for k, v in labelled["source"].astype(str).value_counts().items()}
                if "source" in labelled
                else None
            ),
        },
        "baseline": BASELINE_NAME if has_base else None,
        "headline": {
            r["model"]: {"n": r["n"], "accuracy": r["accuracy"], "log_loss": r["log_loss"]} for r in rows
        },
        "models": {},
        "plots": plots,
        "notes": notes,
    }
    for row in headline.to_dict(orient="records"):
        n = row.pop("model")
        row["position_bias"] = bias.get(n)
        row["position_bias_from"] = bias_from.get(n)
        if "source" in data_frame.columns:
            g = results[n].groups["source"]
            row["by_source"] = {
                s: {"n": int(k), "accuracy": a, "log_loss": ll}
                for s, k, a, ll in zip(g["source"], g["n"], g["accuracy"], g["log_loss"])
            }
        summary["models"][n] = row
    (out / "summary.json").write_text(
        json.dumps(_jsonable(summary), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return report


# ----------------------------------------------------------------------------- command line

REPORT_HELP = """\
Write an evaluation report for one or more prediction files on a labelled file.

Inputs:
  --data FILE        labelled competition-schema file (.parquet/.csv with winner), e.g. a held-out fold
                     or real_pref_dev.parquet; a 'source' column adds per-source tables.
  --pred PROBS       predictions as parquet/csv: id,p_a,p_b[,p_tie] (arena predict), or a submission.csv.
                     Repeat for several models. A --save-probs file holding several models (column
                     'model') is split into one model each; per-order columns p_a_ab,p_b_ab,p_a_ba,p_b_ba
                     (swapped pass mapped back to the original columns) feed the position-bias section.
  --name NAME        display name per --pred, same order (default: the file name).
  --swapped PROBS    predictions of the same model on the same file with response_a and response_b
                     exchanged, as the model wrote them (their p_a is the original B). Give one per --pred
                     in the same order ('-' for none), or NAME=PROBS for a named model.

Outputs (in --out DIR):
  report.md          headline table vs the length baseline, per-source tables, plots embedded by relative
                     link, and each model's full evaluation; every number is what 'arena evaluate' prints.
  by_language.png, by_length_difference.png, calibration.png, position_bias.png (when swapped predictions
  are available)
  summary.json       the headline numbers (accuracy, log loss, ECE, position bias) per model.
"""


def _default_names(paths: list[str]) -> list[str]:
    """File stems, made unique with the parent folder (run1/probs, run2/probs) when they collide."""
    stems = [Path(p).stem for p in paths]
    names = [
        f"{Path(p).parent.name}/{Path(p).stem}" if stems.count(s) > 1 else s for p, s in zip(paths, stems)
    ]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def _parse_swapped(items: list[str], names: list[str]) -> dict[str, str]:
    """--swapped values: NAME=PROBS, or one per --pred in order with '-' for none."""
    named = {}
    positional = []
    for item in items:
        m = re.match(r"^(.+?)=(.+)$", item)
        if m and m.group(1) in names:
            named[m.group(1)] = m.group(2)
        else:
            positional.append(item)
    if positional:
        if named or len(positional) != len(names):
            raise ValueError(
                f"--swapped: give one file per --pred in the same order ({len(names)}; '-' for none) "
                f"or NAME=PROBS with NAME one of {names}; got {items}"
            )
        named = {n: p for n, p in zip(names, positional) if p != "-"}
    return named


def cmd_report(args: argparse.Namespace) -> int:
    """``arena report``: read the inputs, build the report, print where it went and the headline."""
    from arena_core.cli.main import _print_err, read_predictions
    from arena_core.data.competition import load_competition_file

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _print_err("arena report needs matplotlib: pip install matplotlib")
        return 2
    data = load_competition_file(args.data, verbose=True).frame
    names = args.name or _default_names(args.pred)
    if len(names) != len(args.pred):
        raise ValueError(
            f"--name given {len(names)} time(s) but --pred {len(args.pred)} time(s); give one name per --pred"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    preds = {n: read_predictions(p) for n, p in zip(names, args.pred)}
    swapped = {n: read_predictions(p) for n, p in _parse_swapped(args.swapped or [], names).items()}
    path = build_report(
        data,
        preds,
        args.out,
        swapped=swapped,
        include_length_baseline=not args.no_baseline,
        title=args.title,
        data_label=str(args.data),
        min_language_rows=args.min_language_rows,
    )
    summary = json.loads((path.parent / "summary.json").read_text(encoding="utf-8"))
    print(f"wrote {path} (+ summary.json, {', '.join(summary['plots'])})")
    for name, m in summary["models"].items():
        acc = "-" if m["accuracy"] is None else f"{m['accuracy']:.4f}"
        ll = "-" if m["log_loss"] is None else f"{m['log_loss']:.4f}"
        print(f"  {name}: n={m['n']} accuracy {acc} log loss {ll}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``arena report`` to the ``arena`` parser's subcommands."""
    p = subparsers.add_parser(
        "report",
        help="Markdown + PNG evaluation report (per language, length, calibration, position bias)",
        description=REPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data", required=True, metavar="LABELLED_FILE", help="labelled .parquet/.csv (with winner)"
    )
    p.add_argument(
        "--pred", required=True, action="append", metavar="PROBS", help="predictions file (repeatable)"
    )
    p.add_argument("--name", action="append", metavar="NAME", help="name for each --pred, in order")
    p.add_argument(
        "--swapped",
        action="append",
        metavar="PROBS",
        help="A/B-swapped predictions per --pred ('-' for none) or NAME=PROBS",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="folder for report.md, the PNGs and summary.json"
    )
    p.add_argument("--title", default="Preference model report", help="report title (default: %(default)s)")
    p.add_argument("--no-baseline", action="store_true", help="leave the length baseline out")
    p.add_argument(
        "--min-language-rows",
        type=int,
        default=10,
        metavar="K",
        help="pool languages with fewer labelled rows into 'other (n<K)' in the plot (default: %(default)s)",
    )
    p.set_defaults(func=cmd_report)
    return p
