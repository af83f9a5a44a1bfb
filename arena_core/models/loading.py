"""Building the classifier: backbone + sequence-classification head (+ LoRA / QLoRA adapter).

One entry point, :func:`load_classifier`, turns a :class:`~arena_core.config.ModelConfig` (and an
optional :class:`~arena_core.config.LoraConfig`) into ``(model, tokenizer)`` ready for training or
inference. Everything is loaded from local directories; nothing is fetched from the hub. The
pieces it assembles live beside it: :mod:`~arena_core.models.precision`,
:mod:`~arena_core.models.tokenizer`, :mod:`~arena_core.models.quantization`,
:mod:`~arena_core.models.lora`, :mod:`~arena_core.models.capabilities`, :mod:`~arena_core.models.heads`.

Works on transformers 4.47 + peft 0.14 (the competition-era Kaggle image) and transformers 5.x;
only APIs present in both are used.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from arena_core.config import LoraConfig, ModelConfig
from arena_core.models.capabilities import (
    HEAD_NAMES,
    HEAD_NEIGHBOURS,
    classification_head_name,
    model_class,
    modules_saved_with_head,
    supported_attn_implementation,
)
from arena_core.models.errors import ModelLoadError, check_dir
from arena_core.models.heads import check_head_init, init_head
from arena_core.models.lora import apply_lora, enable_gradient_checkpointing, upcast_trainable
from arena_core.models.precision import (
    dtype_kwarg,
    resolve_attn_implementation,
    resolve_device,
    resolve_dtype,
)
from arena_core.models.quantization import bnb_config, check_quantization
from arena_core.models.tokenizer import fit_embeddings_to_pad, load_tokenizer
from arena_core.models.weight_files import (
    check_adapter_weights,
    check_checkpoint_weights,
    remedy,
    unreadable_weights,
)

__all__ = ["ModelLoadError", "count_parameters", "load_classifier"]

_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _check_weights(p: Path) -> None:
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"no config.json in model directory {p}: not a Hugging Face checkpoint")
    has_weights = any((p / name).is_file() for name in _WEIGHT_FILES) or any(p.glob("*.safetensors"))
    if not has_weights:
        raise ModelLoadError(
            f"no model weights in {p} (looked for {', '.join(_WEIGHT_FILES)} or *.safetensors); "
            + (
                remedy(p)
                if p.name == "merged"
                else "a GGUF file must first be converted (see arena_core.models.backbones)"
            )
        )
    check_checkpoint_weights(p)


HEAD_PREFIXES = tuple(f"{name}." for name in HEAD_NAMES)


class _HeadOnlyLoadReport(logging.Filter):
    """Drops transformers 5's LOAD REPORT when its only finding is the classification head missing.

    A backbone checkpoint never has a head (nor, for DeBERTa, the pooler before it): they are
    trained by us and saved with the adapter, and
    ``load_classifier`` warns itself when an untrained head is used for inference. Any other
    missing, unexpected or mismatched key keeps the report.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "LOAD REPORT" not in msg:
            return True
        rows = [line.split("|") for line in msg.splitlines() if line.count("|") >= 2]
        findings = [(r[0].strip(), r[1].strip()) for r in rows if r[1].strip() and r[1].strip() != "Status"]
        head_only = bool(findings) and all(
            status == "MISSING"
            and (key.startswith(HEAD_PREFIXES) or any(p in HEAD_NEIGHBOURS for p in key.split(".")))
            for key, status in findings
        )
        return not head_only


def _from_pretrained(auto_cls, path: Path, kwargs: dict, quantization: str, dev: torch.device):
    """``auto_cls.from_pretrained`` with errors that name the path."""
    report_logger = logging.getLogger("transformers.modeling_utils")
    quiet = _HeadOnlyLoadReport()
    report_logger.addFilter(quiet)
    try:
        return auto_cls.from_pretrained(str(path), **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"cannot load model weights from {path}: {exc}") from exc
    except Exception as exc:
        unreadable = unreadable_weights(exc, path)
        if unreadable is not None:
            raise unreadable from exc
        if quantization == "none":
            raise
        # Quantised loading fails in version-specific ways (4.47 on CPU even crashes with an
        # AttributeError in its bitsandbytes device check): always answer with one clear error.
        import transformers

        raise ModelLoadError(
            f"loading {path} in {quantization} on {dev} failed: {type(exc).__name__}: {exc}. "
            f"bitsandbytes quantisation through transformers {transformers.__version__} may need a CUDA GPU "
            "(transformers 4.x only accepts bitsandbytes on CPU with Intel IPEX; transformers 5 with "
            "bitsandbytes >= 0.48 runs it on plain CPU); set model.quantization=none on this machine"
        ) from exc
    finally:
        report_logger.removeFilter(quiet)


# --------------------------------------------------------------------------- the entry point


