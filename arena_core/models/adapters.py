"""Averaging the LoRA adapters of k folds into one adapter (``arena cv --merge-folds``).

How: the weight change a LoRA adapter makes is ``scale * B @ A``. Averaging ``A`` and ``B``
separately does NOT average those changes (the mean of products is not the product of means).
Stacking the folds' ranks does: ``A' = [A_1; ...; A_k]`` and ``B' = [B_1, ..., B_k] / k`` give
``B' @ A' = mean_i(B_i @ A_i)`` exactly, as an adapter of rank ``k * r`` with ``lora_alpha``
scaled so ``scale`` is unchanged. Everything else in the adapter (the classification head, other
modules_to_save) is averaged element-wise. The result is one model whose every layer carries the
folds' mean update: k times cheaper to run than the k fold models, though not the same function
as averaging their predictions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from arena_core.models.errors import ModelLoadError
from arena_core.models.weight_files import check_adapter_weights

__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "average_adapters"]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_SAME = ("peft_type", "task_type", "target_modules", "r", "lora_alpha", "use_rslora", "modules_to_save")


def _read(adapter_dir: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    cfg_path, w_path = adapter_dir / ADAPTER_CONFIG, adapter_dir / ADAPTER_WEIGHTS
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ModelLoadError(f"{p}: missing; --merge-folds needs LoRA fold runs (adapter/)")
    check_adapter_weights(adapter_dir)  # a cut-off file named, not safetensors' bare "header" error
    return json.loads(cfg_path.read_text(encoding="utf-8")), load_file(str(w_path))


def _comparable(cfg: dict, key: str):
    value = cfg.get(key)
    return sorted(set(value)) if isinstance(value, list) else value


def average_adapters(adapter_dirs, out_dir) -> dict:
    """Write to ``out_dir`` the adapter whose weight changes are the mean of ``adapter_dirs``'.

    Returns the new adapter config. Refuses adapters that differ in shape or kind, and DoRA
    (its magnitude vectors do not stack).
    """
    import torch
    from safetensors.torch import save_file

    dirs = [Path(d) for d in adapter_dirs]
    if len(dirs) < 2:
        raise ValueError(f"need at least two adapters to average, got {len(dirs)}")
    read = [_read(d) for d in dirs]
    cfg0, w0 = read[0]
    if cfg0.get("peft_type", "LORA") != "LORA" or cfg0.get("use_dora"):
        raise ValueError(f"{dirs[0]}: only plain LoRA adapters can be averaged (peft_type LORA, no DoRA)")
    for d, (cfg, w) in zip(dirs[1:], read[1:]):
        diff = [k for k in _SAME if _comparable(cfg, k) != _comparable(cfg0, k)]
        if diff or set(w) != set(w0):
            what = f"config keys {diff}" if diff else "tensor names"
            raise ValueError(f"{d}: adapter differs from {dirs[0]} in {what}; cannot average")
    k = len(dirs)
    out_w = {}
    for name, t0 in w0.items():
        tensors = [w[name].to(torch.float32) for _, w in read]
        if "lora_A" in name or "lora_embedding_A" in name:  # (r, in): stack the ranks
            merged = torch.cat(tensors, dim=0)
        elif "lora_B" in name or "lora_embedding_B" in name:  # (out, r): stack, and average
            merged = torch.cat(tensors, dim=1) / k
        else:  # classification head and other modules_to_save
            merged = torch.stack(tensors).mean(dim=0)
        out_w[name] = merged.to(t0.dtype).contiguous()

    # scale = alpha / r (or alpha / sqrt(r) with rsLoRA) must not change when r becomes k * r.
    alpha_factor = math.sqrt(k) if cfg0.get("use_rslora") else k
    cfg = dict(cfg0)
    cfg["r"] = int(cfg0["r"]) * k
    cfg["lora_alpha"] = cfg0["lora_alpha"] * alpha_factor
    cfg["rank_pattern"] = {m: int(r) * k for m, r in (cfg0.get("rank_pattern") or {}).items()}
    cfg["alpha_pattern"] = {m: a * alpha_factor for m, a in (cfg0.get("alpha_pattern") or {}).items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(out_w, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (out / ADAPTER_CONFIG).write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return cfg
