"""The notebook's install step after the arena_core wheel: carried wheels, without re-resolving the image.

Why not ``pip install --no-index arena_core bitsandbytes``: pip then re-checks arena_core's whole
dependency tree against the image, offline, and one unmet requirement anywhere in that tree aborts
the notebook although nothing arena_core needs is missing (reproduced: the image's torch declaring
``setuptools>=77`` while the image holds an older setuptools). It also replaced the image's own,
newer bitsandbytes with the carried one. So every wheel goes in with ``--no-deps``, each carried
wheel by a rule (:func:`plan_wheels`), and what will actually run is then imported and printed,
with its drift from the versions each run was trained with. A model the installed transformers does
not know (a Gemma-3 base on the competition-era 4.47) stops the notebook here, naming the
model_type and the version it needs (:func:`check_architectures`), not in a loader's traceback later.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from arena_core.kaggle.mounts import INPUT_ROOT, Mounts, discover
from arena_core.kaggle.wheels import canonical_name, version_key

__all__ = [
    "TRANSFORMERS_4_BNB_MIN",
    "WheelPlan",
    "check_architectures",
    "import_check",
    "install_wheels",
    "model_configs",
    "plan_wheels",
    "prepare",
    "required_bitsandbytes",
    "stack_report",
]

# transformers 4.x (the competition-era 4.47 included) has no BITSANDBYTES_MIN_VERSION; its 4-bit
# quantizer refuses bitsandbytes older than this.
TRANSFORMERS_4_BNB_MIN = "0.39.0"
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._]*)-([^-]+)-")


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def required_bitsandbytes(python: str = sys.executable) -> str | None:
    """The bitsandbytes version the image's transformers requires (None: no transformers).

    Asked in a fresh interpreter so the notebook process does not import transformers before the
    wheels are in place (it caches what it finds).
    """
    code = (
        "import importlib.util as u\n"
        "if u.find_spec('transformers') is None: print('NONE')\n"
        "else:\n"
        "    import transformers.utils.import_utils as m\n"
        "    print(getattr(m, 'BITSANDBYTES_MIN_VERSION', 'TRANSFORMERS4'))\n"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    out = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else []
    if not out or out[0] == "NONE":
        return None
    return TRANSFORMERS_4_BNB_MIN if out[0] == "TRANSFORMERS4" else out[0]


@dataclass
class WheelPlan:
    """What to do with one carried wheel, and why (printed in the notebook)."""

    wheel: Path
    name: str
    carried: str
    image: str | None
    install: bool
    why: str


def plan_wheels(
    wheels: list[Path], image_versions: dict[str, str | None], bnb_required: str | None
) -> list[WheelPlan]:
    """Which carried wheels to install (never arena_core: the install cell did that).

    * the image lacks the package: install the carried wheel;
    * ``bitsandbytes`` in the image: keep it when it is at least ``bnb_required`` (what the
      image's transformers asks for), else install the carried one;
    * anything else in the image: keep the image's unless it is older than the carried pin.
    """
    plans = []
    for wheel in sorted(wheels):
        m = _NAME.match(wheel.name)
        if not m or canonical_name(m.group(1)) == "arena-core":
            continue
        name, carried = canonical_name(m.group(1)), m.group(2)
        have = image_versions.get(name)
        if have is None:
            plans.append(WheelPlan(wheel, name, carried, None, True, "not in the image"))
        elif name == "bitsandbytes" and bnb_required:
            ok = version_key(have) >= version_key(bnb_required)
            why = f"the image's {have} {'>=' if ok else '<'} {bnb_required} required by transformers"
            plans.append(WheelPlan(wheel, name, carried, have, not ok, why))
        else:
            newer = version_key(have) >= version_key(carried)
            why = f"the image has {have}" + ("" if newer else f", older than the carried {carried}")
            plans.append(WheelPlan(wheel, name, carried, have, not newer, why))
    return plans


def install_wheels(paths: list[Path], python: str = sys.executable) -> str:
    """``pip install --no-index --no-deps`` these wheel files; returns pip's output, raises on failure."""
    if not paths:
        return ""
    cmd = [python, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"]
    proc = subprocess.run([*cmd, *map(str, paths)], capture_output=True, text=True)
    text = (proc.stdout[-3000:] + proc.stderr[-3000:]).strip()
    if proc.returncode != 0:
        raise RuntimeError(f"pip install --no-deps {' '.join(p.name for p in paths)} failed:\n{text}")
    importlib.invalidate_caches()
    return text


def import_check(
    required=("torch", "transformers", "peft"), optional=("accelerate", "bitsandbytes")
) -> list[str]:
    """Import the stack that will run; a required module that fails raises, an optional one is reported."""
    notes = []
    for name in (*required, *optional):
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken native library raises anything
            msg = f"import {name} failed: {type(exc).__name__}: {exc}"
            if name in required:
                raise RuntimeError(msg + " (arena_core cannot run without it)") from exc
            notes.append(msg + ("; 4/8-bit (QLoRA) runs will fail" if name == "bitsandbytes" else ""))
    return notes


def stack_report(run_dirs: list[Path] = ()) -> list[str]:
    """One line with the versions that will run, then each run's drift from its manifest."""
    names = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "arena_core")
    parts = [f"python {platform.python_version()}"] + [f"{n} {installed_version(n) or '-'}" for n in names]
    lines = ["stack: " + ", ".join(parts)]
    try:
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        lines.append(f"cuda {torch.version.cuda or '-'}; GPUs: {', '.join(gpus) if gpus else 'none (CPU)'}")
    except Exception as exc:  # torch missing or broken: import_check said so already
        lines.append(f"cuda: unknown ({type(exc).__name__})")
    from arena_core.models.runs import read_manifest, version_drift

    for run in run_dirs:
        try:
            drift = version_drift(read_manifest(run))
        except (OSError, ValueError) as exc:
            lines.append(f"[{Path(run).name}] manifest unreadable: {exc}")
            continue
        lines.append(
            f"[{Path(run).name}] "
            + ("same versions as training" if not drift else "drift from training: " + "; ".join(drift))
        )
    return lines


def model_configs(mounts: Mounts, runs: Sequence[str | os.PathLike] = ()) -> dict[str, Path]:
    """The config.json of each model the chosen runs load (label -> file): a merged run's own, an
    adapter run's base (where ``arena predict`` will find it). ``runs`` as ``RUNS`` ([] = the bundle's)."""
    from arena_core.kaggle.steps import resolve_runs
    from arena_core.models.runs import RunError, locate_base

    try:
        chosen = resolve_runs(mounts, runs)
    except FileNotFoundError:
        return {}  # the predict step says what is missing
    configs = {}
    for run in chosen:
        if (run / "merged" / "config.json").is_file():
            configs[f"run {run.name} (merged/)"] = run / "merged" / "config.json"
        elif (run / "adapter").is_dir():
            try:
                base = locate_base(run, mounts.bases)
            except (RunError, OSError, ValueError):
                continue  # the predict step reports a base it cannot find
            if base is not None:
                configs[f"run {run.name} (base {base})"] = base / "config.json"
    return configs


def check_architectures(
    mounts: Mounts, runs: Sequence[str | os.PathLike] = (), transformers: str | None = None
) -> None:
    """Stop before any model loads when the installed transformers (``transformers``: that version
    instead) does not know a model the runs need (:data:`~arena_core.kaggle.bases.MIN_TRANSFORMERS`)."""
    from arena_core.kaggle.bases import too_new

    have = transformers or installed_version("transformers")
    if have is None:
        return  # import_check has said transformers is missing
    found = too_new(model_configs(mounts, runs), have)
    if not found:
        return
    need = max((n for _, _, n in found), key=version_key)
    raise RuntimeError(
        f"transformers {have} in this image cannot load "
        + "; ".join(f"{label}: model_type {mt!r} needs transformers >= {n}" for label, mt, n in found)
        + f". Run the notebook on an image with transformers >= {need} (notebook settings -> Environment -> "
        "'Always use latest environment', or build_dataset.py --kernel-dir ... --docker-pinning latest), or "
        "bundle runs on a base this transformers knows"
    )


def prepare(
    input_root: str | os.PathLike = INPUT_ROOT,
    competition: str | os.PathLike | None = None,
    bundle: str | os.PathLike | None = None,
    *,
    install: bool = True,
    need_competition: bool = True,
    need_bundle: bool = True,
    runs: Sequence[str | os.PathLike] | None = None,
    python: str = sys.executable,
) -> Mounts:
    """Find the mounts, install the bundle's carried wheels by :func:`plan_wheels` (``install``),
    import-check the stack and print it with each bundled run's drift. With ``runs`` (the inference
    notebook's ``RUNS``), :func:`check_architectures` stops on a model this transformers cannot load.
    Returns the mounts."""
    mounts = discover(
        input_root,
        competition=competition,
        bundle=bundle,
        need_competition=need_competition,
        need_bundle=need_bundle,
    )
    print(mounts.summary())
    if install and mounts.bundle is not None:
        wheels = sorted((mounts.bundle / "wheels").glob("*.whl"))
        names = {canonical_name(m.group(1)) for w in wheels if (m := _NAME.match(w.name))}
        image = {n: installed_version(n) for n in names}
        required = required_bitsandbytes(python) if "bitsandbytes" in names else None
        plans = plan_wheels(wheels, image, required)
        for p in plans:
            verb = f"install the carried {p.carried}" if p.install else f"keep the image's {p.image}"
            print(f"{p.name}: {verb} ({p.why})")
        out = install_wheels([p.wheel for p in plans if p.install], python)
        if out:
            print(out)
    for note in import_check():
        print(f"WARNING: {note}")
    bundled = [r for r in mounts.runs if mounts.bundle is not None and mounts.bundle in r.parents]
    for line in stack_report(bundled):
        print(line)
    if runs is not None:
        check_architectures(mounts, runs)
    return mounts
