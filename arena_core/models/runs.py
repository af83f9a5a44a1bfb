"""The run directory: what training leaves behind and what inference and bundles consume.

Layout::

    RUN_DIR/manifest.json   config, data fingerprint, library versions, base model identity, metrics
    RUN_DIR/config.yaml     the exact resolved RunConfig
    RUN_DIR/adapter/        LoRA adapter + classification head (peft), or
    RUN_DIR/merged/         full merged weights, or
    RUN_DIR/booster/        LightGBM text model (feature and stack runs: model.kind, no base model)
    RUN_DIR/tokenizer/      (transformer runs)

Inference compares the manifest's library versions with the running stack and says clearly
when they differ: a checkpoint that loads silently wrong is worse than one that fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from arena_core.config import RunConfig, config_from_dict, config_to_dict
from arena_core.data.json_records import read_json_object

MANIFEST = "manifest.json"
FORMAT = "arena_core.run/1"
TRACKED_PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "arena_core")


class RunError(FileNotFoundError):
    """A run directory that is missing pieces; the message names the path."""


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 over ids, texts and labels: the same data gives the same fingerprint."""
    h = hashlib.sha256()
    cols = [c for c in ("id", "prompt", "response_a", "response_b", "label") if c in frame.columns]
    for row in frame[cols].itertuples(index=False):
        h.update("\x1f".join("" if v is None or v is pd.NA else str(v) for v in row).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def file_sha256(path: Path) -> str | None:
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# Files that hold a checkpoint's weights (safetensors shards, pytorch_model*.bin, their indexes).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".index.json")
_FINGERPRINT_SPAN = 2**20  # bytes hashed at each end of a weight file


def weights_fingerprint(path: str | Path) -> str | None:
    """A cheap, stable identity of a checkpoint's weights (None when the folder has no weight files).

    SHA-256 over every weight file's name and size and the SHA-256 of its first and last MiB:
    seconds even for a 9B model, and different for a re-trained or re-quantised checkpoint of
    the same architecture (same config.json, which alone cannot tell two such bases apart).
    """
    path = Path(path)
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES) and not p.name.startswith(".")
    )
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(_FINGERPRINT_SPAN)
            fh.seek(max(0, size - _FINGERPRINT_SPAN))
            tail = fh.read(_FINGERPRINT_SPAN)
        h.update(f"{f.name}\x1f{size}\x1f".encode())
        h.update(hashlib.sha256(head).digest() + hashlib.sha256(tail).digest())
    return "sha256:" + h.hexdigest()


def base_model_identity(path: str | Path) -> dict:
    path = Path(path)
    return {
        "name": path.name,
        "path": str(path.resolve()),
        "config_sha256": file_sha256(path / "config.json"),
        "weights_fingerprint": weights_fingerprint(path) if path.is_dir() else None,
    }


def base_mismatch(manifest: dict, base: Path, where: str) -> str | None:
    """Why ``base`` is not the base a run was trained on (config.json, then weights), else None.

    ``where`` names the run in the message; both the training-time path and ``base`` are named.
    A manifest without a weights fingerprint (runs before it was recorded) checks config.json only.
    """
    mb = manifest.get("base_model") if isinstance(manifest.get("base_model"), dict) else {}
    trained_at = mb.get("path") or mb.get("name") or "?"
    want_cfg = mb.get("config_sha256")
    have_cfg = file_sha256(base / "config.json")
    if want_cfg and have_cfg != want_cfg:
        return (
            f"{where}: trained on base {trained_at} (config.json sha256 {want_cfg[:12]}...), but {base} has "
            f"config.json sha256 {str(have_cfg)[:12]}...: a different base model"
        )
    want_w = mb.get("weights_fingerprint")
    if want_w:
        have_w = weights_fingerprint(base)
        if have_w != want_w:
            return (
                f"{where}: trained on base {trained_at} (weights {want_w[7:19]}...), but the weights in {base} "
                f"differ ({str(have_w)[7:19] if have_w else 'none found'}...): same config, different checkpoint; "
                "use the base the run was trained on"
            )
    return None


