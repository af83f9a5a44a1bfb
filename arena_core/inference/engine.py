"""The inference engine: token-budget batches, one worker per model replica, TTA, a time contract.

Why our own loop rather than a ``DataLoader`` + ``Trainer.predict``: tokenization happens once, up
front (``EncodedPairs``); rows are sorted by length and cut by a token budget so padding stays
under a few percent; every replica (one per GPU) pulls from ONE shared queue, longest batches
first, so no GPU idles while another has work. Results are keyed by row id, never by position.

The time budget is a contract. The engine measures its own throughput (tokens/s per worker),
projects the finish and, when the projection overshoots the deadline, degrades in this order:

1. TTA: swapped batches run only while time remains; when even the single pass does not fit,
   swapped batches not yet started are dropped;
2. the remaining rows are re-encoded shorter (3/4, then 1/2 of the original ``max_length``, same
   template, via a new ``PairEncoder``);
3. a batch that cannot finish before the deadline is not started; at the deadline the engine
   stops and every row it did not reach gets the fallback probabilities (length heuristic).

``PredictionResult.coverage`` counts the rows each path produced and ``.log`` says what happened.
Batches are scored by :class:`~arena_core.inference.scoring.Scorer`; rows no batch reached get
:mod:`~arena_core.inference.fallback` probabilities.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from arena_core.config import PredictConfig
from arena_core.encoding.batching import collate, plan_batches
from arena_core.encoding.encoder import EncodedPairs
from arena_core.inference.combine import combine, log_softmax, swap_columns
from arena_core.inference.fallback import fallback_array, fallback_classes
from arena_core.inference.scoring import Scorer, is_oom

__all__ = ["PredictionResult", "predict_probs"]

# The engine's log lines keep the logger name they had before the engine left ``predict.py``.
logger = logging.getLogger("arena_core.inference.api")

TTA_MODES = ("none", "swap", "uncertain")
SHORTEN_STEPS = (0.75, 0.5)  # fractions of the original max_length, tried in order
SAFETY = 1.15  # projections are inflated by this factor before comparing with the time left
PATHS = ("model+swap", "model", "model@short", "fallback")
MIN_FILL = 0.9  # every row fills at least this share of its batch's padded length (see batching.plan_batches)


# ----------------------------------------------------------------------------- result


@dataclass
class PredictionResult:
    """Probabilities for every row, in the encoded (frame) order, and how each was produced."""

    ids: np.ndarray
    probs: np.ndarray  # (n, k): columns p_a, p_b[, p_tie]
    path: np.ndarray  # per row, one of PATHS
    coverage: dict[str, int]
    probs_first: np.ndarray  # full-length pass in the shown order; NaN where not scored
    probs_swapped: np.ndarray  # swapped pass mapped back to original columns; NaN where not scored
    stats: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    def frame(self) -> pd.DataFrame:
        """``id, p_a, p_b[, p_tie]`` with the ids' own type (int64, or str values in an object column)."""
        cols = {
            "id": pd.Series(self.ids, dtype=self.ids.dtype),
            "p_a": self.probs[:, 0],
            "p_b": self.probs[:, 1],
        }
        if self.n_classes == 3:
            cols["p_tie"] = self.probs[:, 2]
        return pd.DataFrame(cols)

    def analysis_frame(self) -> pd.DataFrame:
        """``frame()`` plus each order's probabilities (``p_a_ab``... ``p_b_ba``, swapped pass mapped
        back to the original columns, NaN where that order was not scored) for position-bias analysis."""
        df = self.frame()
        names = ("p_a", "p_b", "p_tie")[: self.n_classes]
        for suffix, arr in (("ab", self.probs_first), ("ba", self.probs_swapped)):
            for j, name in enumerate(names):
                df[f"{name}_{suffix}"] = arr[:, j]
        return df


@dataclass
class _Item:
    """One batch of work: which rows, which token sequences, at which padded length."""

    kind: str  # "fwd" (full length), "swap" (full length, B shown first) or "short"
    keys: list  # row ids as Python scalars
    seqs: list
    padded: int
    max_length: int

    @property
    def cost(self) -> int:
        return len(self.seqs) * self.padded

    @property
    def real_tokens(self) -> int:
        return int(sum(len(s) for s in self.seqs))


