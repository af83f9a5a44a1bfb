"""The training loss: a per-row loss summed over the rows, divided once by the rows of the step.

Why not the model's own loss: Trainer accumulates gradients over micro-batches, and since
transformers 4.46 it no longer divides a loss by the accumulation steps when it believes the loss
is already normalised by ``num_items_in_batch`` (the rows of the whole accumulated step). The
sequence-classification heads ignore that count and return a micro-batch mean, so the gradient
came out multiplied by the accumulation steps (and, on 5.x, by the number of processes). Trainer
treats what a ``compute_loss_func`` returns as normalised on 4.47 and 5.x alike; :class:`PairLoss`
is that function, and it really is normalised: SUM over rows / rows in the step.

Everything per row lives in :func:`pair_loss_sum`, or with soft labels in
:func:`distill_loss_sum` (``alpha * CE + (1 - alpha) * T^2 * KL(teacher || student)``, its extra
batch keys named in :attr:`DistillLoss.target_keys`); the one division stays where it is.
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


def distill_loss_sum(logits, labels, hard_mask, soft_labels, soft_mask, alpha: float, temperature: float):
    """Per-row ``alpha * CE(hard) + (1 - alpha) * T^2 * KL(teacher_T || student_T)``, SUMMED over rows.

    ``teacher_T`` is the teacher's probabilities re-tempered (``softmax(log p / T)``), ``student_T``
    ``softmax(logits / T)``; ``T^2`` keeps the soft term's gradient on the scale of the hard term's
    (Hinton et al.). A row with only a hard label (``soft_mask`` 0) contributes its CE, a row with
    only a soft label (``hard_mask`` 0, a pseudo-labelled pair) its ``T^2 * KL``: every row counts once.
    """
    import torch
    import torch.nn.functional as F

    z = logits.float()
    hard = hard_mask.float()
    soft = soft_mask.float()
    ce = F.cross_entropy(z, labels.long(), reduction="none")
    log_teacher = torch.log(soft_labels.float().clamp_min(1e-12)) / temperature
    teacher = torch.softmax(log_teacher, dim=-1)
    log_student = torch.log_softmax(z / temperature, dim=-1)
    kl = temperature**2 * (teacher * (torch.log_softmax(log_teacher, dim=-1) - log_student)).sum(dim=-1)
    both = hard * soft
    per_row = both * (alpha * ce + (1 - alpha) * kl) + hard * (1 - soft) * ce + soft * (1 - hard) * kl
    return per_row.sum()


class DistillLoss(PairLoss):
    """:class:`PairLoss` with soft labels: :func:`distill_loss_sum` / rows in the step.

    The batch carries ``hard_mask``, ``soft_labels`` and ``soft_mask`` beside ``labels`` (which
    holds a placeholder class for a row without a winner, so Trainer counts that row in the step).
    A batch without them (the evaluation set) is scored on its hard labels alone.
    """

    target_keys = ("labels", "hard_mask", "soft_labels", "soft_mask")

    def __init__(self, alpha: float, temperature: float):
        self.alpha, self.temperature = float(alpha), float(temperature)

    def __call__(self, outputs, labels, num_items_in_batch=None, **targets):
        if "soft_labels" not in targets:
            return super().__call__(outputs, labels, num_items_in_batch)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        total = distill_loss_sum(
            logits,
            labels,
            targets["hard_mask"],
            targets["soft_labels"],
            targets["soft_mask"],
            self.alpha,
            self.temperature,
        )
        return total / rows_in_step(num_items_in_batch, labels.shape[0])
