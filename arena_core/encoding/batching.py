"""Length-sorted batches cut by a token budget, and the tensors for one batch.

A fixed row count either wastes compute on padding (short rows padded to a long one) or runs
out of memory on long rows. Sorting by length and cutting when rows x padded length would pass
a token budget keeps padding small and the memory per batch roughly constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Batch:
    """Row positions (into the encoded arrays) and the padded length they need."""

    index: np.ndarray
    padded_length: int

    @property
    def cost(self) -> int:
        return len(self.index) * self.padded_length


def _round_up(n: int, multiple: int) -> int:
    return n if multiple <= 1 else ((n + multiple - 1) // multiple) * multiple


def plan_batches(
    lengths,
    token_budget: int,
    max_rows: int = 64,
    pad_to_multiple_of: int = 1,
    longest_first: bool = True,
    min_fill: float = 0.0,
) -> list[Batch]:
    """Cut length-sorted rows into batches with rows x padded length <= ``token_budget``.

    A single row longer than the budget still gets a batch of its own (never dropped).
    Batches come longest first, so the largest memory need shows up at the start of a run.
    ``min_fill``: a row shorter than this share of the batch's padded length starts a new batch;
    with thousands of rows sorted lengths are dense and it rarely fires, but on a few hundred
    rows (or a sparse long tail) it keeps padding waste small.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if token_budget <= 0 or max_rows <= 0:
        raise ValueError(f"token_budget and max_rows must be positive (got {token_budget}, {max_rows})")
    order = np.argsort(-lengths, kind="stable")  # longest first; stable keeps ties in input order
    batches: list[Batch] = []
    start = 0
    n = len(order)
    while start < n:
        # Rows are descending, so the first row of a batch sets its padded length.
        padded = _round_up(int(lengths[order[start]]), pad_to_multiple_of)
        rows = max(1, min(max_rows, token_budget // max(padded, 1)))
        end = min(n, start + rows)
        if min_fill > 0:
            short = np.flatnonzero(lengths[order[start + 1 : end]] < min_fill * padded)
            if len(short):
                end = start + 1 + int(short[0])
        batches.append(Batch(index=order[start:end], padded_length=padded))
        start = end
    if not longest_first:
        batches.reverse()
    return batches


def padding_efficiency(lengths, batches: list[Batch]) -> float:
    """Real tokens divided by computed tokens (1.0 means no padding at all)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    computed = sum(b.cost for b in batches)
    real = sum(int(lengths[b.index].sum()) for b in batches)
    return real / computed if computed else 1.0


def collate(sequences, pad_id: int, padding_side: str = "right", padded_length: int | None = None) -> dict:
    """Pad ``sequences`` into ``input_ids`` / ``attention_mask`` (and ``position_ids`` when left-padded).

    Left padding gets explicit position ids so a row's positions start at 0 whatever it was
    batched with; otherwise its logits would depend on its neighbours.
    """
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max(len(s) for s in sequences)
    if padded_length is not None:
        width = max(width, padded_length)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for r, seq in enumerate(sequences):
        n = len(seq)
        if padding_side == "right":
            ids[r, :n] = seq
            mask[r, :n] = 1
        else:
            ids[r, width - n :] = seq
            mask[r, width - n :] = 1
    out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if padding_side == "left":
        pos = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        out["position_ids"] = torch.from_numpy(pos)
    return out
