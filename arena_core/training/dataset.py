"""Encoded rows as Trainer items: every pair in one or both A/B orders, right-padded in batches."""

from __future__ import annotations

import numpy as np


def swap_label(label: int) -> int:
    return {0: 1, 1: 0}.get(int(label), int(label))


class PairDataset:
    """Encoded rows as ``{"input_ids", "labels"}`` items, with swap augmentation.

    ``both`` puts every pair in both orders (labels swapped for the reversed copy);
    ``random`` picks one order per pair with a fixed seed; ``none`` keeps the original order.
    """

    def __init__(self, encoded, labels, swap: str = "none", seed: int = 0):
        labels = np.asarray(labels, dtype=np.int64)
        items = []
        rng = np.random.default_rng(seed)
        for i, lab in enumerate(labels):
            fwd = (encoded.input_ids[i], int(lab))
            rev = (encoded.input_ids_swapped[i], swap_label(lab))
            if swap == "both":
                items += [fwd, rev]
            elif swap == "random":
                items.append(rev if rng.integers(2) else fwd)
            elif swap == "none":
                items.append(fwd)
            else:
                raise ValueError(f"train.swap_augmentation={swap!r}; choose both, random or none")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        ids, lab = self.items[i]
        return {"input_ids": ids, "labels": lab}


class PairCollator:
    """Right-pads a list of items with :func:`arena_core.encoding.batching.collate`."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int = 8):
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        import torch

        from arena_core.encoding.batching import _round_up, collate

        width = _round_up(max(len(f["input_ids"]) for f in features), self.multiple)
        out = collate([f["input_ids"] for f in features], self.pad_id, "right", padded_length=width)
        out["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return out
