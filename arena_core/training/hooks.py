"""What we hang on Hugging Face ``Trainer``: the loss hook, the divergence guard, the JSON log.

* :func:`pair_trainer` -- a ``Trainer`` whose loss is :class:`~arena_core.training.loss.PairLoss`
  (per-row sum / rows of the accumulated step), the same on transformers 4.47 and 5.x.
* :func:`guard_callback` -- stops a run whose loss or weights became NaN/inf before that step is
  logged, evaluated or checkpointed, and names the checkpoint folder while Trainer writes it.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

from arena_core.training.loss import PairLoss
from arena_core.training.outdir import TrainError


class TrainingDiverged(TrainError):
    """The loss or the weights became NaN or infinite; the message names the step and learning rate.

    A failure while running (exit 1): the call was valid, the run blew up.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=1)


def all_finite(tensors) -> bool:
    """True when every tensor is free of NaN and inf (one device sync for all of them)."""
    import torch

    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True


def trainable_parameters(model) -> list:
    """The parameters the optimizer updates (LoRA + head): the ones that can blow up."""
    return [p for p in model.parameters() if p.requires_grad]


def guard_callback(ckpt_root: Path):
    from transformers import TrainerCallback

    class Guard(TrainerCallback):
        """Stops a diverged run before it logs, evaluates or checkpoints NaN, and tracks saves.

        Each micro-batch's loss is kept (no device sync) and checked once per optimizer step, in
        ``on_step_end``, which Trainer calls before it logs, evaluates or saves. Before an
        evaluation or a checkpoint the trainable weights are checked too: a finite loss can still
        produce an infinite update. ``writing`` names the checkpoint folder while Trainer saves it,
        so a failed write can be reported by name.
        """

        def __init__(self):
            self.losses: list = []
            self.lr: float | None = None
            self.writing: Path | None = None

        def observe(self, loss, lr) -> None:
            self.losses.append(loss.detach())
            self.lr = lr

        def _diverged(self, what: str, state) -> TrainingDiverged:
            return TrainingDiverged(
                f"{what} at step {state.global_step} (last learning rate {self.lr}); nothing from this step "
                "was saved; lower train.learning_rate, check the data, or use fp32/bf16 instead of fp16"
            )

        def on_step_end(self, args, state, control, model=None, **kwargs):
            losses, self.losses = self.losses, []
            if losses and not all_finite(losses):
                bad = next(float(x) for x in losses if not math.isfinite(float(x)))
                raise self._diverged(f"loss became {bad}", state)
            if model is not None and (
                control.should_save or control.should_evaluate or control.should_training_stop
            ):
                if not all_finite(trainable_parameters(model)):
                    raise self._diverged("weights became NaN or infinite", state)
            if control.should_save:
                self.writing = ckpt_root / f"checkpoint-{state.global_step}"

        def on_save(self, args, state, control, **kwargs):
            self.writing = None

    return Guard()


def progress_log_callback(log_path: Path):
    from transformers import TrainerCallback

    class LogToFile(TrainerCallback):
        """Appends every logged loss / eval metric as a JSON line next to the run."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                import json

                try:
                    with open(log_path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")
                except OSError as exc:
                    raise TrainError(
                        f"{log_path}: could not be written ({exc.strerror or exc})", exit_code=1
                    ) from exc

    return LogToFile()


def close_progress_bars(trainer) -> None:
    for cb in trainer.callback_handler.callbacks:
        for name in ("training_bar", "prediction_bar"):
            bar = getattr(cb, name, None)
            if bar is not None:
                bar.close()
                setattr(cb, name, None)


def pair_trainer(**kwargs):
    """A ``Trainer`` whose loss is :class:`PairLoss`, normalised by the rows of the whole step."""
    from transformers import Trainer

    class PairTrainer(Trainer):
        # transformers 5.2x: our loss is already normalised over the accumulated step; older
        # releases read the same from the compute_loss_func we pass (see training/loss.py).
        loss_is_scaled_for_ga = True

        def __init__(self, *args, pair_loss: PairLoss, guard, **kw):
            params = inspect.signature(Trainer.__init__).parameters
            if "compute_loss_func" in params:
                kw["compute_loss_func"] = pair_loss
            super().__init__(*args, **kw)
            self.pair_loss = pair_loss
            self.guard = guard

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            targets = {k: inputs.pop(k) for k in self.pair_loss.target_keys if k in inputs}
            labels = targets.pop("labels")
            outputs = model(**inputs)
            loss = self.pair_loss(outputs, labels, num_items_in_batch=num_items_in_batch, **targets)
            if model.training and self.optimizer is not None:
                self.guard.observe(loss, self.optimizer.param_groups[0]["lr"])
            return (loss, outputs) if return_outputs else loss

    return PairTrainer(**kwargs)
