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
:mod:`~arena_core.inference.fallback` probabilities. The engine's parts: the passes as batches
(:mod:`~arena_core.inference.tta`), the queue and its worker threads
(:mod:`~arena_core.inference.workers`), the throughput projection
(:mod:`~arena_core.inference.time_budget`) and each row's path (:mod:`~arena_core.inference.result`);
here the coordinator that ties them to the clock, and :func:`predict_probs`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from arena_core.config import PredictConfig
from arena_core.encoding.encoder import EncodedPairs
from arena_core.inference.fallback import fallback_classes
from arena_core.inference.result import PATHS, PredictionResult, choose_rows
from arena_core.inference.scoring import Scorer
from arena_core.inference.time_budget import SHORTEN_STEPS, Projection, secs, shorter_length
from arena_core.inference.tta import TTA_MODES, WorkItem, first_passes, uncertain_first
from arena_core.inference.workers import WorkQueue, rows_in

__all__ = ["PredictionResult", "predict_probs"]

# The engine's log lines keep the logger name they had before the engine left ``predict.py``.
logger = logging.getLogger(__name__)


class _Engine:
    """The coordinator (the calling thread) of one run: it queues the passes, starts one worker per
    scorer (:class:`~arena_core.inference.workers.WorkQueue`), watches the clock, degrades when the
    projected finish overshoots the deadline, queues the uncertain-first swapped pass when the first
    is done, and stops at the deadline."""

    def __init__(self, scorers, enc, cfg, tta, deadline, reencode, progress):
        if not scorers:
            raise ValueError("predict_probs needs at least one scorer")
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
        self.scorers = list(scorers)
        self.enc, self.cfg, self.tta, self.deadline = enc, cfg, tta, deadline
        self.reencode, self.progress = reencode, progress
        self.pad_multiple = 8 if any(s.device.type == "cuda" for s in self.scorers) else 1
        self.work = WorkQueue(self.scorers, cfg.padding_side, deadline, self.note)
        # degradation so far: shortening steps taken, TTA limited, "cannot shorten" said
        self.level = 0
        self.tta_limited = self.shorten_exhausted_noted = False
        self.log: list[str] = []
        self.t0 = time.monotonic()
        self.bar = None

    def note(self, msg: str, live: bool = True) -> None:
        """Record ``msg`` in the result's log; ``live`` also shows it under the progress bar now
        (for events during the run; end-of-run summaries are printed by the caller from the log)."""
        self.log.append(msg)
        logger.info(msg)
        if live and self.bar is not None:
            self.bar.write(f"[predict] {msg}")

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        items = first_passes(self.enc, self.tta, self.cfg, self.pad_multiple)
        self.work.add(items)
        self._open_bar(items)
        if self._past_deadline():
            self.note("deadline already passed before the first batch: every row uses the fallback")
            self.work.skip_all("deadline")
        threads = self.work.start()
        try:
            self._coordinate()
        finally:
            self.work.finish(threads)
            self._bar_update()
            if self.bar is not None:
                self.bar.close()
        if self.work.error is not None:
            raise self.work.error
        skipped = self.work.skipped
        if len(self.enc.ids) and skipped:
            self.note("not run (time): " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))

    def _coordinate(self) -> None:
        """Watch the workers until the work is done, failed or out of time, degrading on the way."""
        second_pass_due = self.tta == "uncertain"
        while True:
            idle, error = self.work.wait(timeout=0.2)
            self._bar_update()
            if error is not None:
                return
            if self._past_deadline():
                left = self.work.stop("deadline")
                if left:
                    self.note(f"deadline reached: {left} queued row-pass(es) not started")
                return
            if idle:
                if second_pass_due:
                    second_pass_due = False
                    if self._queue_uncertain_pass():
                        continue
                return
            self._maybe_degrade()
            if self.tta_limited or self.level:
                self._set_total()

    def _queue_uncertain_pass(self) -> bool:
        """``tta="uncertain"``, first pass done: queue the swapped pass, least confident rows first
        (not once rows were shortened: time is short). False when there is nothing to queue."""
        if self.level:
            return False
        extra = uncertain_first(self.enc, self.work.results["fwd"], self.cfg, self.pad_multiple)
        if not extra:
            return False
        self.work.add(extra)
        self._set_total()
        return True

    # ------------------------------------------------------------------ degradation
    def _maybe_degrade(self) -> None:
        """Project the queued work at the measured rate; when it overshoots the deadline, limit the
        swapped pass to the time left, then drop it, then shorten the remaining rows."""
        if self.deadline is None:
            return
        rate, fwd_cost, swap_cost = self.work.measure()
        if rate is None:
            return
        proj = Projection(fwd_cost, swap_cost, rate, self.deadline - time.monotonic())
        if proj.both_orders_overshoot and not self.tta_limited:
            self.tta_limited = True
            self.note(
                f"projected {secs(proj.fwd_s + proj.swap_s)} of work > {secs(proj.left)} left: swapped (TTA) "
                "batches now run only while time remains"
            )
        if proj.single_pass_overshoots:
            dropped = self.work.drop_swapped()
            if dropped:
                self.note(
                    f"dropped TTA for {dropped} row(s) not yet scored swapped (single pass needs {secs(proj.fwd_s)})"
                )
            self._shorten(proj)

    def _shorten(self, proj: Projection) -> None:
        """Re-encode the rows still queued at the next shorter ``max_length`` (one step per call)."""
        new_len = None if self.reencode is None else shorter_length(self.enc.max_length, self.level)
        if new_len is None:
            if not self.shorten_exhausted_noted:
                self.shorten_exhausted_noted = True
                why = "no re-encoder given" if self.reencode is None else "already at the shortest length"
                self.note(
                    f"projection still overshoots ({secs(proj.fwd_s)} > {secs(proj.left)}, {why}): rows not "
                    "reached by the deadline get the fallback"
                )
            return
        self.level += 1
        keys, old_cost = self.work.shown_order_queued()
        if not keys:
            return
        try:
            short = self.reencode(keys, new_len)
        except ValueError as exc:
            self.level = len(SHORTEN_STEPS)
            self.note(f"cannot re-encode at max_length {new_len}: {exc}")
            return
        items, n_kept = self.work.replace_shown(short, self.cfg, self.pad_multiple)
        new_cost = sum(it.cost for it in items)
        self.note(
            f"projected {secs(proj.fwd_s)} for {len(keys)} remaining row(s) > {secs(proj.left)} left: re-encoded "
            f"{n_kept} at max_length {new_len} ({old_cost} -> {new_cost} tokens)"
        )

    # ------------------------------------------------------------------ progress bar
    def _open_bar(self, items: list[WorkItem]) -> None:
        from arena_core.data.progress import progress_bar

        self.bar = progress_bar(wanted=self.progress, total=rows_in(items), desc="predict", unit="row")

    def _bar_update(self) -> None:
        if self.bar is None:
            return
        done_rows = self.work.done_rows
        self.bar.update(done_rows - self.bar.n)
        el = max(time.monotonic() - self.t0, 1e-9)
        post = {"rows/s": f"{done_rows / el:.1f}", "tok/s": f"{self.work.done_tokens / el:.0f}"}
        if self.deadline is not None:
            post["left"] = f"{max(0.0, self.deadline - time.monotonic()):.0f}s"
        self.bar.set_postfix(post, refresh=False)

    def _set_total(self) -> None:
        if self.bar is not None:
            pending = self.work.queued_rows()
            self.bar.total = self.work.done_rows + pending + 0  # in-flight rows are counted when done
            self.bar.refresh()


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
    k = (
        engine.work.k
        or next((s.num_labels for s in engine.scorers if s.num_labels), None)
        or fallback_classes(fallback_probs)
    )
    probs, path, first, swapped = choose_rows(keys, engine.work.results, k, cfg.ensemble_mode, fallback_probs)
    coverage = {p: int((path == p).sum()) for p in PATHS}
    elapsed = time.monotonic() - start
    stats = _stats(engine, len(keys), elapsed, splits0, tta)
    engine.note(
        "coverage: "
        + ", ".join(f"{p} {coverage[p]}" for p in PATHS)
        + f" ({engine.work.batches} batches, {stats['rows_per_s']:.1f} row-passes/s, "
        f"padding efficiency {stats['padding_efficiency']:.3f}, {elapsed:.1f}s)",
        live=False,
    )
    return PredictionResult(encoded.ids, probs, path, coverage, first, swapped, stats, engine.log)


def _stats(engine: _Engine, n: int, elapsed: float, splits0: int, tta: str) -> dict:
    """Throughput and padding of the run, for the result's ``stats`` and the coverage line."""
    work = engine.work
    return {
        "rows": n,
        "elapsed_s": elapsed,
        "batches": work.batches,
        "rows_scored": work.done_rows,
        "rows_per_s": work.done_rows / elapsed if elapsed > 0 else float("nan"),
        "tokens_per_s": work.done_tokens / elapsed if elapsed > 0 else float("nan"),
        "padding_efficiency": work.done_real / work.done_tokens if work.done_tokens else float("nan"),
        "oom_splits": sum(s.oom_splits for s in engine.scorers) - splits0,
        "workers": len(engine.scorers),
        "short_lengths": dict(work.short_rows),
        "tta": tta,
    }
