"""A wall-clock cap for training (``train.max_time``): checkpoint and stop before the session ends.

A Kaggle session ends at 12 h, and whatever was not saved by then is lost. The callback measures
how long a step, an evaluation and a checkpoint take, and at the first step where the next one
(plus a final evaluation and save) could cross the cap it asks ``Trainer`` to save a checkpoint and
stop. The run directory is then written as usual (marked ``stopped_by: max_time`` in its
metrics), and ``arena train --resume`` (the notebook's ``RESUME_FROM``) continues from the
checkpoint. Under ``torchrun`` every rank takes the same decision (the flag is all-reduced), so
no rank waits forever for a collective the others left.
"""

from __future__ import annotations

import time

__all__ = ["TimeCap", "max_time_s", "time_cap_callback"]

MIN_MARGIN_S = 60.0  # never plan closer to the cap than this


def max_time_s(cfg) -> float | None:
    """``cfg.train.max_time`` in seconds (None: no cap); ValueError naming the key when unreadable."""
    from arena_core.inference.runtime_plan import parse_duration

    try:
        value = parse_duration(cfg.train.max_time or None)
    except ValueError as exc:
        raise ValueError(f"train.max_time: {exc}") from None
    if value is not None and value <= 0:
        raise ValueError(f"train.max_time={cfg.train.max_time!r}: must be positive")
    return value


class TimeCap:
    """The bookkeeping, free of transformers: feed it events, ask it whether to stop."""

    def __init__(self, max_time_s: float, start: float | None = None, clock=time.monotonic):
        if max_time_s <= 0:
            raise ValueError(f"train.max_time must be positive, got {max_time_s} s")
        self.cap = float(max_time_s)
        self.clock = clock
        self.start = clock() if start is None else start
        self.last = self.start
        self.steps: list[float] = []
        self.eval_s = 0.0
        self.save_s = 0.0
        self.stopped_at: int | None = None

    def margin(self) -> float:
        recent = self.steps[-10:]
        step = max(recent) if recent else 0.0
        return max(MIN_MARGIN_S, 2 * step + self.eval_s + self.save_s)

    def began(self) -> None:
        """Training starts: the first step is timed from here, not from loading the model."""
        self.last = self.clock()

    def step_done(self) -> bool:
        """Record a finished optimizer step; True when the next one could cross the cap."""
        now = self.clock()
        self.steps.append(now - self.last)
        self.last = now
        return now - self.start + self.margin() >= self.cap

    def evaluated(self) -> None:
        now = self.clock()
        self.eval_s = max(self.eval_s, now - self.last)
        self.last = now

    def saved(self) -> None:
        now = self.clock()
        self.save_s = max(self.save_s, now - self.last)
        self.last = now


def _all_ranks(flag: bool) -> bool:
    """``flag`` OR-ed over every process of a distributed run (itself when not distributed)."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return flag
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = "cpu"
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def time_cap_callback(max_time_s: float, start: float | None = None):
    """A ``TrainerCallback`` that saves a checkpoint and stops before ``max_time_s`` seconds of training."""
    from transformers import TrainerCallback

    cap = TimeCap(max_time_s, start)

    class StopBeforeTimeCap(TrainerCallback):
        """Saves and stops at the last step that safely ends before train.max_time."""

        time_cap = cap

        def on_train_begin(self, args, state, control, **kwargs):
            cap.began()

        def on_step_end(self, args, state, control, **kwargs):
            if _all_ranks(cap.step_done()) and cap.stopped_at is None:
                cap.stopped_at = state.global_step
                control.should_save = True
                control.should_training_stop = True
                if state.is_world_process_zero:
                    used = cap.clock() - cap.start
                    print(
                        f"train.max_time: stopping at step {state.global_step} after {used:.0f} s of "
                        f"{cap.cap:.0f} s (margin {cap.margin():.0f} s); a checkpoint is saved for --resume"
                    )
            return control

        def on_evaluate(self, args, state, control, **kwargs):
            cap.evaluated()

        def on_save(self, args, state, control, **kwargs):
            cap.saved()

    return StopBeforeTimeCap()
