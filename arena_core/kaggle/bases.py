"""Base checkpoints in a bundle: named by what they are, and matched to the runs trained on them.

A Kaggle Model mounts as ``.../<framework>/<variation>/<version>/``, so two attached bases both end
in ``1`` or ``2``; a folder name says nothing. A bundled base is therefore named by its identity,
``<model_type>-<hash>``: the hash covers config.json (what a run's manifest records as
``base_model.config_sha256``) and the weights fingerprint (``models.runs.weights_fingerprint``),
so a base and its instruction-tuned sibling, which share a config.json, still get different names.
Each adapter run is matched to one of the bundled bases by those two, then checked against it
with :func:`~arena_core.kaggle.run_checks.base_problems`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.run_checks import RunInfo, base_notes, base_problems, weights_problems
from arena_core.kaggle.wheels import version_key

__all__ = [
    "MIN_TRANSFORMERS",
    "BaseInfo",
    "architecture_problems",
    "base_identity",
    "check_bases",
    "point_manifest_at_base",
    "too_new",
]


@dataclass(frozen=True)
class BaseInfo:
    """One base checkpoint as the bundle carries it into ``models/base/<name>/``."""

    path: Path
    name: str  # <model_type>-<12 hex>
    model_type: str
    config_sha256: str
    weights_fingerprint: str | None


def base_identity(folder: str | os.PathLike) -> BaseInfo:
    """Identity of the checkpoint in ``folder`` (config.json + weights); raises when it is not one."""
    from arena_core.models.runs import weights_fingerprint

    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise BundleError(f"base model {folder}: not found or no config.json")
    raw = cfg_path.read_bytes()
    try:
        cfg = json.loads(raw)
    except ValueError as exc:
        raise BundleError(f"{cfg_path}: unreadable ({exc})") from exc
    model_type = re.sub(r"[^A-Za-z0-9._-]+", "-", str(cfg.get("model_type") or "model")).strip("-") or "model"
    config_sha = hashlib.sha256(raw).hexdigest()
    weights = weights_fingerprint(folder)
    digest = hashlib.sha256(f"{config_sha}\0{weights}".encode()).hexdigest()[:12]
    return BaseInfo(folder, f"{model_type}-{digest}", model_type, config_sha, weights)


def _recorded(manifest: dict) -> dict:
    mb = manifest.get("base_model")
    return mb if isinstance(mb, dict) else {}


def _candidates(mb: dict, bases: list[BaseInfo]) -> list[BaseInfo]:
    """The bases a run's manifest fits: config.json hash, then weights fingerprint, then recorded path."""
    cands = [b for b in bases if b.config_sha256 == mb.get("config_sha256")]
    if len(cands) > 1 and mb.get("weights_fingerprint"):
        cands = [b for b in cands if b.weights_fingerprint == mb["weights_fingerprint"]] or cands
    if len(cands) > 1:
        hints = {str(mb.get("path") or ""), str(mb.get("name") or "")} - {""}
        cands = [b for b in cands if str(b.path.resolve()) in hints or str(b.path) in hints] or cands
    return cands