def _items(
    enc: EncodedPairs, kind: str, cfg: PredictConfig, pad_multiple: int, swapped: bool = False
) -> list[_Item]:
    if len(enc.ids) == 0:
        return []
    seqs = enc.input_ids_swapped if swapped else enc.input_ids
    keys = enc.ids.tolist()
    out = []
    for b in plan_batches(
        enc.lengths, cfg.token_budget, cfg.max_rows_per_batch, pad_multiple, min_fill=MIN_FILL
    ):
        out.append(
            _Item(
                kind, [keys[i] for i in b.index], [seqs[i] for i in b.index], b.padded_length, enc.max_length
            )
        )
    return out


# ----------------------------------------------------------------------------- engine


def _secs(x: float) -> str:
    return f"{x:.0f}s" if abs(x) >= 10 else f"{x:.1f}s"


class _Engine:
    """Shared queue + worker threads + a coordinator (the calling thread) that watches the clock."""

    def __init__(self, scorers, enc, cfg, tta, deadline, reencode, progress):
        if not scorers:
            raise ValueError("predict_probs needs at least one scorer")
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
        self.scorers = list(scorers)
        self.enc, self.cfg, self.tta, self.deadline = enc, cfg, tta, deadline
        self.reencode, self.progress = reencode, progress
        self.pad_multiple = 8 if any(s.device.type == "cuda" for s in self.scorers) else 1
        self.cv = threading.Condition()
        self.queue: deque[_Item] = deque()
        self.in_flight = 0
        self.closed = self.stopped = False
        self.error: BaseException | None = None
        self.results: dict[str, dict] = {"fwd": {}, "swap": {}, "short": {}}
        self.k: int | None = None
        self.timings: list[list[tuple[int, float]]] = [[] for _ in self.scorers]
        self.done_rows = self.done_tokens = self.done_real = self.batches = 0
        self.skipped: Counter = Counter()
        self.short_rows: Counter = Counter()
        self.level = 0
        self.tta_limited = self.shorten_exhausted_noted = False
        self.log: list[str] = []
        self.t0 = time.monotonic()
        self.bar = None

    # ------------------------------------------------------------------ bookkeeping
    def note(self, msg: str, live: bool = True) -> None:
        """Record ``msg`` in the result's log; ``live`` also shows it under the progress bar now
        (for events during the run; end-of-run summaries are printed by the caller from the log)."""
        self.log.append(msg)
        logger.info(msg)
        if live and self.bar is not None:
            self.bar.write(f"[predict] {msg}")

    def _worker_rate(self, w: int) -> float | None:
        t = self.timings[w]
        if not t:
            return None
        steady = t[1:] if len(t) > 1 else t  # the first batch carries warm-up cost
        secs = sum(s for _, s in steady)
        return sum(c for c, _ in steady) / secs if secs > 0 else None

    def _rate(self, w: int | None = None, steady_only: bool = False) -> float | None:
        """Tokens/s of worker ``w`` (or of all workers together); None before any measurement."""
        rates = {}
        for i in range(len(self.scorers)):
            if steady_only and len(self.timings[i]) < 2:
                continue
            r = self._worker_rate(i)
            if r is not None:
                rates[i] = r
        if not rates:
            return None
        mean = sum(rates.values()) / len(rates)
        if w is not None:
            return rates.get(w, mean)
        return mean * len(self.scorers)

    def _fits(self, w: int, item: _Item) -> bool:
        if self.deadline is None:
            return True
        left = self.deadline - time.monotonic()
        if left <= 0:
            return False
        rate = self._rate(w)
        return rate is None or item.cost / rate * SAFETY <= left

    # ------------------------------------------------------------------ workers
    def _next(self, w: int) -> _Item | None:
        with self.cv:
            while True:
                if self.error is not None or self.stopped:
                    return None
                while self.queue:
                    item = self.queue.popleft()
                    if self._fits(w, item):
                        self.in_flight += 1
                        return item
                    self.skipped[item.kind] += len(item.keys)
                if self.closed:
                    return None
                self.cv.wait()

    def _work(self, w: int) -> None:
        scorer = self.scorers[w]
        while (item := self._next(w)) is not None:
            t = time.monotonic()
            logits = None
            try:
                batch = collate(item.seqs, scorer.pad_token_id, self.cfg.padding_side, item.padded)
                logits = scorer(batch)
            except BaseException as exc:  # noqa: BLE001
                if not is_oom(exc):
                    with self.cv:
                        self.error = self.error or exc
                        self.in_flight -= 1
                        self.cv.notify_all()
                    return
                self.note(
                    f"out of memory on a single row of length {max(len(s) for s in item.seqs)}; its row(s) use the fallback"
                )
            self._done(w, item, logits, time.monotonic() - t)

    def _done(self, w: int, item: _Item, logits, secs: float) -> None:
        with self.cv:
            self.in_flight -= 1
            self.timings[w].append((item.cost, secs))
            self.batches += 1
            if logits is not None:
                logp = log_softmax(logits)
                if item.kind == "swap":
                    logp = swap_columns(logp)
                self.k = logp.shape[1]
                store = self.results[item.kind]
                for key, row in zip(item.keys, logp):
                    store[key] = (row, item.max_length) if item.kind == "short" else row
                if item.kind == "short":
                    self.short_rows[item.max_length] += len(item.keys)
                self.done_rows += len(item.keys)
                self.done_tokens += item.cost
                self.done_real += item.real_tokens
            self.cv.notify_all()

    # ------------------------------------------------------------------ coordinator
    def _pending(self, swap: bool) -> list[_Item]:
        return [it for it in self.queue if (it.kind == "swap") == swap]

    def _maybe_degrade(self) -> None:
        if self.deadline is None:
            return
        with self.cv:
            rate = self._rate(steady_only=True)
            if rate is None:
                return
            fwd_cost = sum(it.cost for it in self._pending(False))
            swap_cost = sum(it.cost for it in self._pending(True))
        left = self.deadline - time.monotonic()
        t_fwd, t_swap = fwd_cost / rate * SAFETY, swap_cost / rate * SAFETY
        if swap_cost and t_fwd + t_swap > left and not self.tta_limited:
            self.tta_limited = True
            self.note(
                f"projected {_secs(t_fwd + t_swap)} of work > {_secs(left)} left: swapped (TTA) batches "
                "now run only while time remains"
            )
        if fwd_cost and t_fwd > left:
            with self.cv:
                dropped = self._pending(True)
                if dropped:
                    self.queue = deque(self._pending(False))
                    self.skipped["swap"] += sum(len(it.keys) for it in dropped)
            if dropped:
                n = sum(len(it.keys) for it in dropped)
                self.note(
                    f"dropped TTA for {n} row(s) not yet scored swapped (single pass needs {_secs(t_fwd)})"
                )
            self._shorten(t_fwd, left)

    def _shorten(self, t_fwd: float, left: float) -> None:
        if self.reencode is None or self.level >= len(SHORTEN_STEPS):
            if not self.shorten_exhausted_noted:
                self.shorten_exhausted_noted = True
                why = "no re-encoder given" if self.reencode is None else "already at the shortest length"
                self.note(
                    f"projection still overshoots ({_secs(t_fwd)} > {_secs(left)}, {why}): rows not reached by the deadline get the fallback"
                )
            return
        new_len = int(self.enc.max_length * SHORTEN_STEPS[self.level])
        self.level += 1
        with self.cv:
            keys = [k for it in self._pending(False) for k in it.keys]
            old_cost = sum(it.cost for it in self._pending(False))
        if not keys:
            return
        try:
            short = self.reencode(keys, new_len)
        except ValueError as exc:
            self.level = len(SHORTEN_STEPS)
            self.note(f"cannot re-encode at max_length {new_len}: {exc}")
            return
        with self.cv:
            still = {k for it in self._pending(False) for k in it.keys}
            keep = [i for i, k in enumerate(short.ids.tolist()) if k in still]
            items = _items(
                short.subset(np.asarray(keep, dtype=np.int64)), "short", self.cfg, self.pad_multiple
            )
            self.queue = deque(items + self._pending(True))
            self.cv.notify_all()
        new_cost = sum(it.cost for it in items)
        self.note(
            f"projected {_secs(t_fwd)} for {len(keys)} remaining row(s) > {_secs(left)} left: re-encoded "
            f"{len(keep)} at max_length {new_len} ({old_cost} -> {new_cost} tokens)"
        )

    def _uncertain_items(self) -> list[_Item]:
        """Swapped batches for the rows scored at full length, most uncertain (max prob lowest) first."""
        done = self.results["fwd"]
        keys = [k for k in self.enc.ids.tolist() if k in done]
        if not keys:
            return []
        maxp = np.exp(np.stack([self.results["fwd"][k] for k in keys])).max(axis=1)
        order = np.argsort(maxp, kind="stable")
        pos = {k: i for i, k in enumerate(self.enc.ids.tolist())}
        chunk = max(1, 4 * self.cfg.max_rows_per_batch)
        items = []
        for s in range(0, len(order), chunk):
            idx = np.asarray([pos[keys[j]] for j in order[s : s + chunk]], dtype=np.int64)
            items += _items(self.enc.subset(idx), "swap", self.cfg, self.pad_multiple, swapped=True)
        return items

    def _bar_update(self) -> None:
        if self.bar is None:
            return
        self.bar.update(self.done_rows - self.bar.n)
        el = max(time.monotonic() - self.t0, 1e-9)
        post = {"rows/s": f"{self.done_rows / el:.1f}", "tok/s": f"{self.done_tokens / el:.0f}"}
        if self.deadline is not None:
            post["left"] = f"{max(0.0, self.deadline - time.monotonic()):.0f}s"
        self.bar.set_postfix(post, refresh=False)

    def _set_total(self) -> None:
        if self.bar is not None:
            with self.cv:
                pending = sum(len(it.keys) for it in self.queue)
            self.bar.total = self.done_rows + pending + 0  # in-flight rows are counted when done
            self.bar.refresh()

    def run(self) -> None:
        n = len(self.enc.ids)
        items = _items(self.enc, "fwd", self.cfg, self.pad_multiple)
        if self.tta == "swap":
            items += _items(self.enc, "swap", self.cfg, self.pad_multiple, swapped=True)
        self.queue.extend(items)
        phase_b = self.tta != "uncertain"
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=sum(len(it.keys) for it in items), desc="predict", unit="row", mininterval=1.0
            )
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.note("deadline already passed before the first batch: every row uses the fallback")
            self.skipped["deadline"] += sum(len(it.keys) for it in self.queue)
            self.queue.clear()
        threads = [
            threading.Thread(target=self._work, args=(w,), daemon=True) for w in range(len(self.scorers))
        ]
        for t in threads:
            t.start()
        try:
            while True:
                with self.cv:
                    self.cv.wait(timeout=0.2)
                    idle = not self.queue and self.in_flight == 0
                    error = self.error
                self._bar_update()
                if error is not None:
                    break
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    with self.cv:
                        left = sum(len(it.keys) for it in self.queue)
                        self.stopped = True
                        self.cv.notify_all()
                    if left:
                        self.skipped["deadline"] += left
                        self.note(f"deadline reached: {left} queued row-pass(es) not started")
                    break
                if idle:
                    if not phase_b:
                        phase_b = True
                        extra = [] if self.level else self._uncertain_items()
                        if extra:
                            with self.cv:
                                self.queue.extend(extra)
                                self.cv.notify_all()
                            self._set_total()
                            continue
                    break
                self._maybe_degrade()
                if self.tta_limited or self.level:
                    self._set_total()
        finally:
            with self.cv:
                self.closed = True
                self.cv.notify_all()
            for t in threads:
                t.join()
            self._bar_update()
            if self.bar is not None:
                self.bar.close()
        if self.error is not None:
            raise self.error
        if n and self.skipped:
            self.note("not run (time): " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))


