"""One model replica as a batch scorer: a collated batch in, float32 logits out, OOM survived.

Why a class of its own: the engine, the throughput probe and the benchmarks all score batches the
same way (pinned-memory copy, autocast for fp16/bf16, ``use_cache=False`` when the model takes it),
and a batch that runs out of accelerator memory must cost a split, never the run.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence

import numpy as np

from arena_core.encoding.batching import collate

__all__ = ["Scorer", "is_oom"]


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
