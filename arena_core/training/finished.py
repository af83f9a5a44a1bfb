"""Resuming from a checkpoint at the last step: write the run from it, train nothing.

Trainer saves a checkpoint at the last step before the run's own outputs are written, so a run
whose final write failed (a full disk) leaves a finished checkpoint and no adapter/. ``--resume``
then must only write what the finished run would have: given that checkpoint, Trainer would
instead train one more step (mid-epoch it skips the batches done and takes the next one) and
overwrite ``global_step`` and ``train_loss``. :func:`restore_finished` loads the checkpoint as
Trainer's resume does (weights, state, and with ``select_best`` the best checkpoint) without
calling ``train()``; :func:`train_loss` finds the loss the finished run logged, or leaves it
unknown.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path


def _schedule_steps(trainer) -> int:
    """The optimizer steps Trainer's schedule has for this run (train.max_steps or the epochs)."""
    args = trainer.args
    if args.max_steps > 0:
        return args.max_steps
    loader = trainer.get_train_dataloader()
    if hasattr(trainer, "set_initial_training_values"):  # transformers >= 4.48: Trainer's own sum
        wanted = inspect.signature(trainer.set_initial_training_values).parameters
        extra = [args.train_batch_size * args.gradient_accumulation_steps * args.world_size]
        return trainer.set_initial_training_values(args, loader, *extra[: len(wanted) - 2])[-1]
    per_epoch = max(len(loader) // args.gradient_accumulation_steps, 1)  # 4.47's sum
    return math.ceil(args.num_train_epochs * per_epoch)


def at_last_step(trainer, ckpt: Path) -> bool:
    """True when ``ckpt`` (a complete checkpoint) is at or past the end of this run's schedule."""
    state = json.loads((Path(ckpt) / "trainer_state.json").read_text(encoding="utf-8"))
    step = int(state["global_step"])
    if trainer.args.max_steps <= 0 and step < int(state.get("max_steps") or step + 1):
        return False  # steps left on the schedule it was saved on: no need to build a dataloader
    return step >= _schedule_steps(trainer)


def restore_finished(trainer, ckpt: Path, verbose: bool = True) -> bool:
    """Load ``ckpt`` into ``trainer`` as a finished run when it is at the last step; False otherwise.

    Afterwards ``trainer.state`` is the checkpoint's (its ``global_step`` and ``log_history``),
    and the model holds the weights the run ended on: the best checkpoint's when Trainer would
    have loaded it at the end (``load_best_model_at_end``), else the checkpoint's own.
    """
    from transformers import TrainerState

    ckpt = Path(ckpt)
    if not at_last_step(trainer, ckpt):
        return False
    trainer._load_from_checkpoint(str(ckpt))
    state = TrainerState.load_from_json(str(ckpt / "trainer_state.json"))
    best = state.best_model_checkpoint
    if best is not None:  # recorded where it was written; the run may have moved since
        found = [p for p in (Path(best), ckpt.parent / Path(best).name) if p.is_dir()]
        state.best_model_checkpoint = str(found[0]) if found else None
        if not found and verbose and trainer.args.load_best_model_at_end:
            print(f"{best}: the best checkpoint is gone; writing {ckpt.name}'s weights instead")
    trainer.state = state
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint is not None:
        trainer._load_best_model()
    if verbose:
        print(
            f"{ckpt.name} is the last step ({state.global_step}): writing the run from it, without training"
        )
    return True


def train_loss(log_history: list[dict], restored_log: Path | None | bool = None) -> float | None:
    """The run's mean training loss as Trainer logged it at the end, or None when not recorded.

    A checkpoint is saved before that final log line, so a restored run's loss is looked up in
    ``restored_log`` (train_log.jsonl; None or False: not restored): its last line, when it carries ``train_loss`` and follows
    the checkpoint's own last logged entry (so it belongs to the run that wrote the checkpoint).
    """
    found = next((float(h["train_loss"]) for h in reversed(log_history) if "train_loss" in h), None)
    if found is not None or not restored_log or not log_history:
        return found
    try:
        lines = Path(restored_log).read_text(encoding="utf-8").splitlines()
        last, before = json.loads(lines[-1]), json.loads(lines[-2])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if not isinstance(last, dict) or "train_loss" not in last or before != log_history[-1]:
        return None
    return float(last["train_loss"]) if last.get("step") == log_history[-1].get("step") else None