def predict_probs(
    scorers: Sequence[Scorer],
    encoded: EncodedPairs,
    cfg: PredictConfig | None = None,
    *,
    tta: str | None = None,
    deadline: float | None = None,
    fallback_probs=None,
    progress: bool = True,
    reencode: Callable[[list, int], EncodedPairs] | None = None,
) -> PredictionResult:
    """Score every row of ``encoded`` with one worker thread per scorer, sharing one queue.

    ``tta``: ``none`` | ``swap`` | ``uncertain`` (default ``cfg.tta``); passes are averaged per id as
    ``cfg.ensemble_mode`` says. ``deadline``: ``time.monotonic()`` value to finish by (default
    ``now + cfg.time_budget_s`` when that is set). ``fallback_probs``: a frame ``id, p_a, p_b[,
    p_tie]`` (e.g. ``length.length_baseline``) or an array in encoded order; uniform when None.
    ``reencode(ids, max_length) -> EncodedPairs`` lets the engine shorten rows when time is short
    (see :func:`make_reencoder`); without it that degradation step is skipped.
    """
    cfg = cfg or PredictConfig()
    tta = tta or cfg.tta
    if deadline is None and cfg.time_budget_s is not None:
        deadline = time.monotonic() + float(cfg.time_budget_s)
    start = time.monotonic()
    engine = _Engine(scorers, encoded, cfg, tta, deadline, reencode, progress)
    splits0 = sum(s.oom_splits for s in engine.scorers)
    engine.run()
    keys = encoded.ids.tolist()
    n = len(keys)
    k = (
        engine.k
        or next((s.num_labels for s in engine.scorers if s.num_labels), None)
        or fallback_classes(fallback_probs)
    )
    nan = np.full((n, k), np.nan)
    first, swapped, short = nan.copy(), nan.copy(), nan.copy()
    res = engine.results
    for i, key in enumerate(keys):
        if key in res["fwd"]:
            first[i] = np.exp(res["fwd"][key])
        if key in res["swap"]:
            swapped[i] = np.exp(res["swap"][key])
        if key in res["short"]:
            short[i] = np.exp(res["short"][key][0])
    has_first, has_swap, has_short = (np.isfinite(a).all(axis=1) for a in (first, swapped, short))
    probs = combine([first, swapped], None, cfg.ensemble_mode, mask=[has_first, has_swap]) if n else nan
    path = np.full(n, "fallback", dtype=object)
    path[has_first | has_swap] = "model"
    path[has_first & has_swap] = "model+swap"
    use_short = ~(has_first | has_swap) & has_short
    probs[use_short] = short[use_short]
    path[use_short] = "model@short"
    fb = path == "fallback"
    if fb.any():
        probs[fb] = fallback_array(fallback_probs, keys, k, rows=np.flatnonzero(fb))
    coverage = {p: int((path == p).sum()) for p in PATHS}
    elapsed = time.monotonic() - start
    stats = {
        "rows": n,
        "elapsed_s": elapsed,
        "batches": engine.batches,
        "rows_scored": engine.done_rows,
        "rows_per_s": engine.done_rows / elapsed if elapsed > 0 else float("nan"),
        "tokens_per_s": engine.done_tokens / elapsed if elapsed > 0 else float("nan"),
        "padding_efficiency": engine.done_real / engine.done_tokens if engine.done_tokens else float("nan"),
        "oom_splits": sum(s.oom_splits for s in engine.scorers) - splits0,
        "workers": len(engine.scorers),
        "short_lengths": dict(engine.short_rows),
        "tta": tta,
    }
    engine.note(
        "coverage: "
        + ", ".join(f"{p} {coverage[p]}" for p in PATHS)
        + f" ({engine.batches} batches, {stats['rows_per_s']:.1f} row-passes/s, "
        f"padding efficiency {stats['padding_efficiency']:.3f}, {elapsed:.1f}s)",
        live=False,
    )
    return PredictionResult(encoded.ids, probs, path, coverage, first, swapped, stats, engine.log)
