"""The training loss: a per-row loss summed over the rows, divided once by the rows of the step.

Why not the model's own loss: Trainer accumulates gradients over micro-batches, and since
transformers 4.46 it no longer divides a loss by the accumulation steps when it believes the loss
is already normalised by ``num_items_in_batch`` (the rows of the whole accumulated step). The
sequence-classification heads ignore that count and return a micro-batch mean, so the gradient
came out multiplied by the accumulation steps (and, on 5.x, by the number of processes). Trainer
treats what a ``compute_loss_func`` returns as normalised on 4.47 and 5.x alike; :class:`PairLoss`
is that function, and it really is normalised: SUM over rows / rows in the step.

Everything per row lives in :func:`pair_loss_sum`. A soft-label / distillation loss
(``alpha * CE + (1 - alpha) * T^2 * KL(teacher || student)``) joins there as another summed term,
its extra batch keys named in :attr:`PairLoss.target_keys`; the one division stays where it is.
"""

from __future__ import annotations


def pair_loss_sum(logits, labels):
    """Cross-entropy of each row's winner, SUMMED over the rows (computed in fp32)."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.float(), labels.long(), reduction="sum")


def rows_in_step(num_items_in_batch, rows_here: int):
    """The divisor: Trainer's count of labelled rows in the accumulated step on this process.

    ``None`` (evaluation on 4.47, or no count) means this batch is the whole step. DataParallel
    on 5.x hands one count per replica; their sum is the step's rows.
    """
    import torch

    if num_items_in_batch is None:
        return max(int(rows_here), 1)
    if torch.is_tensor(num_items_in_batch):
        return num_items_in_batch.float().sum().clamp(min=1)
    return max(float(num_items_in_batch), 1.0)


class PairLoss:
    """Trainer's ``compute_loss_func``: ``pair_loss_sum / rows_in_step``.

    Called with the model outputs, the hard labels and ``num_items_in_batch``; extra targets a
    later loss needs (teacher probabilities, ...) come as keyword arguments named in
    ``target_keys`` (``PairTrainer`` takes them out of the batch before the forward pass).
    """

    target_keys: tuple[str, ...] = ("labels",)

    def __call__(self, outputs, labels, num_items_in_batch=None, **targets):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        return pair_loss_sum(logits, labels) / rows_in_step(num_items_in_batch, labels.shape[0])
