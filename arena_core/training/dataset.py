"""Encoded rows as Trainer items: every pair in one or both A/B orders, right-padded in batches."""

from __future__ import annotations

import numpy as np


def swap_label(label: int) -> int:
    return {0: 1, 1: 0}.get(int(label), int(label))


def _soft_targets(label: int, soft: np.ndarray) -> dict:
    """The extra item keys :class:`~arena_core.training.loss.DistillLoss` reads, for one order."""
    has_soft = bool(np.isfinite(soft).all())
    has_hard = label >= 0
    return {
        # a row without a winner gets the teacher's favourite as a placeholder class, so Trainer
        # counts it among the step's rows; hard_mask keeps it out of the cross-entropy
        "labels": int(label) if has_hard else int(np.argmax(soft)),
        "hard_mask": float(has_hard),
        "soft_labels": np.where(np.isfinite(soft), soft, 0.0).tolist(),
        "soft_mask": float(has_soft),
    }


class PairDataset:
    """Encoded rows as ``{"input_ids", "labels"}`` items, with swap augmentation.

    ``both`` puts every pair in both orders (labels swapped for the reversed copy);
    ``random`` picks one order per pair with a fixed seed; ``none`` keeps the original order.
    With ``soft`` (an ``(n, k)`` array of teacher probabilities, NaN rows where a row has none;
    ``labels`` -1 where a row has no winner) items also carry ``hard_mask``, ``soft_labels`` and
    ``soft_mask``, and the reversed copy's soft label is swapped with it (``[p_b, p_a(, p_tie)]``).
    """

    def __init__(self, encoded, labels, swap: str = "none", seed: int = 0, soft=None):
        from arena_core.training.distill import swap_soft

        labels = np.asarray(labels, dtype=np.int64)
        items = []
        rng = np.random.default_rng(seed)
        for i, lab in enumerate(labels):
            fwd = (encoded.input_ids[i], int(lab))
            rev = (encoded.input_ids_swapped[i], swap_label(lab) if lab >= 0 else -1)
            if soft is not None:
                row = np.asarray(soft[i], dtype=np.float64)
                fwd = (fwd[0], _soft_targets(fwd[1], row))
                rev = (rev[0], _soft_targets(rev[1], swap_soft(row)))
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
        return {"input_ids": ids, **lab} if isinstance(lab, dict) else {"input_ids": ids, "labels": lab}


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
        for key in ("hard_mask", "soft_labels", "soft_mask"):
            if key in features[0]:
                out[key] = torch.tensor([f[key] for f in features], dtype=torch.float32)
        return out
