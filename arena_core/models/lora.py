"""LoRA on a sequence classifier: which layers get adapters, the head saved whole, training dtypes, merging.

peft does the work; what is ours is choosing targets that exist (and never reach into the head or an
encoder's pooler), keeping trainable weights in fp32 on a half-precision base, and refusing to merge
into a quantised base.
"""

from __future__ import annotations

import warnings

import torch

from arena_core.config import LoraConfig
from arena_core.models.quantization import check_quantization, is_quantized

__all__ = [
    "apply_lora",
    "enable_gradient_checkpointing",
    "merge_adapter",
    "select_target_modules",
    "upcast_trainable",
]


def select_target_modules(
    model, wanted: list[str] | tuple[str, ...], head_name: str | None = None
) -> list[str]:
    """The entries of ``wanted`` that name at least one linear layer of ``model`` (outside the head).

    An entry matches a module whose name equals it or ends with ``"." + entry`` (``q_proj``,
    ``self_attn.q_proj``). Entries without a match are dropped with a warning; none at all -> ValueError
    listing the names that exist.
    """
    linear_names = []
    for name, module in model.named_modules():
        if head_name and (name == head_name or name.startswith(head_name + ".")):
            continue
        # nn.Linear covers bitsandbytes Linear4bit / Linear8bitLt (both subclass it).
        if isinstance(module, torch.nn.Linear):
            linear_names.append(name)
    present = [t for t in wanted if any(n == t or n.endswith("." + t) for n in linear_names)]
    missing = [t for t in wanted if t not in present]
    if not present:
        leaf_names = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
        raise ValueError(
            f"none of lora.target_modules {list(wanted)} match a linear layer of {type(model).__name__}; "
            f"available: {leaf_names}"
        )
    if missing:
        warnings.warn(
            f"lora.target_modules {missing} do not exist in {type(model).__name__}; using {present}",
            stacklevel=2,
        )
    return present


def _lora_targets(model, wanted: list[str], keep_out: tuple[str, ...]) -> list[str]:
    """LoRA targets as peft reads them, never inside the head or the modules saved whole.

    peft matches a short name (``dense``) anywhere, including an encoder's ``pooler.dense``; a
    layer both LoRA-wrapped and saved whole would be saved twice and merge wrongly. When a short
    name reaches into those modules, the full names of the layers outside them are given instead.
    """

    def inside(name: str) -> bool:
        return any(name == k or name.startswith(k + ".") for k in keep_out)

    matched = [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in wanted)
    ]
    if not any(inside(n) for n in matched):
        return list(wanted)
    return [n for n in matched if not inside(n)]


def apply_lora(model, lora_cfg: LoraConfig, head_name: str, save_whole: list[str]):
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    targets = select_target_modules(model, lora_cfg.target_modules, head_name)
    targets = _lora_targets(model, targets, (head_name, *save_whole))
    layers = lora_cfg.layers_to_transform
    if layers is not None:
        layers = [int(i) for i in layers]
        n_layers = getattr(model.config, "num_hidden_layers", None)
        bad = [i for i in layers if n_layers is not None and not 0 <= i < n_layers]
        if bad or not layers:
            raise ValueError(
                f"lora.layers_to_transform {layers}: the model has layers 0..{(n_layers or 0) - 1}"
            )
    peft_cfg = PeftLoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=int(lora_cfg.r),
        lora_alpha=int(lora_cfg.alpha),
        lora_dropout=float(lora_cfg.dropout),
        target_modules=targets,
        layers_to_transform=layers,
        # The head, and an encoder's pooler: trained, and saved whole with the adapter.
        modules_to_save=[head_name, *save_whole],
        bias="none",
    )
    return get_peft_model(model, peft_cfg)


def _cast_head_input(module, args, kwargs):
    """Forward pre-hook: feed the (fp32) trainable head in its own dtype."""
    if args and torch.is_tensor(args[0]):
        weight = next((p for p in module.parameters() if p.requires_grad), None)
        if weight is not None and args[0].dtype != weight.dtype:
            args = (args[0].to(weight.dtype), *args[1:])
    return args, kwargs


def upcast_trainable(model, head_names: list[str]) -> None:
    """Keep trainable weights in fp32 on a half-precision base (GradScaler refuses fp16 gradients).

    The head (and a pooler saved with it) then gets its input cast to fp32 by a forward pre-hook.
    """
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
    hooked: set[str] = set()
    for name, module in model.named_modules():
        match = next((h for h in head_names if name == h or name.endswith("." + h)), None)
        if match is not None and match not in hooked:
            module.register_forward_pre_hook(_cast_head_input, with_kwargs=True)
            hooked.add(match)


def enable_gradient_checkpointing(model, lora: bool) -> None:
    # transformers 5 renamed the method (the old name still works there, with a FutureWarning).
    ckpt_kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
    if lora:
        # Frozen embeddings give no grad to the checkpointed blocks' inputs; this re-enables it.
        model.enable_input_require_grads()


def merge_adapter(model, quantization: str):
    """Fold the LoRA weights into the base (``merge_and_unload``) and return the plain model.

    Refused on a 4-bit / 8-bit base: the merged weights would be re-quantised, rounding the adapter's
    small updates away (and peft dequantises/requantises with extra error). Reload the base unquantised
    (``quantization=none``, fp16/bf16), load the adapter, then merge.
    """
    q = check_quantization(quantization, "quantization")
    if q != "none" or is_quantized(model):
        raise ValueError(
            f"refusing to merge the LoRA adapter into a quantised ({q if q != 'none' else 'bitsandbytes'}) base: "
            "the merged weights would be rounded back to low precision and lose the adapter's updates. "
            "Reload the base with model.quantization=none (fp16/bf16), load the adapter, then merge."
        )
    if not hasattr(model, "merge_and_unload"):
        raise ValueError(f"{type(model).__name__} carries no adapter to merge (expected a peft model)")
    return model.merge_and_unload()
