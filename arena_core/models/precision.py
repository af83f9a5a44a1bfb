"""Precision and attention by hardware: fp16 on T4, bf16 on Ampere and later, fp32 on CPU.

Also the one place that knows how the installed transformers spells the precision keyword
(``torch_dtype=`` before 4.56, ``dtype=`` since), so checkpoints load the same on the competition-era
Kaggle image (4.47) and on transformers 5.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch

__all__ = ["dtype_kwarg", "resolve_attn_implementation", "resolve_device", "resolve_dtype"]

_DTYPE_ALIASES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}

# Model types whose attention uses logit soft-capping (or whose reference numerics were validated
# with eager attention): SDPA / flash kernels silently skip the soft-capping.
_EAGER_MODEL_TYPES = ("gemma2", "gemma3", "gemma3_text")


@functools.lru_cache(maxsize=1)
def _transformers_version() -> tuple[int, int]:
    import transformers

    parts = transformers.__version__.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):  # pragma: no cover - exotic version strings
        return 0, 0


def dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The ``from_pretrained`` precision keyword the installed transformers understands.

    transformers < 4.56 reads ``torch_dtype=``; 4.56 renamed it to ``dtype=`` (v5 still accepts the old
    name with a deprecation warning). Passing ``dtype=`` to 4.47 would *silently* end up as a config
    attribute and load float32, hence the version switch rather than "try one, then the other".
    """
    return {"dtype": dtype} if _transformers_version() >= (4, 56) else {"torch_dtype": dtype}


def resolve_device(device: Any = None) -> torch.device:
    """``None`` -> the current CUDA device when there is one, else CPU."""
    if device is None:
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def resolve_dtype(
    cfg_dtype: str,
    device: Any,
    *,
    compute_capability: tuple[int, int] | None = None,
) -> torch.dtype:
    """Compute dtype for ``ModelConfig.dtype`` on ``device``.

    ``"auto"``: CPU (and any non-CUDA device) -> float32; CUDA with compute capability < 8 (T4, V100,
    P100) -> float16; >= 8 (A100, L4, H100) -> bfloat16. Explicit ``fp32``/``fp16``/``bf16`` (or the
    long names) are honoured, except bf16 on a CUDA device with compute capability < 8, which raises:
    those GPUs have no bf16 tensor cores, so bf16 is emulated (very slow) or fails in some kernels.

    ``compute_capability`` overrides the query of the device (for tests and planning).
    """
    key = (cfg_dtype or "auto").strip().lower()
    if key != "auto" and key not in _DTYPE_ALIASES:
        raise ValueError(f"model.dtype must be one of auto|fp32|fp16|bf16, got {cfg_dtype!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and compute_capability is None:
        if not torch.cuda.is_available():
            raise ValueError(f"device {dev} requested but CUDA is not available")
        compute_capability = torch.cuda.get_device_capability(dev)
    is_cuda = dev.type == "cuda"
    if key == "auto":
        if not is_cuda:
            return torch.float32
        return torch.bfloat16 if compute_capability[0] >= 8 else torch.float16
    dtype = _DTYPE_ALIASES[key]
    if dtype == torch.bfloat16 and is_cuda and compute_capability[0] < 8:
        cc = ".".join(str(x) for x in compute_capability)
        raise ValueError(
            f"model.dtype={cfg_dtype!r} on a GPU with compute capability {cc}: bf16 needs compute capability >= 8 "
            "(Ampere or newer); a T4 (7.5) has no real bf16 support. Use dtype=fp16 or dtype=auto."
        )
    if dtype == torch.float16 and not is_cuda:
        warnings.warn(
            f"model.dtype={cfg_dtype!r} on {dev.type}: float16 is slow and partly unsupported off-GPU; "
            "fp32 (or bf16) is the usual choice there.",
            stacklevel=2,
        )
    return dtype


def resolve_attn_implementation(cfg_value: str, model_type: str) -> str:
    """``"auto"`` -> ``"eager"`` for Gemma-2/Gemma-3 (attention logit soft-capping), ``"sdpa"`` otherwise."""
    value = (cfg_value or "auto").strip().lower()
    if value == "auto":
        return "eager" if model_type in _EAGER_MODEL_TYPES else "sdpa"
    if model_type == "gemma2" and value != "eager":
        warnings.warn(
            f"attn_implementation={value!r} for Gemma-2 skips its attention soft-capping; "
            "results differ from the reference model (use 'auto' or 'eager').",
            stacklevel=2,
        )
    return value
