"""Will the run fit? Time budgets (Kaggle's 4.5 h, ``--time-budget``) and run-time estimates.

``arena plan`` answers before a GPU is spent: :func:`plan_runtime` cuts the same token-budget
batches the engine will (same fill rule, same safety margin) and :func:`measure_throughput` times
a few of them on the scorer at hand.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arena_core.config import PredictConfig
from arena_core.encoding.batching import collate, padding_efficiency, plan_batches
from arena_core.encoding.encoder import EncodedPairs
from arena_core.inference.scoring import Scorer
from arena_core.inference.time_budget import SAFETY
from arena_core.inference.tta import MIN_FILL, TTA_MODES

__all__ = [
    "RuntimePlan",
    "detect_time_budget",
    "measure_throughput",
    "parse_duration",
    "plan_runtime",
    "probe_throughput",
    "project_run",
    "resample_lengths",
]

KAGGLE_TIME_BUDGET_S = 4.5 * 3600


def detect_time_budget(environ=None, kaggle_dir: str | os.PathLike = "/kaggle/working") -> float | None:
    """4.5 h (seconds) inside a Kaggle notebook/kernel run, else None (no limit)."""
    env = os.environ if environ is None else environ
    if env.get("KAGGLE_KERNEL_RUN_TYPE") or Path(kaggle_dir).exists():
        return KAGGLE_TIME_BUDGET_S
    return None


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([hms]?)")


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds from ``"4.5h"``, ``"30m"``, ``"90s"``, ``"1h30m"`` or ``"1200"``; ``"none"`` -> None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    s = text.strip().lower()
    if s in ("none", "off", "no", ""):
        return None
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if s[pos : m.start()].strip():
            break
        total += float(m.group(1)) * {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}[m.group(2)]
        pos = m.end()
    if pos == 0 or s[pos:].strip():
        raise ValueError(f"cannot read a duration from {text!r}; use e.g. 4.5h, 30m, 90s or 1200")
    return total


@dataclass
class RuntimePlan:
    """What a prediction run will cost, from token counts and a throughput."""

    rows: int
    batches: int
    computed_tokens: int  # per pass, padding included
    real_tokens: int
    padding_efficiency: float
    gpus: int
    tta: str
    seconds_per_pass: float
    seconds_min: float  # without TTA
    seconds_max: float  # with every row scored in both orders (swap, or uncertain with time to spare)
    basis: str

    def summary(self, budget_s: float | None = None) -> str:
        def hm(s: float) -> str:
            return f"{s / 3600:.2f} h ({s:.0f} s)"

        lines = [
            f"rows {self.rows}, {self.batches} batches per pass, {self.computed_tokens} computed tokens per pass "
            f"(padding efficiency {self.padding_efficiency:.3f})",
            f"assumed throughput: {self.basis}; {self.gpus} worker(s)",
            f"one pass (no TTA): {hm(self.seconds_min)}",
            f"both orders (swap TTA): {hm(self.seconds_max)}",
        ]
        if budget_s is not None:
            want = self.seconds_min if self.tta == "none" else self.seconds_max
            if want * SAFETY <= budget_s:
                verdict = f"fits the {hm(budget_s)} budget with tta={self.tta}"
            elif self.seconds_min * SAFETY <= budget_s:
                verdict = "TTA does not fully fit: the engine will swap-score only the rows time allows"
            else:
                verdict = "even one pass does not fit: the engine will shorten rows and fill the rest with the fallback"
            lines.append(f"budget {hm(budget_s)}: {verdict}")
        return "\n".join(lines)


def plan_runtime(
    lengths,
    *,
    rows_per_s: float | None = None,
    tokens_per_s: float | None = None,
    gpus: int = 1,
    tta: str = "swap",
    token_budget: int = 16384,
    max_rows: int = 64,
    pad_multiple: int = 1,
) -> RuntimePlan:
    """Estimate run time from encoded lengths and a per-worker throughput (rows/s or tokens/s).

    Rows/s is taken as measured on data like this; tokens/s (padded tokens) transfers better
    between data sets. ``gpus`` workers are assumed to scale linearly (one replica each).
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
    if (rows_per_s is None) == (tokens_per_s is None):
        raise ValueError("give exactly one of rows_per_s or tokens_per_s")
    rate = rows_per_s if rows_per_s is not None else tokens_per_s
    if not rate or rate <= 0 or gpus < 1:
        raise ValueError(f"throughput and gpus must be positive, got {rate} and {gpus}")
    lengths = np.asarray(lengths, dtype=np.int64)
    batches = (
        plan_batches(lengths, token_budget, max_rows, pad_multiple, min_fill=MIN_FILL) if len(lengths) else []
    )
    computed = int(sum(b.cost for b in batches))
    if rows_per_s is not None:
        per_pass = len(lengths) / (rows_per_s * gpus)
        basis = f"{rows_per_s:g} rows/s per worker"
    else:
        per_pass = computed / (tokens_per_s * gpus)
        basis = f"{tokens_per_s:g} tokens/s per worker"
    return RuntimePlan(
        rows=len(lengths),
        batches=len(batches),
        computed_tokens=computed,
        real_tokens=int(lengths.sum()),
        padding_efficiency=padding_efficiency(lengths, batches) if batches else 1.0,
        gpus=int(gpus),
        tta=tta,
        seconds_per_pass=per_pass,
        seconds_min=per_pass,
        seconds_max=per_pass * (1 if tta == "none" else 2),
        basis=basis,
    )


