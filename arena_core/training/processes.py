"""One training process per GPU, or one GPU on purpose: never ``Trainer``'s silent DataParallel.

``Trainer`` in a single process that sees several GPUs wraps the model in ``torch.nn.DataParallel``:
the per-device batch is multiplied by the GPU count, and with a 4-bit base (placed on one GPU)
only GPU 0 computes. So a single process with more than one visible GPU is refused with the two
ways out: ``torchrun`` (one process per GPU, DDP) or ``CUDA_VISIBLE_DEVICES=0`` (one GPU).
"""

from __future__ import annotations

__all__ = ["single_process_problem", "visible_gpus"]


def single_process_problem(world_size: int, visible_gpus: int) -> str | None:
    """Why this process layout would silently fall into DataParallel (None when it is fine)."""
    if world_size > 1 or visible_gpus <= 1:
        return None
    return (
        f"{visible_gpus} GPUs are visible to one training process: Trainer would wrap the model in "
        "DataParallel (the batch multiplied by the GPU count, and with a 4-bit base only GPU 0 computes). "
        f"Use one process per GPU: 'torchrun --nproc_per_node {visible_gpus} -m arena_core.cli train ...' "
        "(the Kaggle notebook does this with GPUS='auto'), or one GPU on purpose: "
        "'CUDA_VISIBLE_DEVICES=0 arena train ...'"
    )


def visible_gpus() -> int:
    """CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
