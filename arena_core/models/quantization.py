"""bitsandbytes 4-bit / 8-bit loading (QLoRA): what works on this device, and the config for it.

The classification head (and an encoder's pooler) stays in full precision: it is trained and saved
with the adapter. A quantised base is never merged (see :func:`arena_core.models.lora.merge_adapter`).
"""

from __future__ import annotations

import functools

import torch

from arena_core.models.capabilities import HEAD_NAMES, HEAD_NEIGHBOURS
from arena_core.models.errors import ModelLoadError

__all__ = ["QUANTIZATIONS", "bnb_config", "check_quantization", "is_quantized"]

QUANTIZATIONS = ("none", "8bit", "4bit")


def check_quantization(value: str | None, what: str = "model.quantization") -> str:
    """The normalised quantisation name, or a ValueError listing the choices."""
    q = (value or "none").strip().lower()
    if q not in QUANTIZATIONS:
        raise ValueError(f"{what} must be one of {'|'.join(QUANTIZATIONS)}, got {value!r}")
    return q


@functools.lru_cache(maxsize=4)
def _bnb_cpu_probe(quantization: str) -> str | None:
    """Run one tiny bitsandbytes layer on CPU; ``None`` if it works, else the reason it does not."""
    try:
        import bitsandbytes as bnb
    except Exception as exc:  # ImportError, or a broken native library raising anything
        return f"bitsandbytes is not importable ({type(exc).__name__}: {exc})"
    try:
        ref = torch.nn.Linear(64, 16)
        if quantization == "4bit":
            layer = bnb.nn.Linear4bit(
                64, 16, compute_dtype=torch.float32, quant_type="nf4", compress_statistics=True
            )
        else:
            layer = bnb.nn.Linear8bitLt(64, 16, has_fp16_weights=False)
        layer.load_state_dict(ref.state_dict())
        layer = layer.to("cpu")
        with torch.no_grad():
            out = layer(torch.randn(2, 64))
        if out.shape != (2, 16) or not torch.isfinite(out).all():
            return "the CPU layer returned a wrong result"
    except Exception as exc:
        return f"bitsandbytes {getattr(bnb, '__version__', '?')} has no working CPU {quantization} kernel ({exc})"
    return None


def bnb_config(quantization: str, dtype: torch.dtype, device: torch.device):
    """BitsAndBytesConfig for ``quantization`` on ``device``, or a ModelLoadError saying why not."""
    if device.type == "cuda":
        try:
            import bitsandbytes  # noqa: F401
        except Exception as exc:
            raise ModelLoadError(
                f"model.quantization={quantization!r} needs bitsandbytes, which is not importable here "
                f"({type(exc).__name__}: {exc}); install arena_core[train] or set model.quantization=none"
            ) from exc
    elif device.type == "cpu":
        reason = _bnb_cpu_probe(quantization)
        if reason is not None:
            raise ModelLoadError(
                f"model.quantization={quantization!r} on CPU is not possible: {reason}. bitsandbytes >= 0.48 "
                "runs 4-bit (NF4/FP4) and 8-bit layers on CPU (slowly); older versions need a CUDA GPU. "
                "Set model.quantization=none for CPU runs."
            )
    else:
        raise ModelLoadError(
            f"model.quantization={quantization!r} is not supported on device {device}: bitsandbytes "
            "quantisation is used here on CUDA (and CPU) only; set model.quantization=none"
        )
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(
            "bitsandbytes quantisation through transformers needs accelerate: install arena_core[train]"
        ) from exc
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            # The classification head stays in full precision: it is trained and saved with the adapter.
            llm_int8_skip_modules=[*HEAD_NAMES, *HEAD_NEIGHBOURS],
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=[*HEAD_NAMES, *HEAD_NEIGHBOURS])


def is_quantized(model) -> bool:
    """True when ``model`` (or the transformers model inside a peft wrapper) holds bitsandbytes weights."""
    candidates = [model]
    inner = getattr(model, "base_model", None)  # PeftModel -> LoraModel
    if inner is not None and inner is not model:
        candidates += [inner, getattr(inner, "model", None)]
    for m in candidates:
        if m is None:
            continue
        if getattr(m, "is_loaded_in_4bit", False) or getattr(m, "is_loaded_in_8bit", False):
            return True
        if getattr(getattr(m, "config", None), "quantization_config", None) is not None:
            return True
    return False