def resample_lengths(lengths, rows: int, seed: int = 0) -> np.ndarray:
    """``rows`` token lengths drawn (with replacement, seeded) from ``lengths``: the hidden test set
    at its real size, shaped like the sample at hand (the public test file holds a few rows only)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if rows < 1 or not len(lengths):
        raise ValueError(
            f"need rows >= 1 and some lengths to draw from, got rows={rows}, {len(lengths)} length(s)"
        )
    return np.random.default_rng(seed).choice(lengths, size=int(rows), replace=True)


def project_run(
    rows_done: int, rows_target: int, scoring_s: float, other_s: float, budget_s: float | None = None
) -> str:
    """A finished run's time scaled to ``rows_target`` rows: scoring grows with the rows, the rest
    (loading, start-up) does not. Says what it assumed, and how it compares with ``budget_s``."""
    if rows_done < 1 or scoring_s <= 0:
        return f"projection for {rows_target} rows: nothing was scored, no throughput to project from"
    rate = rows_done / scoring_s
    total = other_s + rows_target / rate
    text = (
        f"projection for {rows_target} rows: {total / 3600:.2f} h ({total:.0f} s) = {other_s:.0f} s loading and "
        f"start-up + {rows_target} rows at the {rate:.2f} rows/s measured in this run on {rows_done} row(s) "
        "(all passes and members included; a small run's warm-up makes this pessimistic)"
    )
    if budget_s is not None:
        ok = total * SAFETY <= budget_s
        text += f"; budget {budget_s / 3600:.2f} h: " + (
            "fits" if ok else "does NOT fit: the engine would drop TTA, shorten rows, then fall back"
        )
    return text


def measure_throughput(
    scorer: Scorer, encoded: EncodedPairs, cfg: PredictConfig | None = None, n_batches: int = 3
) -> dict[str, float]:
    """Time a few batches spread over the length range (after one warm-up) -> tokens/s, rows/s.

    rows/s is derived from tokens/s and this data's padded tokens per row, so it is not skewed by
    which batches happened to be timed.
    """
    cfg = cfg or PredictConfig()
    pad_multiple = 8 if scorer.device.type == "cuda" else 1
    batches = plan_batches(
        encoded.lengths, cfg.token_budget, cfg.max_rows_per_batch, pad_multiple, min_fill=MIN_FILL
    )
    if not batches:
        raise ValueError("nothing to measure: no rows")
    pick = sorted({int(round(x)) for x in np.linspace(0, len(batches) - 1, min(n_batches, len(batches)))})

    def run(b) -> float:
        seqs = [encoded.input_ids[i] for i in b.index]
        t = time.perf_counter()
        scorer(collate(seqs, scorer.pad_token_id, cfg.padding_side, b.padded_length))
        return time.perf_counter() - t

    run(batches[-1])  # warm-up on the smallest batch
    secs = sum(run(batches[i]) for i in pick)
    tokens = sum(batches[i].cost for i in pick)
    tokens_per_s = tokens / secs
    total = sum(b.cost for b in batches)
    return {
        "tokens_per_s": tokens_per_s,
        "rows_per_s": tokens_per_s * len(encoded.ids) / total,
        "batches_timed": len(pick),
        "seconds": secs,
    }


def probe_throughput(
    scorer: Scorer, encoded: EncodedPairs, cfg: PredictConfig, kind: str, gpus: int, n_batches: int = 3
) -> tuple[float, str]:
    """Time a few batches here for ``arena plan``: (tokens/s per worker, what that figure is).

    Says so when this machine is not the target (a CPU probe for a T4 plan is a lower bound at best).
    """
    print(f"probing throughput on {scorer.device} with {n_batches} batch(es) ...")
    probe = measure_throughput(scorer, encoded, cfg, n_batches=n_batches)
    print(f"measured {probe['tokens_per_s']:.0f} tokens/s ({probe['rows_per_s']:.2f} rows/s on this data)")
    here = scorer.device.type
    if here == "cuda":
        import torch

        elsewhere = kind not in torch.cuda.get_device_name(scorer.device).lower()
    else:
        elsewhere = kind != here
    if elsewhere:
        print(
            f"warning: measured on {scorer.device}, planning for {kind} x{gpus}: the estimate is only as good as "
            "that match; pass --rows-per-s measured on the target for a real answer"
        )
    basis = (
        f"{probe['tokens_per_s']:.0f} tokens/s per worker, measured by a {int(probe['batches_timed'])}-batch "
        f"probe on {scorer.device}"
    )
    return float(probe["tokens_per_s"]), basis
