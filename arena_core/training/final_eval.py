"""The eval fold scored once at the end of training: log loss, accuracy and the A/B flip rate.

``Trainer`` has just evaluated the model it ends with on the eval rows in their own order (its
end-of-training eval, or the eval of the best checkpoint it went back to); scoring them again
doubled the time. :class:`EvalScores` keeps those logits, so only the swapped order is scored here,
which gives the flip rate of :func:`~arena_core.evaluation.metrics.position_bias`. A run that
ends worse than chance (log loss above uniform, or most decisions flipping when A and B swap
places) says so: an LLM run at too high a learning rate does, and nothing else would tell.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from arena_core.training.dataset import PairDataset, swap_label

# Log loss this far above ln(num_labels) counts as worse than uniform (float noise at a zero head).
UNIFORM_TOLERANCE = 1e-3


def _softmax(logits) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def compute_metrics(eval_pred) -> dict:
    from arena_core.evaluation.metrics import accuracy, log_loss

    logits, labels = eval_pred
    probs = _softmax(logits)
    return {"accuracy": accuracy(labels, probs), "log_loss": log_loss(labels, probs)}


class EvalScores:
    """``Trainer``'s ``compute_metrics`` that also keeps each evaluation's logits, in order."""

    def __init__(self):
        self.logits: list[np.ndarray] = []

    def __call__(self, eval_pred) -> dict:
        self.logits.append(np.asarray(eval_pred[0], dtype=np.float64))
        return compute_metrics(eval_pred)


def _final_step(trainer) -> int | None:
    """The step whose weights the Trainer ended with (the best checkpoint's when it went back)."""
    best = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best:
        tail = Path(best).name.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else None
    return trainer.state.global_step


def _kept_eval(trainer, scores) -> tuple[dict, np.ndarray] | None:
    """The Trainer's own evaluation of the final weights in this process: its log entry and logits."""
    if not isinstance(scores, EvalScores) or not scores.logits:
        return None
    evals = [h for h in trainer.state.log_history if "eval_log_loss" in h]
    if len(evals) < len(scores.logits):
        return None
    step = _final_step(trainer)
    # The last evaluations logged are this process's, in the order their logits were kept.
    for entry, logits in zip(reversed(evals), reversed(scores.logits)):
        if entry.get("step") == step:
            return entry, logits
    return None


def _swapped(encoded, labels) -> PairDataset:
    """The eval rows with B shown first (labels swapped to match)."""
    view = SimpleNamespace(input_ids=encoded.input_ids_swapped, input_ids_swapped=encoded.input_ids)
    return PairDataset(view, [swap_label(lab) for lab in labels], "none")


def final_eval(trainer, eval_ds, encoded, labels) -> dict:
    """Metrics of the final model on the eval rows: today's keys (``accuracy``, ``log_loss``, ``loss``,
    ``runtime`` ...) for the rows' own order, plus ``eval_flip_rate`` from one swapped pass."""
    from arena_core.evaluation.metrics import accuracy, log_loss, position_bias

    labels = np.asarray(labels, dtype=np.int64)
    kept = _kept_eval(trainer, trainer.compute_metrics)
    trainer.compute_metrics = None  # the passes below are ours: neither logged nor kept
    if kept is not None:
        entry, logits = kept
    else:  # resumed past it, or a time cap stopped before it: score the rows' own order too
        out = trainer.predict(eval_ds, metric_key_prefix="eval")
        entry, logits = out.metrics, out.predictions
    metrics = {
        k.removeprefix("eval_"): float(v)
        for k, v in entry.items()
        # model_preparation_time: only when predict() came first (a run written from its last checkpoint)
        if k.startswith("eval_") and isinstance(v, (int, float)) and k != "eval_model_preparation_time"
    }
    if trainer.state.epoch is not None:
        metrics["epoch"] = float(trainer.state.epoch)
    probs = _softmax(logits)
    back = _softmax(trainer.predict(_swapped(encoded, labels)).predictions)
    back[:, [0, 1]] = back[:, [1, 0]]  # column 0 means "original A wins" again
    metrics["accuracy"] = accuracy(labels, probs)
    metrics["log_loss"] = log_loss(labels, probs)
    metrics["eval_flip_rate"] = position_bias(probs, back)["flip_rate"]
    return metrics


def chance_warnings(metrics: dict, num_labels: int) -> list[str]:
    """One line when the run ends worse than chance (log loss above uniform or flip rate above 0.5)."""
    uniform = math.log(num_labels)
    problems = []
    ll, flip = metrics.get("log_loss"), metrics.get("eval_flip_rate")
    if ll is not None and ll > uniform + UNIFORM_TOLERANCE:
        problems.append(
            f"eval log loss {ll:.4f} is above uniform (ln {num_labels} = {uniform:.4f}): predicting "
            f"1/{num_labels} for every row would score better"
        )
    if flip is not None and flip > 0.5:
        problems.append(
            f"A/B flip rate {flip:.3f} is above 0.5: swapping the responses changes the predicted winner on "
            "most eval rows, so the decisions follow the position, not the answers"
        )
    if not problems:
        return []
    return [
        "WARNING: this run ends no better than chance: "
        + "; ".join(problems)
        + ". Lower train.learning_rate, check model.head_init (zero starts at uniform) and the labels"
    ]
