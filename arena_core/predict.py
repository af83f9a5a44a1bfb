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
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import inspect
import json
import logging
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .batching import collate, padding_efficiency, plan_batches
from .config import EncodingConfig, PredictConfig
from .encoding import EncodedPairs, PairEncoder
from .ensemble import combine, log_softmax, normalise_weights, swap_columns

__all__ = [
    "EnsembleResult",
    "Member",
    "PredictionResult",
    "RuntimePlan",
    "Scorer",
    "detect_time_budget",
    "encode_cached",
    "is_oom",
    "make_reencoder",
    "measure_throughput",
    "parse_duration",
    "plan_runtime",
    "predict_ensemble",
    "predict_probs",
    "save_probs",
]

logger = logging.getLogger(__name__)

TTA_MODES = ("none", "swap", "uncertain")
SHORTEN_STEPS = (0.75, 0.5)  # fractions of the original max_length, tried in order
SAFETY = 1.15  # projections are inflated by this factor before comparing with the time left
KAGGLE_TIME_BUDGET_S = 4.5 * 3600
PATHS = ("model+swap", "model", "model@short", "fallback")
# A 2-class fallback used for a 3-class model gets this tie probability (the rest scaled down).
FALLBACK_TIE = 1.0 / 3.0
MIN_FILL = 0.9  # every row fills at least this share of its batch's padded length (see batching.plan_batches)


# ----------------------------------------------------------------------------- scorer


def is_oom(exc: BaseException) -> bool:
    """A CUDA (or other accelerator) out-of-memory error, which a smaller batch may avoid."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _trim(batch: dict) -> dict:
    """Drop columns no row attends to (after a split, the shorter half needs less width)."""
    mask = batch["attention_mask"]
    used = mask.any(dim=0).nonzero()
    if used.numel() == 0:
        return batch
    lo, hi = int(used[0]), int(used[-1]) + 1
    if lo == 0 and hi == mask.shape[1]:
        return batch
    return {k: v[:, lo:hi] for k, v in batch.items()}


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


class Scorer:
    """One model replica on one device: a collated batch dict in, float32 logits (numpy) out.

    A CUDA out-of-memory error on a batch splits it in halves and retries each (recursively, down
    to single rows); only a single row that still does not fit re-raises. ``oom_splits`` counts
    the splits so a run can report them.
    """

    def __init__(self, model, pad_token_id: int, device=None, dtype=None, name: str | None = None):
        import torch

        self.model = model
        self.pad_token_id = int(pad_token_id)
        if device is None:
            try:
                device = next(model.parameters()).device
            except (AttributeError, StopIteration, TypeError):
                device = "cpu"
        self.device = torch.device(device)
        self.dtype = dtype
        self.name = name or f"{type(model).__name__}@{self.device}"
        self.oom_splits = 0
        self._extra = {"use_cache": False} if _accepts(getattr(model, "forward", model), "use_cache") else {}
        self._autocast = self.device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)

    @property
    def num_labels(self) -> int | None:
        cfg = getattr(self.model, "config", None)
        n = getattr(cfg, "num_labels", None)
        return int(n) if n else None

    def _forward(self, batch: dict) -> np.ndarray:
        import torch

        if self.device.type == "cuda":
            moved = {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}
        else:
            moved = {k: v.to(self.device) for k, v in batch.items()}
        amp = torch.autocast("cuda", dtype=self.dtype) if self._autocast else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            out = self.model(**moved, **self._extra)
        logits = out.logits if hasattr(out, "logits") else out
        return logits.float().cpu().numpy()

    def __call__(self, batch: dict) -> np.ndarray:
        n = int(batch["input_ids"].shape[0])
        try:
            return self._forward(batch)
        except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raises
            if not is_oom(exc) or n <= 1:
                raise
        # Outside the except block, so the failed attempt's tensors (held by the traceback) are freed.
        self.oom_splits += 1
        self._release_memory()
        half = n // 2
        first = self(_trim({k: v[:half] for k, v in batch.items()}))
        second = self(_trim({k: v[half:] for k, v in batch.items()}))
        return np.concatenate([first, second], axis=0)

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def score_sequences(self, seqs: Sequence[np.ndarray], padding_side: str = "right") -> np.ndarray:
        """Collate ``seqs`` (token id arrays) and score them."""
        return self(collate(seqs, self.pad_token_id, padding_side))


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


def _fallback_k(fallback) -> int:
    if isinstance(fallback, pd.DataFrame):
        return 3 if "p_tie" in fallback.columns else 2
    return 2 if fallback is None else int(np.asarray(fallback).shape[1])


def _fallback_array(fallback, keys: list, k: int) -> np.ndarray:
    """Fallback probabilities for ``keys`` as an ``(n, k)`` array (uniform when none was given)."""
    n = len(keys)
    if fallback is None:
        return np.full((n, k), 1.0 / k)
    if isinstance(fallback, pd.DataFrame):
        cols = ["p_a", "p_b"] + (["p_tie"] if "p_tie" in fallback.columns else [])
        pos = pd.Index(fallback["id"]).get_indexer(keys) if n else np.zeros(0, dtype=np.int64)
        if (pos < 0).any():
            missing = [keys[i] for i in np.flatnonzero(pos < 0)[:5]]
            raise ValueError(f"fallback_probs lack {int((pos < 0).sum())} row id(s), e.g. {missing}")
        arr = fallback[cols].to_numpy(dtype=np.float64)[pos]
    else:
        arr = np.asarray(fallback, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(
                f"fallback_probs array must be (n_rows={n}, 2|3) in encoded order, got {arr.shape}"
            )
    if arr.shape[1] == k:
        return arr
    if arr.shape[1] == 2 and k == 3:
        return np.column_stack([arr * (1.0 - FALLBACK_TIE), np.full(n, FALLBACK_TIE)])
    if arr.shape[1] == 3 and k == 2:
        two = arr[:, :2]
        return two / np.clip(two.sum(axis=1, keepdims=True), 1e-12, None)
    raise ValueError(f"fallback_probs have {arr.shape[1]} columns, the model {k}")


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
    def note(self, msg: str) -> None:
        self.log.append(msg)
        logger.info(msg)
        if self.bar is not None:
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
    p_tie]`` (e.g. ``metrics.length_baseline``) or an array in encoded order; uniform when None.
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
        or _fallback_k(fallback_probs)
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
        probs[fb] = _fallback_array(fallback_probs, [keys[i] for i in np.flatnonzero(fb)], k)
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
        f"padding efficiency {stats['padding_efficiency']:.3f}, {elapsed:.1f}s)"
    )
    return PredictionResult(encoded.ids, probs, path, coverage, first, swapped, stats, engine.log)


# ----------------------------------------------------------------------------- encoding helpers


def tokenizer_key(tokenizer) -> str:
    """Identity of a tokenizer's behaviour (hash of its serialised fast tokenizer when it has one)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        return "sha1:" + hashlib.sha1(backend.to_str().encode("utf-8")).hexdigest()
    return f"{type(tokenizer).__name__}:{getattr(tokenizer, 'name_or_path', '')}:{len(tokenizer)}"