@dataclass
class _Request:
    """What :func:`load_classifier` was asked for, checked before anything heavy is loaded."""

    path: Path
    quantization: str
    lora_on: bool
    adapter_path: Path | None


def _check_request(model_cfg: ModelConfig, lora_cfg: LoraConfig | None, for_training: bool, adapter_dir):
    path = check_dir(model_cfg.path, "model")
    _check_weights(path)
    quantization = check_quantization(model_cfg.quantization)
    check_head_init(model_cfg.head_init)
    lora_on = lora_cfg is not None and lora_cfg.enabled
    if for_training and quantization != "none" and not (lora_on or adapter_dir):
        raise ValueError(
            f"training a {quantization} base needs LoRA (QLoRA): quantised weights cannot be fine-tuned directly"
        )
    adapter_path = None
    if adapter_dir is not None:
        adapter_path = check_dir(adapter_dir, "adapter")
        if not (adapter_path / "adapter_config.json").is_file():
            raise ModelLoadError(f"no adapter_config.json in adapter directory {adapter_path}")
        check_adapter_weights(adapter_path)
    return _Request(path, quantization, lora_on, adapter_path)


def _classifier_config(path: Path, model_cfg: ModelConfig, tokenizer, for_training: bool):
    """The checkpoint's config with our head (num_labels), the pad id and a supported attention kernel."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read the model config in {path}: {exc}") from exc
    config.num_labels = int(model_cfg.num_labels)
    config.problem_type = "single_label_classification"
    # A pad token added to the tokenizer may lie past the embedding table until it is resized
    # after loading; the embedding layer refuses a padding_idx outside it, so it is set after that.
    fits = tokenizer.pad_token_id < (getattr(config, "vocab_size", None) or tokenizer.pad_token_id + 1)
    config.pad_token_id = tokenizer.pad_token_id if fits else None
    if for_training:
        config.use_cache = False
    attn = resolve_attn_implementation(model_cfg.attn_implementation, getattr(config, "model_type", ""))
    attn = supported_attn_implementation(
        model_class(AutoModelForSequenceClassification, config),
        attn,
        explicit=(model_cfg.attn_implementation or "auto").strip().lower() != "auto",
    )
    return config, attn


def _load_kwargs(config, attn: str, dtype, req: _Request, dev, for_training: bool, device_map, max_memory):
    """``from_pretrained`` keywords: precision, quantisation, and where the weights go."""
    kwargs: dict[str, Any] = {
        "config": config,
        "local_files_only": True,
        "attn_implementation": attn,
        "output_loading_info": True,
        **dtype_kwarg(dtype),
    }
    if req.quantization != "none":
        kwargs["quantization_config"] = bnb_config(req.quantization, dtype, dev)
        kwargs["device_map"] = {"": dev.index if dev.type == "cuda" else "cpu"}
    elif dev.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
        # Stream the weights straight onto the GPU: a 9B fp16 model never sits in host RAM whole.
        kwargs["device_map"] = {"": dev.index}
    if device_map is not None:
        if for_training:
            raise ValueError(
                "device_map (a layer-wise split) is for inference; training uses one GPU per process"
            )
        kwargs["device_map"] = device_map
        if max_memory:
            kwargs["max_memory"] = max_memory
    return kwargs


def _fresh_modules(model, info: dict, tokenizer, model_cfg: ModelConfig, req: _Request, for_training: bool):
    """``(head_name, save_whole, fresh)``: the head, the modules saved with it, and which are untrained.

    A fresh head on a plain load (no adapter) starts as ``head_init`` asks: the model's own verdict,
    or, for training only, zero (uniform at step 0); an untrained head used for inference without
    an adapter gets a warning.
    """
    head_name = classification_head_name(model)
    missing = info.get("missing_keys", [])
    save_whole = modules_saved_with_head(model, missing, head_name)
    fresh = [n for n in [head_name, *save_whole] if any(k.startswith(n + ".") for k in missing)]
    how = check_head_init(model_cfg.head_init)
    # zero is a start for training; a bare checkpoint used for inference keeps its (warned) head
    if head_name in fresh and req.adapter_path is None and (for_training or how == "verdict"):
        if init_head(model, tokenizer, model_cfg, req.path, head_name) and how == "verdict":
            fresh.remove(head_name)  # it now holds the model's own zero-shot verdict, not noise
    if fresh and not for_training and req.adapter_path is None:
        warnings.warn(
            f"{' and '.join(repr(n) for n in fresh)} of {req.path} {'is' if len(fresh) == 1 else 'are'} "
            "freshly initialised and no adapter was given: "
            "predictions are random until the model is fine-tuned",
            stacklevel=3,
        )
    return head_name, save_whole, fresh


def _prepare_for_training(model, model_cfg: ModelConfig, req: _Request):
    """k-bit preparation (QLoRA) and gradient checkpointing, before any adapter is attached."""
    gc = bool(model_cfg.gradient_checkpointing)
    if req.quantization != "none":
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gc,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    if gc:
        enable_gradient_checkpointing(model, lora=req.lora_on or req.adapter_path is not None)
    return model


def _load_adapter(model, req: _Request, head_name: str, fresh: list[str], for_training: bool):
    """A saved adapter (and its head) onto the base, warning when it lacks what the base lacks."""
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(model, str(req.adapter_path), is_trainable=for_training)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the adapter from {req.adapter_path}: {exc}") from exc
    except Exception as exc:
        unreadable = unreadable_weights(exc, req.adapter_path)
        if unreadable is None:
            raise
        raise unreadable from exc
    saved = getattr(model.peft_config.get("default"), "modules_to_save", None) or []
    if head_name not in saved:
        warnings.warn(
            f"adapter {req.adapter_path} does not carry the '{head_name}' head (modules_to_save={saved}); "
            "the head stays as loaded from the base checkpoint",
            stacklevel=3,
        )
    lost = [n for n in fresh if n != head_name and n not in saved]
    if lost:
        warnings.warn(
            f"adapter {req.adapter_path} does not carry {lost}, which {req.path} lacks: they are random on "
            "every load, so predictions change from one load to the next; retrain with this arena_core",
            stacklevel=3,
        )
    return model


def _set_mode(model, for_training: bool, dtype, req: _Request, trainable_whole: list[str]):
    if for_training:
        if dtype != torch.float32 and req.quantization == "none":
            upcast_trainable(model, trainable_whole)
        model.train()
    else:
        # peft 0.14 leaves the saved head copy trainable even with is_trainable=False.
        for param in model.parameters():
            param.requires_grad_(False)
        model.eval()
    return model


def load_classifier(
    model_cfg: ModelConfig,
    lora_cfg: LoraConfig | None = None,
    *,
    device: Any = None,
    for_training: bool,
    adapter_dir: str | os.PathLike | None = None,
    device_map: dict | str | None = None,
    max_memory: dict | None = None,
):
    """Load ``AutoModelForSequenceClassification`` from ``model_cfg.path`` (+ LoRA); return ``(model, tokenizer)``.

    * precision from :func:`~arena_core.models.precision.resolve_dtype`, attention from
      :func:`~arena_core.models.precision.resolve_attn_implementation` (and what the class supports);
    * ``quantization`` ``"4bit"`` (NF4, double quantisation, compute dtype = resolved dtype) or ``"8bit"``
      through bitsandbytes; the classification head stays unquantised;
    * ``adapter_dir`` given: the saved adapter (incl. its trained head) is loaded onto the base,
      trainable when ``for_training``;
    * else, ``for_training`` with ``lora_cfg.enabled``: a fresh LoRA adapter on the filtered
      ``target_modules``, the head (``score``) trainable and saved with the adapter (``modules_to_save``);
      ``for_training`` without LoRA: full fine-tuning (not possible on a quantised base);
    * not training and no adapter: the plain checkpoint (a warning says when its head is untrained);
    * ``device_map`` (with optional ``max_memory``), inference only: one model split layer-wise over
      several GPUs (see :mod:`arena_core.inference.placement`) instead of all of it on ``device``.

    ``pad_token_id`` is set on the model config from the tokenizer, ``num_labels`` from the config.
    """
    from transformers import AutoModelForSequenceClassification

    req = _check_request(model_cfg, lora_cfg, for_training, adapter_dir)
    dev = resolve_device(device)
    dtype = resolve_dtype(model_cfg.dtype, dev)
    tokenizer = load_tokenizer(req.path)
    config, attn = _classifier_config(req.path, model_cfg, tokenizer, for_training)
    kwargs = _load_kwargs(config, attn, dtype, req, dev, for_training, device_map, max_memory)
    model, info = _from_pretrained(
        AutoModelForSequenceClassification, req.path, kwargs, req.quantization, dev
    )
    fit_embeddings_to_pad(model, tokenizer.pad_token_id)
    if "device_map" not in kwargs:
        model.to(dev)
    model.config.pad_token_id = tokenizer.pad_token_id

    head_name, save_whole, fresh = _fresh_modules(model, info, tokenizer, model_cfg, req, for_training)
    if for_training:
        model = _prepare_for_training(model, model_cfg, req)
    if req.adapter_path is not None:
        model = _load_adapter(model, req, head_name, fresh, for_training)
    elif for_training and req.lora_on:
        model = apply_lora(model, lora_cfg, head_name, save_whole)
    return _set_mode(model, for_training, dtype, req, [head_name, *save_whole]), tokenizer


# --------------------------------------------------------------------------- utilities


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; packed 4-bit weights count as the values they hold."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if param.__class__.__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored uint8
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
