"""The time contract's arithmetic: measured throughput, the projected finish, how much shorter to go.

The engine measures its own speed (padded tokens per second, per worker; a worker's first batch
carries warm-up cost and is left out once there are others), projects the work still queued with a
:data:`SAFETY` margin (:class:`Projection`) and, when that overshoots the deadline, gives up in
order: swapped (TTA) batches run only while time remains, then the swapped batches not yet started
are dropped, then the remaining rows are re-encoded at :data:`SHORTEN_STEPS` of the original
``max_length``. A batch is started only when it :meth:`~Throughput.fits` before the deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["SAFETY", "SHORTEN_STEPS", "Projection", "Throughput", "secs", "shorter_length"]

SHORTEN_STEPS = (0.75, 0.5)  # fractions of the original max_length, tried in order
SAFETY = 1.15  # projections are inflated by this factor before comparing with the time left


def secs(x: float) -> str:
    """Seconds for a log line: ``42s``, ``3.5s``."""
    return f"{x:.0f}s" if abs(x) >= 10 else f"{x:.1f}s"


class Throughput:
    """Tokens/s of each worker, from the (cost, seconds) of the batches it finished.

    Not thread-safe by itself: the engine calls it under its queue lock.
    """

    def __init__(self, workers: int):
        self.timings: list[list[tuple[int, float]]] = [[] for _ in range(workers)]

    def record(self, w: int, cost: int, seconds: float) -> None:
        self.timings[w].append((cost, seconds))

    def worker_rate(self, w: int) -> float | None:
        t = self.timings[w]
        if not t:
            return None
        steady = t[1:] if len(t) > 1 else t  # the first batch carries warm-up cost
        total = sum(s for _, s in steady)
        return sum(c for c, _ in steady) / total if total > 0 else None

    def rate(self, w: int | None = None, steady_only: bool = False) -> float | None:
        """Tokens/s of worker ``w`` (or of all workers together); None before any measurement.

        A worker not yet measured counts at the mean of those that are. ``steady_only`` uses only
        workers past their warm-up batch.
        """
        rates = {}
        for i in range(len(self.timings)):
            if steady_only and len(self.timings[i]) < 2:
                continue
            r = self.worker_rate(i)
            if r is not None:
                rates[i] = r
        if not rates:
            return None
        mean = sum(rates.values()) / len(rates)
        if w is not None:
            return rates.get(w, mean)
        return mean * len(self.timings)

    def fits(self, w: int, cost: int, deadline: float | None) -> bool:
        """Whether worker ``w`` can finish a batch of ``cost`` tokens before ``deadline`` (with SAFETY)."""
        if deadline is None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        rate = self.rate(w)
        return rate is None or cost / rate * SAFETY <= left


@dataclass(frozen=True)
class Projection:
    """The queued work at the measured rate, against the seconds left before the deadline."""

    fwd_cost: int  # padded tokens queued for the shown order (full length or shortened)
    swap_cost: int  # padded tokens queued for the swapped order
    rate: float  # tokens/s of all workers together
    left: float  # seconds to the deadline

    @property
    def fwd_s(self) -> float:
        return self.fwd_cost / self.rate * SAFETY

    @property
    def swap_s(self) -> float:
        return self.swap_cost / self.rate * SAFETY

    @property
    def both_orders_overshoot(self) -> bool:
        """Both passes do not fit: swapped batches should run only while time remains."""
        return bool(self.swap_cost) and self.fwd_s + self.swap_s > self.left

    @property
    def single_pass_overshoots(self) -> bool:
        """Even the shown order alone does not fit: drop the swapped batches, then shorten."""
        return bool(self.fwd_cost) and self.fwd_s > self.left


def shorter_length(max_length: int, level: int) -> int | None:
    """The ``max_length`` of shortening step ``level`` (0, 1, ...), or None past the last step."""
    if level >= len(SHORTEN_STEPS):
        return None
    return int(max_length * SHORTEN_STEPS[level])
