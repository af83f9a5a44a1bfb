"""The shared queue and its worker threads: one per model replica, each taking the next batch that fits.

Every replica (one per GPU, or the CPU) pulls from ONE queue, longest batches first, so no replica
idles while another has work. A worker skips a batch it cannot finish before the deadline (at its
measured :class:`~arena_core.inference.time_budget.Throughput`), gives the rows of a batch that runs
out of memory even as a single row to the fallback, and stops the run on any other error. Scores are
stored by row id, never by position. One lock (``cv``) guards the queue, the results and every
counter; the coordinator in :mod:`~arena_core.inference.engine` changes the queue only through the
methods here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

import numpy as np

from arena_core.config import PredictConfig
from arena_core.encoding.batching import collate
from arena_core.encoding.encoder import EncodedPairs
from arena_core.inference.combine import log_softmax, swap_columns
from arena_core.inference.scoring import is_oom
from arena_core.inference.time_budget import Throughput
from arena_core.inference.tta import WorkItem, work_items

__all__ = ["WorkQueue", "rows_in"]


def rows_in(items: Iterable[WorkItem]) -> int:
    return sum(len(it.keys) for it in items)


class WorkQueue:
    """Batches waiting to be scored, the workers scoring them, and what they scored."""

    def __init__(self, scorers, padding_side: str, deadline: float | None, note: Callable[[str], None]):
        self.scorers = list(scorers)
        self.padding_side, self.deadline, self.note = padding_side, deadline, note
        self.cv = threading.Condition()
        self.queue: deque[WorkItem] = deque()
        self.in_flight = 0
        self.closed = self.stopped = False
        self.error: BaseException | None = None
        # pass kind -> row id -> log-probabilities in the original columns (short: with its max_length)
        self.results: dict[str, dict] = {"fwd": {}, "swap": {}, "short": {}}
        self.k: int | None = None
        self.throughput = Throughput(len(self.scorers))
        self.done_rows = self.done_tokens = self.done_real = self.batches = 0
        self.skipped: Counter = Counter()  # row-passes not run, by why
        self.short_rows: Counter = Counter()  # rows scored shortened, by max_length

    # ------------------------------------------------------------------ the workers
    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._work, args=(w,), daemon=True) for w in range(len(self.scorers))
        ]
        for t in threads:
            t.start()
        return threads

    def finish(self, threads: list[threading.Thread]) -> None:
        """Let the workers run out of work (or stop, see :meth:`stop`) and wait for them."""
        with self.cv:
            self.closed = True
            self.cv.notify_all()
        for t in threads:
            t.join()

    def _next(self, w: int) -> WorkItem | None:
        """The next queued batch worker ``w`` can finish in time (the others are skipped), or None
        when the work is over (an error, the deadline, or the queue closed and empty)."""
        with self.cv:
            while True:
                if self.error is not None or self.stopped:
                    return None
                while self.queue:
                    item = self.queue.popleft()
                    if self.throughput.fits(w, item.cost, self.deadline):
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
                batch = collate(item.seqs, scorer.pad_token_id, self.padding_side, item.padded)
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

    def _done(self, w: int, item: WorkItem, logits, seconds: float) -> None:
        with self.cv:
            self.in_flight -= 1
            self.throughput.record(w, item.cost, seconds)
            self.batches += 1
            if logits is not None:
                self._store(item, logits)
            self.cv.notify_all()

    def _store(self, item: WorkItem, logits) -> None:
        """Each row's log-probabilities in the original columns, by id (called under ``cv``)."""
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

    # ------------------------------------------------------------------ for the coordinator
    def _pending(self, swap: bool) -> list[WorkItem]:
        return [it for it in self.queue if (it.kind == "swap") == swap]

    def add(self, items: list[WorkItem]) -> None:
        with self.cv:
            self.queue.extend(items)
            self.cv.notify_all()

    def wait(self, timeout: float) -> tuple[bool, BaseException | None]:
        """Wait up to ``timeout`` s for a change; then whether all work is done, and any worker error."""
        with self.cv:
            self.cv.wait(timeout=timeout)
            return not self.queue and self.in_flight == 0, self.error

    def queued_rows(self) -> int:
        with self.cv:
            return rows_in(self.queue)

    def skip_all(self, why: str) -> None:
        """Skip everything queued, counted under ``why`` (before the workers start)."""
        with self.cv:
            self.skipped[why] += rows_in(self.queue)
            self.queue.clear()

    def stop(self, why: str) -> int:
        """Start no more batches (the ones running finish); the queued row-passes left are counted
        as skipped under ``why`` and returned."""
        with self.cv:
            left = rows_in(self.queue)
            self.stopped = True
            self.cv.notify_all()
            if left:
                self.skipped[why] += left
        return left

    def measure(self) -> tuple[float | None, int, int]:
        """The steady rate (tokens/s, all workers) and the queued tokens of the shown and swapped orders."""
        with self.cv:
            rate = self.throughput.rate(steady_only=True)
            if rate is None:
                return None, 0, 0
            return (
                rate,
                sum(it.cost for it in self._pending(False)),
                sum(it.cost for it in self._pending(True)),
            )

    def drop_swapped(self) -> int:
        """Remove the queued swapped batches; returns their rows."""
        with self.cv:
            dropped = self._pending(True)
            if dropped:
                self.queue = deque(self._pending(False))
                self.skipped["swap"] += rows_in(dropped)
        return rows_in(dropped)

    def shown_order_queued(self) -> tuple[list, int]:
        """The row ids and tokens of the shown-order batches still queued."""
        with self.cv:
            return [k for it in self._pending(False) for k in it.keys], sum(
                it.cost for it in self._pending(False)
            )

    def replace_shown(
        self, short: EncodedPairs, cfg: PredictConfig, pad_multiple: int
    ) -> tuple[list[WorkItem], int]:
        """Queue ``short``'s rows that are still queued (workers may have taken some while it was
        encoded) in place of their shown-order batches, ahead of the swapped ones; returns the new
        batches and how many rows they hold."""
        with self.cv:
            still = {k for it in self._pending(False) for k in it.keys}
            keep = [i for i, k in enumerate(short.ids.tolist()) if k in still]
            items = work_items(short.subset(np.asarray(keep, dtype=np.int64)), "short", cfg, pad_multiple)
            self.queue = deque(items + self._pending(True))
            self.cv.notify_all()
        return items, len(keep)
