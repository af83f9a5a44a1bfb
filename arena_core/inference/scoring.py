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


def _left_padding_problem(model, dtype) -> str | None:
    """Why ``model`` must not be fed left-padded rows, or None when it may.

    * an encoder's classifier reads position 0, which left padding makes a pad token;
    * fp16 with eager attention: a pad row has every key masked, and adding the mask's
      ``finfo(float16).min`` to a score below about -16 overflows to ``-inf``; softmax over a row
      of ``-inf`` is NaN, and the next layer spreads it to every token through the values
      (0 * NaN = NaN). bf16 and fp32 have the range to absorb it; SDPA unmasks such rows itself.
    """
    import torch

    from arena_core.models.capabilities import pools_first_token

    if pools_first_token(model):
        return "the classifier reads the first token, which left padding would make a pad token"
    params = model.parameters() if hasattr(model, "parameters") else iter(())
    first = next(params, None)
    half = dtype == torch.float16 or (first is not None and first.dtype == torch.float16)
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if half and attn == "eager":
        return "left padding with fp16 eager attention turns fully masked pad rows into NaN, which spreads"
    return None


def _repad_right(batch: dict, pad_token_id: int) -> dict:
    """The same rows, right-padded (no position ids needed then), at the same width."""
    mask = batch["attention_mask"].bool()
    seqs = [row[keep].numpy() for row, keep in zip(batch["input_ids"], mask)]
    return collate(seqs, pad_token_id, "right", padded_length=int(mask.shape[1]))


class Scorer:
    """One model replica on one device: a collated batch dict in, float32 logits (numpy) out.

    A CUDA out-of-memory error on a batch splits it in halves and retries each (recursively, down
    to single rows); only a single row that still does not fit re-raises. ``oom_splits`` counts
    the splits so a run can report them. A padded row whose logits are not finite is re-scored
    alone (``nan_rescored``), and left-padded batches are re-padded on the right where left
    padding is wrong (encoders) or unsafe (fp16 eager attention).
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
        self.nan_rescored = 0
        self._extra = {"use_cache": False} if _accepts(getattr(model, "forward", model), "use_cache") else {}
        self._autocast = self.device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
        self.left_padding_refused = _left_padding_problem(model, dtype)
        self._left_noted = False

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
        if "position_ids" in batch and self.left_padding_refused:  # collate() adds them when left-padding
            if not self._left_noted:
                self._left_noted = True
                print(f"[{self.name}] padding on the right instead: {self.left_padding_refused}")
            batch = _repad_right(batch, self.pad_token_id)
        n = int(batch["input_ids"].shape[0])
        try:
            return self._finite(batch, self._forward(batch))
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

    def _finite(self, batch: dict, logits: np.ndarray) -> np.ndarray:
        """Re-score alone, unpadded, each padded row whose logits came out NaN or infinite.

        In fp16, a pad query row whose keys are all masked (every pad row when left-padded; with
        right padding, the pad rows past a sliding window) can overflow the additive mask to
        ``-inf``; softmax turns the row into NaN and the next layer spreads it to the real tokens
        of that row. A row alone has no padding, so no such row; ``nan_rescored`` counts them.
        """
        mask = batch["attention_mask"].bool()
        bad = np.flatnonzero(~np.isfinite(logits).all(axis=1) & ~mask.all(dim=1).numpy())
        for i in bad:
            row = batch["input_ids"][i][mask[i]].numpy()
            logits[i] = self._forward(collate([row], self.pad_token_id, "right"))[0]
            self.nan_rescored += 1
        return logits

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def score_sequences(self, seqs: Sequence[np.ndarray], padding_side: str = "right") -> np.ndarray:
        """Collate ``seqs`` (token id arrays) and score them."""
        return self(collate(seqs, self.pad_token_id, padding_side))