def check_bases(
    base_dirs: list[Path], infos: list[tuple[RunInfo, dict, dict | None]]
) -> tuple[list[BaseInfo], dict[str, BaseInfo], list[str], list[str]]:
    """The bases to bundle and which adapter run uses which: ``(bases, {run: base}, notes, problems)``.

    A run is matched by the config.json hash its manifest records (and, between bases sharing a
    config.json, the weights fingerprint or the recorded path), then checked against its base
    (:func:`~arena_core.kaggle.run_checks.base_problems`: config, weights, or names for older
    runs). Runs without a recorded hash can only go with a single base.
    """
    problems: list[str] = []
    notes: list[str] = []
    bases: list[BaseInfo] = []
    for d in map(Path, base_dirs):
        if not (d / "config.json").is_file():
            problems.append(f"base model {d}: not found or no config.json")
            continue
        broken = weights_problems(d, "the base model")
        if broken:
            problems += broken
            continue
        info = base_identity(d)
        twin = next((b for b in bases if b.name == info.name), None)
        if twin is not None:
            problems.append(
                f"base model {d} is the same checkpoint as {twin.path} ({info.name}); give it once"
            )
            continue
        bases.append(info)
    base_of: dict[str, BaseInfo] = {}
    adapters = [(i, m, a) for i, m, a in infos if i.kind == "adapter"]
    if not bases:
        return bases, base_of, notes, problems
    for info, manifest, adapter_cfg in adapters:
        mb = _recorded(manifest)
        if mb.get("config_sha256"):
            cands = _candidates(mb, bases)
        else:  # an older run: its recorded names decide, and only a single base can be meant
            cands = bases if len(bases) == 1 else []
            if not cands:
                problems.append(
                    f"run {info.name!r}: its manifest records no base config.json sha256, so it cannot be "
                    f"matched to one of {len(bases)} --base folders; bundle it with its base alone"
                )
                continue
        if len(cands) > 1:
            problems.append(
                f"run {info.name!r}: several --base folders fit its manifest ({', '.join(str(b.path) for b in cands)}); "
                "bundle only the one it was trained on"
            )
            continue
        if not cands:
            if len(bases) == 1:
                cands = bases  # base_problems says how it differs
            else:
                problems.append(
                    f"run {info.name!r}: adapter was trained on base {mb.get('path') or mb.get('name')!r} whose "
                    f"config.json sha256 is {str(mb.get('config_sha256'))[:12]}..., and no --base folder is it ("
                    + ", ".join(f"{b.path}: {b.config_sha256[:12]}..." for b in bases)
                    + "): a different base model (bundle the base the run was trained on)"
                )
                continue
        mismatch = base_problems(info, manifest, adapter_cfg, cands[0].path, cands[0].weights_fingerprint)
        problems += mismatch
        notes += base_notes(info, manifest)
        if not mismatch:
            base_of[info.name] = cands[0]
    if not adapters:
        notes.append("a base model is bundled but no run is an adapter")
    else:
        used = {id(b) for b in base_of.values()}
        notes += [f"base {b.path} ({b.name}) is used by no run" for b in bases if id(b) not in used]
    return bases, base_of, notes, problems


def point_manifest_at_base(manifest_path: Path, base: BaseInfo) -> None:
    """Make a bundled run's manifest name its base by identity, so ``load_run`` finds ``models/base/<identity>/``.

    The name the base had at training time (often a Kaggle version folder such as ``2``) is kept as
    ``trained_name``; the source run directory is never touched (this is the bundle's copy).
    """
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    mb = dict(manifest.get("base_model") or {})
    if mb.get("name") != base.name:
        mb["trained_name"] = mb.get("name")
    mb["name"] = base.name
    manifest["base_model"] = mb
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")


# The first transformers release that knows each architecture (config.json's model_type): a base
# newer than the target image's transformers fails there at load ("does not recognize this
# architecture"), hours after the upload. Unknown types are not judged.
MIN_TRANSFORMERS = {
    "llama": "4.28",
    "mistral": "4.34",
    "qwen2": "4.37",
    "gemma": "4.38",
    "phi3": "4.40",
    "gemma2": "4.42",
    "gemma3": "4.50",
    "gemma3_text": "4.50",
    "qwen3": "4.51",
    "bert": "4.0",
    "deberta-v2": "4.0",
}
# transformers of the Kaggle image a bundle targets, by its Python (build_dataset.py --python):
# 3.10 is the WSDM Cup image (transformers 4.47); 3.11 / 3.12 today's (transformers 5).
IMAGE_TRANSFORMERS = {"3.10": "4.47", "3.11": "5.0", "3.12": "5.0"}


def too_new(configs: dict[str, Path], have: str) -> list[tuple[str, str, str]]:
    """``(label, model_type, first transformers that knows it)`` for each ``config.json`` in
    ``configs`` (label -> file) whose architecture transformers ``have`` does not know."""
    out = []
    for label, config in configs.items():
        try:
            model_type = json.loads(Path(config).read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            continue  # the weight checks report a missing or broken config.json
        need = MIN_TRANSFORMERS.get(str(model_type))
        if need and version_key(need) > version_key(have):
            out.append((label, str(model_type), need))
    return out


def architecture_problems(configs: dict[str, Path], python: str) -> list[str]:
    """Why a bundled base (or merged run) cannot load on the image ``python`` targets; ``configs``
    maps a label (``base models/base/X``, ``run R``) to its ``config.json``."""
    have = IMAGE_TRANSFORMERS.get(python)
    if have is None:
        return []
    return [
        f"{label}: model_type {model_type!r} needs transformers >= {need}, but the Python {python} "
        f"Kaggle image has transformers {have}; target a newer image (--python 3.11) or pass "
        "--allow-newer-arch if you install a newer transformers in the notebook yourself"
        for label, model_type, need in too_new(configs, have)
    ]
