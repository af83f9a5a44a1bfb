"""Is a ``.safetensors`` file whole? Its header lists every tensor's byte range, so a write cut off
mid-file (a killed save, a partial upload) shows without reading the tensors. Resume uses it to skip
a broken checkpoint, the bundle checks to refuse a broken run, and loading checks a run's or a base's
weight files first, so a missing or cut-off file is named (with the run it belongs to) instead of
surfacing as peft's "Repo id must be ..." or safetensors' "invalid header length"."""

from __future__ import annotations

import json
from pathlib import Path

from arena_core.models.errors import ModelLoadError

__all__ = [
    "ADAPTER_WEIGHT_FILES",
    "check_adapter_weights",
    "check_checkpoint_weights",
    "remedy",
    "safetensors_problem",
    "unreadable_weights",
]

# What peft loads an adapter from, in the order it looks.
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def safetensors_problem(path: Path) -> str | None:
    """A truncated or foreign .safetensors file, as a message naming it; None when the header adds up."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return f"{path}: not a safetensors file (header length {n}, file size {size})"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        return f"{path}: unreadable safetensors header ({exc})"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    if 8 + n + max(ends, default=0) != size:
        return f"{path}: truncated or padded ({size} bytes, header describes {8 + n + max(ends, default=0)})"
    return None


def remedy(folder: Path) -> str:
    """What to do about missing or broken weights in ``folder``: a run's part, or a checkpoint of its own."""
    run = folder.parent
    if folder.name in ("adapter", "merged") and (run / "manifest.json").is_file():
        return f"it belongs to the run folder {run}: copy that run folder again, whole, or retrain the run"
    return f"copy the folder {folder} again from where it was made (or save / convert it again)"


def _broken(path: Path, folder: Path, detail: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: truncated or corrupt weights file: {detail} (a copy or save that was cut off, or a Git "
        f"LFS pointer in place of the file); {remedy(folder)}"
    )


def _check_whole(path: Path, folder: Path) -> None:
    problem = safetensors_problem(path)
    if problem:
        raise _broken(path, folder, problem.removeprefix(f"{path}: "))


def check_adapter_weights(adapter_dir: Path) -> None:
    """A peft adapter folder has its weights (the LoRA matrices and the trained head), and they are whole."""
    adapter_dir = Path(adapter_dir)
    present = [adapter_dir / name for name in ADAPTER_WEIGHT_FILES if (adapter_dir / name).is_file()]
    if not present:
        raise ModelLoadError(
            f"{adapter_dir / ADAPTER_WEIGHT_FILES[0]}: missing; the adapter folder {adapter_dir} has "
            f"adapter_config.json but no weights ({' or '.join(ADAPTER_WEIGHT_FILES)}), so the trained LoRA "
            f"and classification head are lost; {remedy(adapter_dir)}"
        )
    if present[0].suffix == ".safetensors":
        _check_whole(present[0], adapter_dir)


def check_checkpoint_weights(model_dir: Path) -> None:
    """Every ``*.safetensors`` of a checkpoint (a base, a run's merged/) is whole, and every shard its
    index lists is there."""
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        except (ValueError, AttributeError) as exc:
            raise _broken(index, model_dir, f"not a weight index: {exc}") from exc
        missing = [s for s in shards if not (model_dir / s).is_file()]
        if missing:
            raise ModelLoadError(
                f"{model_dir / missing[0]}: missing ({len(missing)} of the {len(shards)} weight shards that "
                f"{index.name} lists are absent: {', '.join(missing[:3])}); {remedy(model_dir)}"
            )
    for path in sorted(model_dir.glob("*.safetensors")):
        if not path.name.startswith("."):
            _check_whole(path, model_dir)


def unreadable_weights(exc: BaseException, folder: Path) -> ModelLoadError | None:
    """safetensors' own error (it names no file), as one naming ``folder`` and what to do; else None."""
    if type(exc).__name__ != "SafetensorError":
        return None
    return ModelLoadError(
        f"a weights file in {folder} is unreadable ({exc}): truncated or corrupt; {remedy(Path(folder))}"
    )