def write_manifest(
    run_dir: Path, cfg: RunConfig, *, base_path, fingerprint: str, metrics: dict, extra=None
) -> dict:
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # feature and stack runs have no base model (base_path None): no key, so readers that
        # look for one (.get("base_model", {})) find none
        **({"base_model": base_model_identity(base_path)} if base_path else {}),
        "config": config_to_dict(cfg),
        "data_fingerprint": fingerprint,
        "versions": library_versions(),
        "metrics": metrics,
        "git_commit": git_commit(),
        **(extra or {}),
    }
    path = Path(run_dir) / MANIFEST
    tmp = path.with_name(MANIFEST + ".tmp")  # written whole, then renamed: never half a manifest
    try:
        tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def read_manifest(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run directory not found: {run_dir}")
    path = run_dir / MANIFEST
    if not path.is_file():
        raise RunError(f"{path}: missing; is {run_dir} a run directory written by 'arena train'?")
    return read_json_object(path, RunError)


# Config keys that differ between the runs of one recipe (its cv folds, their merged adapter, a run
# on every row) without making another model: what a stack input is matched by leaves them out.
_RECIPE_FREE_KEYS = {
    "model": ("path",),
    "lora": ("r", "alpha"),
    "train": ("fold", "select_best", "max_time", "n_folds"),
}


def recipe_identity(manifest: dict) -> str:
    """One string for "trained this way on this data": the config without its fold, path and
    inference settings, plus the data fingerprint. ``arena cv``'s folds, its merged folds and an
    ``arena train`` on the same files with the same config share it; a stack matches its inputs by it."""
    cfg = json.loads(json.dumps(manifest.get("config") or {}))
    cfg.pop("predict", None)
    for section, keys in _RECIPE_FREE_KEYS.items():
        for key in keys:
            (cfg.get(section) or {}).pop(key, None)
    text = json.dumps({"config": cfg, "data": manifest.get("data_fingerprint")}, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_run_config(run_dir: str | Path, manifest: dict | None = None) -> RunConfig:
    """The exact RunConfig a run was trained with, from its manifest."""
    manifest = manifest if manifest is not None else read_manifest(run_dir)
    where = Path(run_dir) / MANIFEST
    if not isinstance(manifest.get("config"), dict):
        raise RunError(
            f"{where}: has no 'config' object; the file is damaged or not written by 'arena train'"
        )
    return config_from_dict(manifest["config"], f"{where}:config")


def version_drift(manifest: dict) -> list[str]:
    """Human-readable lines for every tracked library whose version differs from training."""
    trained = manifest.get("versions", {})
    now = library_versions()
    lines = []
    for name in ("python", *TRACKED_PACKAGES):
        a, b = trained.get(name), now.get(name)
        if name == "arena_core" or a == b or a is None:
            continue
        major_a, major_b = str(a).split(".")[:2], str(b).split(".")[:2]
        kind = "differs" if major_a != major_b else "patch differs"
        lines.append(f"{name}: trained with {a}, running {b} ({kind})")
    return lines


def find_base(run_dir: Path, manifest: dict, base_dir: str | Path | None) -> Path:
    """The base checkpoint for an adapter run: ``base_dir``, else the one bundled beside the runs
    (``models/base/<name>/``), else the training-time path.

    The bundled base comes before the training-time path so that a bundle tested on the machine
    that trained it uses the base it carries, exactly as on Kaggle, not the one it was built from.
    """
    base = manifest.get("base_model", {})
    name = base.get("name", "")
    candidates = []
    if base_dir:
        candidates.append(Path(base_dir))
    if name:
        candidates += [run_dir.parent / "base" / name, run_dir.parent.parent / "base" / name]
    if base.get("path"):
        candidates.append(Path(base["path"]))
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    raise RunError(
        f"{run_dir}: base model {name!r} not found; looked in {[str(c) for c in candidates]}. "
        "Bundle the base with 'build_dataset.py --base DIR' (it lands in models/base/<name>/), or pass "
        "'arena predict --base-dir DIR' (base_dir= in Python)."
    )


def adapter_to_continue(run_dir: str | Path, base_path: str | Path) -> Path:
    """``RUN_DIR/adapter`` of a finished run, to continue training (``train.init_from``): stage
    after stage. Refused when it was trained on another base than ``base_path``."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise RunError(f"train.init_from={run_dir}: has no adapter/ (only LoRA runs can be continued)")
    problem = base_mismatch(manifest, Path(base_path), f"train.init_from={run_dir}")
    if problem:
        raise RunError(problem)
    return adapter


@dataclass
class LoadedRun:
    name: str
    run_dir: Path
    model: object
    tokenizer: object
    config: RunConfig
    manifest: dict
    drift: list[str]


def load_run(
    run_dir: str | Path,
    device=None,
    base_dir: str | Path | None = None,
    quiet: bool = False,
    device_map: dict | str | None = None,
    max_memory: dict | None = None,
) -> LoadedRun:
    """Load a trained run for inference (eval mode, on ``device``), warning about version drift.

    ``device_map``/``max_memory``: split the model layer-wise over several GPUs instead.
    """
    from arena_core.models.capabilities import fit_max_length
    from arena_core.models.loading import load_classifier
    from arena_core.models.tokenizer import load_tokenizer

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    cfg = read_run_config(run_dir, manifest)
    drift = version_drift(manifest)
    if drift and not quiet:
        print(f"[{run_dir.name}] library versions differ from training:\n  " + "\n  ".join(drift))
    tok_dir = run_dir / "tokenizer"
    if (run_dir / "merged").is_dir():
        cfg.model.path = str(run_dir / "merged")
        model, _ = load_classifier(
            cfg.model, None, device=device, for_training=False, device_map=device_map, max_memory=max_memory
        )
    elif (run_dir / "adapter").is_dir():
        base = find_base(run_dir, manifest, base_dir)
        problem = base_mismatch(manifest, base, f"run {run_dir}")
        if problem:
            raise RunError(problem)
        if not manifest.get("base_model", {}).get("weights_fingerprint") and not quiet:
            print(
                f"[{run_dir.name}] note: this run predates base weight fingerprints; only the config.json "
                f"of the base {base} was checked"
            )
        cfg.model.path = str(base)
        model, _ = load_classifier(
            cfg.model,
            None,
            device=device,
            for_training=False,
            adapter_dir=str(run_dir / "adapter"),
            device_map=device_map,
            max_memory=max_memory,
        )
    else:
        raise RunError(f"{run_dir}: neither adapter/ nor merged/ found")
    tokenizer = load_tokenizer(tok_dir if tok_dir.is_dir() else cfg.model.path)
    # The scorer pads with this tokenizer's pad id, so the model must look for that one.
    model.config.pad_token_id = tokenizer.pad_token_id
    cfg.encoding.max_length = fit_max_length(
        cfg.encoding.max_length, model, f"{run_dir.name}: encoding.max_length"
    )
    model.eval()
    return LoadedRun(run_dir.name, run_dir, model, tokenizer, cfg, manifest, drift)


def locate_base(run_dir: str | Path, extra: list | tuple = ()) -> Path | None:
    """The base checkpoint an adapter run loads: where its manifest / bundle says, else the folder
    among ``extra`` with the config.json and weights the manifest records (a base mounted somewhere new).

    ``None`` for a merged run (it carries its weights); :class:`RunError` when nothing fits.
    """
    run_dir = Path(run_dir)
    if (run_dir / "merged").is_dir():
        return None
    manifest = read_manifest(run_dir)
    try:
        return find_base(run_dir, manifest, None)
    except RunError as exc:
        want = manifest.get("base_model", {}).get("config_sha256")
        # same config.json and (when recorded) the same weights fingerprint: the base itself
        hits = [Path(e) for e in extra if want and base_mismatch(manifest, Path(e), "") is None]
        if hits:
            return hits[0]
        raise RunError(
            f"{exc} Also looked among {[str(e) for e in extra]} for config.json sha256 {str(want)[:12]}..."
        ) from None
