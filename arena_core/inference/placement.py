"""Where a model goes on the visible GPUs: one replica per GPU, or one model split layer-wise over them.

Replicas are the fast default (every GPU scores its own batches from the shared queue), but each
GPU must hold the whole model. Gemma-2 9B in fp16 (about 18.5 GB) does not fit a 15 GB T4; split
layer-wise over two T4s (a transformers/accelerate ``device_map`` with ``max_memory``) it does, as
the WSDM solutions ran it. A split model is one worker: a batch passes through the GPUs in turn.
:func:`choose_placement` decides from the model's bytes and each GPU's memory;
:func:`split_device_map` builds the layer-to-GPU map on the meta device (no weights, no GPU).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GPU_MEMORY_GIB",
    "HEADROOM",
    "PLACEMENTS",
    "Placement",
    "checkpoint_bytes",
    "choose_placement",
    "split_device_map",
    "split_max_memory",
    "visible_gpu_bytes",
]

PLACEMENTS = ("auto", "replicas", "split")
# Memory a planning target offers per GPU (GiB as CUDA reports it, roughly).
GPU_MEMORY_GIB = {"t4": 14.7, "p100": 15.9, "v100": 15.8, "l4": 22.0, "a10": 22.0, "a100": 39.4, "h100": 79.1}
HEADROOM = 0.25  # share of each GPU kept for activations, the CUDA context and fragmentation
_BYTES_PER_PARAM = {"none": None, "8bit": 1.05, "4bit": 0.55}  # bitsandbytes, with its statistics
_GIB = 2**30


@dataclass
class Placement:
    """The decision: ``kind`` replicas | split | cpu, how many engine workers, and why."""

    kind: str
    workers: int
    max_memory: dict[int, int] | None
    fits: bool
    reason: str


def _safetensors_params(path: Path) -> int:
    """Parameters counted from a safetensors header, without reading the tensors."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")


def checkpoint_bytes(folder: str | os.PathLike, dtype_bytes: int = 2, quantization: str = "none") -> int:
    """Bytes the checkpoint's weights take on the GPU at ``dtype_bytes`` per parameter (or quantised).

    Parameters are counted from the safetensors headers; ``.bin`` checkpoints are estimated from
    their file size and config.json's ``torch_dtype``.
    """
    folder = Path(folder)
    params = 0
    for st in sorted(folder.glob("*.safetensors")):
        params += _safetensors_params(st)
    if not params:
        stored = sum(p.stat().st_size for p in folder.glob("*.bin"))
        dtype = "float32"
        cfg = folder / "config.json"
        if cfg.is_file():
            dtype = str(json.loads(cfg.read_text(encoding="utf-8")).get("torch_dtype") or dtype)
        params = stored // (4 if "32" in dtype else 2)
    per = _BYTES_PER_PARAM.get((quantization or "none").lower())
    return int(params * (per if per is not None else dtype_bytes))


def visible_gpu_bytes() -> list[int]:
    """Total memory of every visible CUDA device (empty without CUDA)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [int(torch.cuda.get_device_properties(i).total_memory) for i in range(torch.cuda.device_count())]


def _gb(n: float) -> str:
    return f"{n / _GIB:.1f} GiB" if n >= _GIB / 10 else f"{n / 2**20:.2f} MiB"


def split_max_memory(gpu_bytes: list[int], headroom: float = HEADROOM) -> dict[int, int]:
    """Per-GPU weight caps for a layer-wise split: each GPU's memory less its ``headroom`` share."""
    return {i: int(b * (1 - headroom)) for i, b in enumerate(gpu_bytes)}


def choose_placement(
    model_bytes: int, gpu_bytes: list[int], requested: str = "auto", headroom: float = HEADROOM
) -> Placement:
    """Replicas when one GPU holds the model with ``headroom`` to spare; else split over all GPUs.

    ``requested`` ``replicas`` / ``split`` is honoured (split needs two GPUs), with ``fits`` and
    the reason saying when memory says otherwise.
    """
    if requested not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {requested!r}")
    if not gpu_bytes:
        return Placement("cpu", 1, None, True, "no GPU visible: one CPU worker")
    n = len(gpu_bytes)
    usable = [b * (1 - headroom) for b in gpu_bytes]
    one = model_bytes <= min(usable)
    together = model_bytes <= sum(usable)
    need = f"model {_gb(model_bytes)} vs {_gb(min(usable))} usable per GPU ({n} GPU(s), {headroom:.0%} kept free)"
    if requested == "split" and n < 2:
        return Placement("replicas", 1, None, one, f"split needs 2+ GPUs, {n} visible: one replica; {need}")
    if requested == "replicas" or (requested == "auto" and (one or n < 2)):
        why = (
            "one GPU holds it"
            if one
            else "does NOT fit one GPU: expect out-of-memory (try --placement split)"
        )
        return Placement("replicas", n, None, one, f"{n} replica(s): {why}; {need}")
    caps = split_max_memory(gpu_bytes, headroom)
    why = "too big for one GPU, split layer-wise" if requested == "auto" else "split as requested"
    if not together:
        why += "; does NOT fit even split: expect out-of-memory"
    return Placement("split", 1, caps, together, f"{why} over {n} GPUs (1 worker); {need}")


def _units(module, prefix: str, no_split: set[str]) -> list[tuple[str, object]]:
    """The blocks a split places whole: no-split classes (decoder layers), leaves, and modules owning tensors."""
    children = list(module.named_children())
    own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    if type(module).__name__ in no_split or not children or own:
        return [(prefix, module)]
    out = []
    for name, child in children:
        out += _units(child, f"{prefix}.{name}" if prefix else name, no_split)
    return out


def _unit_bytes(module, dtype_bytes: int) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * (dtype_bytes if t.is_floating_point() else t.element_size()) for t in tensors)


def split_device_map(config, max_memory: dict[int, int], dtype_bytes: int = 2) -> dict[str, int]:
    """Layer-to-GPU map for ``AutoModelForSequenceClassification`` of ``config`` under ``max_memory``.

    The model is built on the meta device (no weights, no GPU needed). Its blocks, in forward
    order, are dealt out so each GPU gets about an equal share of the bytes (a block goes where
    its middle falls), moving on early where a GPU's cap would be exceeded; a decoder layer (the
    model's ``_no_split_modules``) is never cut. The dict goes to ``from_pretrained(device_map=...)``.
    Raises ``ValueError`` when the blocks do not fit the caps (nothing is sent to CPU or disk).
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    no_split = set(getattr(model, "_no_split_modules", None) or [])
    units = [(n, _unit_bytes(m, dtype_bytes)) for n, m in _units(model, "", no_split)]
    units = [(n, b) for n, b in units if b]
    gpus = sorted(max_memory)
    total = sum(b for _, b in units)
    share = total / len(gpus)
    used = dict.fromkeys(gpus, 0)
    dmap: dict[str, int] = {}
    k = done = 0
    for name, nbytes in units:
        k = max(k, min(int((done + nbytes / 2) // share), len(gpus) - 1))
        while used[gpus[k]] + nbytes > max_memory[gpus[k]] and k < len(gpus) - 1:
            k += 1
        used[gpus[k]] += nbytes
        dmap[name] = gpus[k]
        done += nbytes
    over = {g: u for g, u in used.items() if u > max_memory[g]}
    if over:
        raise ValueError(
            f"the model ({_gb(total)}) does not fit the GPUs' caps "
            f"{{{', '.join(f'{g}: {_gb(c)}' for g, c in max_memory.items())}}} layer by layer"
        )
    return dmap