def encode_cached(
    frame: pd.DataFrame, tokenizer, encoding: EncodingConfig, cache: dict | None = None
) -> EncodedPairs:
    """``PairEncoder(tokenizer, encoding).encode_frame(frame)``, reused for an identical tokenizer + config."""
    key = (tokenizer_key(tokenizer), json.dumps(dataclasses.asdict(encoding), sort_keys=True))
    if cache is not None and key in cache:
        return cache[key]
    enc = PairEncoder(tokenizer, encoding).encode_frame(frame)
    if cache is not None:
        cache[key] = enc
    return enc


def make_reencoder(
    frame: pd.DataFrame, tokenizer, encoding: EncodingConfig
) -> Callable[[list, int], EncodedPairs]:
    """A ``reencode(ids, max_length)`` for :func:`predict_probs`: same template, shorter budget."""
    index = pd.Index(frame["id"])

    def reencode(ids: list, max_length: int) -> EncodedPairs:
        pos = index.get_indexer(list(ids))
        if (pos < 0).any():
            raise KeyError(f"re-encode asked for {(pos < 0).sum()} unknown id(s)")
        cfg = dataclasses.replace(encoding, max_length=int(max_length))
        return PairEncoder(tokenizer, cfg).encode_frame(frame.iloc[pos])

    return reencode


# ----------------------------------------------------------------------------- ensembles


@dataclass
class Member:
    """One run of an ensemble. ``load()`` returns ``(scorers, tokenizer, encoding_config)``; it is
    called only when the member's turn comes, so two large models never share GPU memory."""

    name: str
    load: Callable[[], tuple[list[Scorer], Any, EncodingConfig]]
    weight: float = 1.0


