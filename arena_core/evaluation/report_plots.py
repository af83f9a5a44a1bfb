"""The report's figures: grouped accuracy/log-loss bars, reliability curves, position bias.

Plots are drawn on ``matplotlib.figure.Figure`` objects (no pyplot), so building a report never
switches the caller's backend or leaks figures; matplotlib and numpy are imported inside the
functions. Every number drawn comes from the tables in :mod:`arena_core.evaluation.report_tables`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from arena_core.evaluation.report_tables import BASELINE_NAME, wilson_errors

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import pandas as pd

__all__ = ["calibration_plot", "colors_for", "grouped_bars", "position_plot"]

_BASELINE_COLOR = "#8c8c8c"


def colors_for(names: list[str]) -> dict[str, str]:
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


def grouped_bars(
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
            yerr=np.vstack(wilson_errors(acc, n)),
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


def calibration_plot(
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
            yerr=np.vstack(wilson_errors(obs, n)),
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


def position_plot(path: Path, bias: dict[str, dict[str, float]], colors: dict[str, str]) -> None:
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
