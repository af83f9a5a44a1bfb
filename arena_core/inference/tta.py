"""The engine's passes as batches of work: the shown order, the swapped order (TTA), shorter rows.

Test-time augmentation scores each pair twice, once with A shown first and once with B shown first,
and averages the two (mapped back to the original columns). ``tta="swap"`` queues both passes at the
start; ``tta="uncertain"`` queues the shown order first and, once every row has it, the swapped
order with the least confident rows first (:func:`uncertain_first`), so when time runs out the rows
that gain most from a second look have had it. ``tta="none"`` runs one pass. Every pass is cut into
:class:`WorkItem` batches by :func:`~arena_core.encoding.batching.plan_batches`, longest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arena_core.config import PredictConfig
from arena_core.encoding.batching import plan_batches
from arena_core.encoding.encoder import EncodedPairs

__all__ = ["MIN_FILL", "TTA_MODES", "WorkItem", "first_passes", "uncertain_first", "work_items"]

TTA_MODES = ("none", "swap", "uncertain")
MIN_FILL = 0.9  # every row fills at least this share of its batch's padded length (see batching.plan_batches)


@dataclass
class WorkItem:
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


def work_items(
    enc: EncodedPairs, kind: str, cfg: PredictConfig, pad_multiple: int, swapped: bool = False
) -> list[WorkItem]:
    """The rows of ``enc`` (in the swapped order when ``swapped``) as token-budget batches of ``kind``."""
    if len(enc.ids) == 0:
        return []
    seqs = enc.input_ids_swapped if swapped else enc.input_ids
    keys = enc.ids.tolist()
    out = []
    for b in plan_batches(
        enc.lengths, cfg.token_budget, cfg.max_rows_per_batch, pad_multiple, min_fill=MIN_FILL
    ):
        out.append(
            WorkItem(
                kind, [keys[i] for i in b.index], [seqs[i] for i in b.index], b.padded_length, enc.max_length
            )
        )
    return out


def first_passes(enc: EncodedPairs, tta: str, cfg: PredictConfig, pad_multiple: int) -> list[WorkItem]:
    """What is queued at the start: the shown order, and with ``tta="swap"`` the swapped order too."""
    items = work_items(enc, "fwd", cfg, pad_multiple)
    if tta == "swap":
        items += work_items(enc, "swap", cfg, pad_multiple, swapped=True)
    return items


def uncertain_first(enc: EncodedPairs, scored: dict, cfg: PredictConfig, pad_multiple: int) -> list[WorkItem]:
    """Swapped batches for the rows scored at full length, most uncertain (max prob lowest) first.

    ``scored`` maps row id -> log-probabilities of the shown-order pass. Rows are taken in chunks of
    ``4 * max_rows_per_batch`` in that order, each chunk cut into batches by length as usual.
    """
    keys = [k for k in enc.ids.tolist() if k in scored]
    if not keys:
        return []
    maxp = np.exp(np.stack([scored[k] for k in keys])).max(axis=1)
    order = np.argsort(maxp, kind="stable")
    pos = {k: i for i, k in enumerate(enc.ids.tolist())}
    chunk = max(1, 4 * cfg.max_rows_per_batch)
    items = []
    for s in range(0, len(order), chunk):
        idx = np.asarray([pos[keys[j]] for j in order[s : s + chunk]], dtype=np.int64)
        items += work_items(enc.subset(idx), "swap", cfg, pad_multiple, swapped=True)
    return items