@dataclass
class EnsembleResult:
    ids: np.ndarray
    probs: np.ndarray
    members: dict[str, PredictionResult]
    coverage: dict[str, int]
    log: list[str]

    def frame(self) -> pd.DataFrame:
        cols = {
            "id": pd.Series(self.ids, dtype=self.ids.dtype),
            "p_a": self.probs[:, 0],
            "p_b": self.probs[:, 1],
        }
        if self.probs.shape[1] == 3:
            cols["p_tie"] = self.probs[:, 2]
        return pd.DataFrame(cols)

    def long_frame(self) -> pd.DataFrame:
        """Per-model probabilities (and the ensemble's) stacked: id, model, p_a, p_b[, p_tie], per-order
        columns (``p_a_ab``... ``p_b_ba``; members only), path."""
        parts = []
        for name, res in self.members.items():
            part = res.analysis_frame()
            part.insert(1, "model", name)
            part["path"] = res.path.astype(str)
            parts.append(part)
        if len(self.members) != 1:
            part = self.frame()
            part.insert(1, "model", "ensemble")
            part["path"] = "ensemble"
            parts.append(part)
        return pd.concat(parts, ignore_index=True)


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def predict_ensemble(
    members: Sequence[Member],
    frame: pd.DataFrame,
    cfg: PredictConfig | None = None,
    *,
    tta: str | None = None,
    deadline: float | None = None,
    fallback_probs=None,
    progress: bool = True,
    encode_cache: dict | None = None,
) -> EnsembleResult:
    """Run each member in turn over ``frame`` and combine per id (``cfg.ensemble_mode``, member weights).

    The time left is shared equally among the members still to run, after reserving the load
    time measured on the first member for each later one. A row is combined over the members that
    scored it (weights renormalised); a row none scored gets the fallback.
    """
    cfg = cfg or PredictConfig()
    if not members:
        raise ValueError("need at least one model")
    if len({m.name for m in members}) != len(members):
        raise ValueError(f"member names must be unique, got {[m.name for m in members]}")
    cache = {} if encode_cache is None else encode_cache
    keys = frame["id"].tolist()
    results: dict[str, PredictionResult] = {}
    log: list[str] = []
    load_s: float | None = None
    for i, member in enumerate(members):
        later = len(members) - i - 1
        if deadline is not None and time.monotonic() + (load_s or 0.0) >= deadline:
            log.append(f"[{member.name}] skipped: no time left to load it")
            continue
        t = time.monotonic()
        scorers, tokenizer, encoding = member.load()
        load_s = load_s if load_s is not None else time.monotonic() - t
        encoded = encode_cached(frame, tokenizer, encoding, cache)
        log.append(f"[{member.name}] {encoded.summary()}")
        member_deadline = None
        if deadline is not None:
            share = (deadline - time.monotonic() - load_s * later) / (later + 1)
            member_deadline = time.monotonic() + max(share, 0.0)
        res = predict_probs(
            scorers,
            encoded,
            cfg,
            tta=tta,
            deadline=member_deadline,
            fallback_probs=fallback_probs,
            progress=progress,
            reencode=make_reencoder(frame, tokenizer, encoding),
        )
        if res.ids.tolist() != keys:
            raise RuntimeError(f"[{member.name}] result ids differ from the frame's ids")
        log += [f"[{member.name}] {line}" for line in res.log]
        results[member.name] = res
        del scorers
        _free_memory()
    names = list(results)
    if names:
        ks = {results[m].n_classes for m in names}
        if len(ks) != 1:
            raise ValueError(
                f"cannot ensemble 2-class and 3-class models: {{{', '.join(f'{m}: {results[m].n_classes}' for m in names)}}}"
            )
        k = ks.pop()
        weights = normalise_weights(
            [next(m.weight for m in members if m.name == nm) for nm in names], len(names)
        )
        mask = [results[m].path != "fallback" for m in names]
        probs = combine([results[m].probs for m in names], weights, cfg.ensemble_mode, mask=mask)
        n_models = np.sum(mask, axis=0)
    else:
        k = _fallback_k(fallback_probs)
        probs = np.full((len(keys), k), np.nan)
        n_models = np.zeros(len(keys), dtype=int)
    fb = n_models == 0
    if fb.any():
        probs[fb] = _fallback_array(fallback_probs, [keys[j] for j in np.flatnonzero(fb)], k)
    if len(names) == 1:
        coverage = dict(results[names[0]].coverage)
    else:
        coverage = {"all models": int((n_models == len(members)).sum())}
        coverage["some models"] = int(((n_models > 0) & (n_models < len(members))).sum())
        coverage["fallback"] = int(fb.sum())
    log.append("ensemble coverage: " + ", ".join(f"{k_} {v}" for k_, v in coverage.items()))
    return EnsembleResult(frame["id"].to_numpy(), probs, results, coverage, log)


def save_probs(
    result: EnsembleResult | PredictionResult, path: str | os.PathLike, name: str = "model"
) -> Path:
    """Per-model probabilities as parquet: id, model, p_a, p_b[, p_tie], per-order columns, path."""
    if isinstance(result, PredictionResult):
        df = result.analysis_frame()
        df.insert(1, "model", name)
        df["path"] = result.path.astype(str)
    else:
        df = result.long_frame()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


# ----------------------------------------------------------------------------- time budget and planning


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
            f"throughput basis: {self.basis}; {self.gpus} worker(s)",
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
