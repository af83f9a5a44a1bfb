"""Run directories as a bundle carries them: what is shippable, and which base they need.

A run that lacks its manifest, tokenizer or weights, has truncated safetensors, or was trained
on a different base than the one bundled would only fail inside the Kaggle notebook. These
checks find that on the build machine, and say which files a run contributes (the contract
pieces and small top-level files, not trainer checkpoints).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena_core.models.weight_files import safetensors_problem

__all__ = [
    "RunInfo",
    "base_notes",
    "base_problems",
    "inspect_run",
    "portable_adapter_notes",
    "tree_size",
    "weights_problems",
]

_SMALL_TOP_LEVEL_FILE = 16 * 2**20  # run-dir files beyond the contract are carried if this small


@dataclass
class RunInfo:
    """One run as the bundle carries it into ``models/<name>/``."""

    name: str
    source: Path
    kind: str  # "adapter" | "merged" | "booster"
    base_model: str | None
    items: list[str]  # top-level entries carried into models/<name>/
    nbytes: int
    tokenizer_from: str | None = None  # set when tokenizer/ stays behind: the bundled base's folder


def _model_key(value: Any) -> str | None:
    """Comparable name of a model reference: last path part that is not a version number."""
    if not isinstance(value, str) or not value.strip():
        return None
    parts = [p for p in re.split(r"[\\/]+", value.strip()) if p]
    while parts and parts[-1].isdigit():
        parts.pop()
    return parts[-1].lower() if parts else None


def tree_size(path: Path) -> int:
    """Bytes a file or folder adds to the bundle (caches and bytecode are not copied)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in (".git", ".cache", "__pycache__", ".ipynb_checkpoints")]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if not f.endswith(".pyc"))
    return total


def weights_problems(folder: Path, what: str) -> list[str]:
    """Why ``folder`` holds no usable weights (none at all, or a broken safetensors file)."""
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        return [f"{folder}: {what} holds no weights (*.safetensors or *.bin)"]
    return [p for p in (safetensors_problem(w) for w in weights if w.suffix == ".safetensors") if p]


def inspect_run(run: Path) -> tuple[RunInfo, dict, dict | None, list[str]]:
    """(info, manifest, adapter_config or None, problems) for one run directory."""
    problems: list[str] = []
    manifest_path = run / "manifest.json"
    if not manifest_path.is_file():
        return (
            RunInfo(run.name, run, "?", None, [], 0),
            {},
            None,
            [f"{run}: manifest.json is missing; is this a run directory written by 'arena train'?"],
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return RunInfo(run.name, run, "?", None, [], 0), {}, None, [f"{manifest_path}: unreadable ({exc})"]

    adapter_cfg = None
    if (run / "adapter").is_dir():
        kind = "adapter"
        cfg_path = run / "adapter" / "adapter_config.json"
        if not cfg_path.is_file():
            problems.append(f"{run}/adapter: adapter_config.json is missing")
        else:
            try:
                adapter_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                problems.append(f"{cfg_path}: unreadable ({exc})")
        problems += weights_problems(run / "adapter", "adapter/")
        base = manifest.get("base_model")
        if not isinstance(base, dict) or not (base.get("name") or base.get("path")):
            problems.append(
                f"{manifest_path}: base_model {{name, path, config_sha256}} is missing; an adapter needs it"
            )
    elif (run / "merged").is_dir():
        kind = "merged"
        if not (run / "merged" / "config.json").is_file():
            problems.append(f"{run}/merged: config.json is missing")
        problems += weights_problems(run / "merged", "merged/")
    elif (run / "booster").is_dir():
        kind = "booster"  # a feature or stack run: LightGBM text, no base, no tokenizer
        from arena_core.models.booster import BoosterError, load_booster

        try:
            load_booster(run)
        except BoosterError as exc:
            problems.append(str(exc))
    else:
        kind = "?"
        problems.append(f"{run}: neither adapter/, merged/ nor booster/ found (no model to ship)")
    tok = run / "tokenizer"
    has_tokenizer = tok.is_dir() and any(
        (tok / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
    )
    if kind != "booster" and not has_tokenizer:
        problems.append(f"{run}: tokenizer/ is missing (or has no tokenizer.json / tokenizer_config.json)")
    if not (run / "config.yaml").is_file() and "config" not in manifest:
        problems.append(f"{run}: no config.yaml and no 'config' in manifest.json")

    items = ["manifest.json"] + [
        n for n in ("config.yaml", kind, "tokenizer") if (run / n).exists() and n != "?"
    ]
    for extra in sorted(run.iterdir()):
        if (
            extra.name not in items
            and extra.is_file()
            and not extra.name.startswith(".")
            and extra.stat().st_size <= _SMALL_TOP_LEVEL_FILE
        ):
            items.append(extra.name)
    base_name = (
        manifest.get("base_model", {}).get("name") if isinstance(manifest.get("base_model"), dict) else None
    )
    info = RunInfo(run.name, run, kind, base_name, items, sum(tree_size(run / i) for i in items))
    return info, manifest, adapter_cfg, problems


def _config_hashes(config_json: Path) -> set[str]:
    """SHA-256 of config.json's bytes (what runs.base_model_identity records) and of its canonical JSON."""
    from arena_core.models.runs import file_sha256

    out = {file_sha256(config_json)}
    with contextlib.suppress(ValueError):
        canon = json.dumps(
            json.loads(config_json.read_text(encoding="utf-8")), sort_keys=True, separators=(",", ":")
        )
        out.add(hashlib.sha256(canon.encode("utf-8")).hexdigest())
    return {h for h in out if h}


def base_problems(
    info: RunInfo, manifest: dict, adapter_cfg: dict | None, base_dir: Path, base_weights: str | None
) -> list[str]:
    """Does adapter run ``info`` belong on the bundled base? config.json's hash, then the weights
    fingerprint decide; names when the run records no hash. ``base_weights``: the base's
    :func:`~arena_core.models.runs.weights_fingerprint`, computed once per base by the caller."""
    mb = manifest.get("base_model") if isinstance(manifest.get("base_model"), dict) else {}
    want = mb.get("config_sha256")
    have = _config_hashes(base_dir / "config.json")
    if want:
        if want not in have:
            return [
                f"run {info.name!r}: adapter was trained on base {mb.get('path') or mb.get('name')!r} whose "
                f"config.json sha256 is {str(want)[:12]}..., but the bundled base {base_dir} has "
                f"{sorted(have)[0][:12] if have else '?'}...: a different base model (bundle the base the run was "
                "trained on)"
            ]
        return _weights_problems(info, mb, base_dir, base_weights)
    bmnp = (adapter_cfg or {}).get("base_model_name_or_path")
    run_keys = {_model_key(v) for v in (bmnp, mb.get("name"), mb.get("path"))} - {None}
    try:
        base_cfg = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    except ValueError:
        base_cfg = {}
    base_keys = {_model_key(v) for v in (str(base_dir.resolve()), base_cfg.get("_name_or_path"))} - {None}
    if not run_keys:
        return [
            f"run {info.name!r}: cannot tell which base the adapter needs (no base_model_name_or_path, no manifest base_model)"
        ]
    if run_keys.isdisjoint(base_keys):
        return [
            f"run {info.name!r}: adapter base_model_name_or_path={bmnp!r} (manifest base_model "
            f"{mb.get('name')!r}) differs from the bundled base {base_dir} ({sorted(base_keys)})"
        ]
    return []


def _weights_problems(info: RunInfo, mb: dict, base_dir: Path, have: str | None) -> list[str]:
    """Same config.json is not the same base: the weights fingerprint decides when the run has one."""
    want = mb.get("weights_fingerprint")
    if not want:
        return []
    if have == want:
        return []
    return [
        f"run {info.name!r}: adapter was trained on base {mb.get('path') or mb.get('name')!r} (weights "
        f"{want[7:19]}...), but the weights of the bundled base {base_dir} differ "
        f"({have[7:19] + '...' if have else 'none found'}): same config.json, a different checkpoint "
        "(bundle the base the run was trained on)"
    ]


def base_notes(info: RunInfo, manifest: dict) -> list[str]:
    """What the base check could not verify for an adapter run (runs from before weight fingerprints)."""
    mb = manifest.get("base_model") if isinstance(manifest.get("base_model"), dict) else {}
    if info.kind != "adapter" or mb.get("weights_fingerprint"):
        return []
    return [
        f"run {info.name!r} predates base weight fingerprints: only the bundled base's config.json "
        "(or its name) was checked against it"
    ]


def portable_adapter_notes(run_name: str, adapter_dir: Path) -> list[str]:
    """Make the copied adapter_config.json readable by peft 0.14 (competition image); say what changed."""
    from arena_core.models.portable import NEWER_PEFT_KEYS_DEFAULTS, make_adapter_portable

    notes = []
    dropped = make_adapter_portable(adapter_dir)
    if dropped:
        notes.append(
            f"run {run_name!r}: dropped default-valued keys peft 0.14 cannot read: {', '.join(dropped)}"
        )
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    left = sorted(k for k in NEWER_PEFT_KEYS_DEFAULTS if k in cfg)
    if left:
        notes.append(
            f"run {run_name!r}: adapter_config.json sets {', '.join(left)}, unknown to peft 0.14 (competition image)"
        )
    return notes
