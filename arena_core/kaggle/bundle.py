"""Offline Kaggle dataset bundle: wheels + run weights + ``dataset-metadata.json`` + ``BUNDLE.md``.

A no-internet Kaggle notebook cannot ``pip install`` from PyPI, so everything the library needs
that the Kaggle image lacks travels as wheels inside a Kaggle *dataset*, next to the trained runs::

    OUT/wheels/                      arena_core-<v>-py3-none-any.whl + pinned extras (bitsandbytes)
    OUT/models/<run_name>/           manifest.json, config.yaml, adapter/ | merged/, tokenizer/ (unless
                                     it is the bundled base's own: each file is carried once)
    OUT/models/base/<name>/          optional base checkpoint the adapters were trained on
    OUT/dataset-metadata.json        what ``kaggle datasets create`` reads
    OUT/BUNDLE.md                    every file with size + SHA-256, and how to install offline

Every check runs *before* anything is uploaded and stops with a :class:`BundleError` that says
what is wrong and how to fix it: missing run directories or manifests, adapters whose base model
differs from the bundled base, wheels built for another Python or platform, placeholder ids,
unknown licences, bundles over a size limit.

This module assembles the folder (:func:`build_bundle`); each check lives with what it judges:
:mod:`~arena_core.kaggle.wheels` (wheel tags, pins, building and downloading wheels),
:mod:`~arena_core.kaggle.metadata` (metadata, judged by the kaggle package's own code),
:mod:`~arena_core.kaggle.run_checks` (run directories and their base model),
:mod:`~arena_core.kaggle.listing` (BUNDLE.md, :func:`verify_bundle`) and
:mod:`~arena_core.kaggle.upload` (:func:`upload_bundle`). Their public names import from here too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from arena_core import __version__
from arena_core.kaggle.bases import architecture_problems, check_bases, point_manifest_at_base
from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.listing import (
    BUNDLE_MD,
    BundleFile,
    BundleReport,
    check_size,
    list_files,
    verify_bundle,
    write_bundle_md,
)
from arena_core.kaggle.metadata import (
    COMPETITION,
    DATASET_METADATA,
    KAGGLE_DATASET_LICENSES,
    MetadataCheck,
    check_metadata,
    dataset_metadata,
    write_kernel_metadata,
)
from arena_core.kaggle.metadata import (
    KERNEL_METADATA as KERNEL_METADATA,
)  # re-exported: lived here before the split
from arena_core.kaggle.run_checks import (
    RunInfo,
    inspect_run,
    portable_adapter_notes,
    tree_size,
)
from arena_core.kaggle.shared_files import drop_shared_tokenizers
from arena_core.kaggle.upload import find_kaggle_credentials, upload_bundle
from arena_core.kaggle.wheels import (
    COPY_IGNORE,
    KAGGLE_PLATFORM,
    WheelTags,
    build_arena_core_wheel,
    check_wheels,
    download_wheels,
    expand_platforms,
    find_source_tree,
    parse_wheel_filename,
    python_minor,
    read_requirements,
    wheel_mismatch,
)
from arena_core.kaggle.wheels import (
    MIN_PYTHON_MINOR as MIN_PYTHON_MINOR,
)  # re-exported: lived here before the split
from arena_core.kaggle.wheels import (
    canonical_name as canonical_name,
)  # re-exported: lived here before the split

__all__ = [
    "BundleError",
    "BundleFile",
    "BundleReport",
    "COMPETITION",
    "KAGGLE_DATASET_LICENSES",
    "KAGGLE_PLATFORM",
    "MetadataCheck",
    "RunInfo",
    "WheelTags",
    "build_arena_core_wheel",
    "build_bundle",
    "check_metadata",
    "check_wheels",
    "expand_platforms",
    "find_kaggle_credentials",
    "parse_wheel_filename",
    "read_requirements",
    "upload_bundle",
    "verify_bundle",
    "wheel_mismatch",
    "write_kernel_metadata",
]


def _default_title(dataset_id: str) -> str:
    """``jdoe/arena-core-bundle`` -> ``Arena Core Bundle``, within Kaggle's 50 characters."""
    slug = dataset_id.split("/")[-1] if isinstance(dataset_id, str) else "bundle"
    return " ".join(w.capitalize() for w in re.split(r"[-_]+", slug) if w)[:50] or "Arena Core Bundle"


def _as_list(value) -> list[Path]:
    """``include_base`` as a list: ``None``, one folder, or several."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value]


def _resolve_requirements(
    requirements: str | os.PathLike | None, repo_root: str | os.PathLike | None
) -> Path | None:
    """The pins file as given, else under the source tree (so the default name works from anywhere)."""
    if requirements is None or str(requirements) == "":
        return None
    req = Path(requirements)
    if req.is_file() or req.is_absolute():
        return req
    with contextlib.suppress(BundleError):
        candidate = find_source_tree(repo_root) / req
        if candidate.is_file():
            return candidate
    return req


def build_bundle(
    out_dir: str | os.PathLike,
    runs: Sequence[str | os.PathLike],
    *,
    python: str = "3.10",
    platform: str | Sequence[str] = KAGGLE_PLATFORM,
    requirements: str | os.PathLike | None = "requirements-offline.txt",
    include_base: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    dataset_id: str = "user/slug",
    title: str | None = None,
    license_name: str = "apache-2.0",
    max_size_gb: float | None = None,
    download: bool = True,
    wheel_dir: str | os.PathLike | None = None,
    repo_root: str | os.PathLike | None = None,
    overwrite: bool = False,
    allow_newer_arch: bool = False,
) -> BundleReport:
    """Assemble an offline Kaggle dataset folder at ``out_dir``; every check runs first.

    * ``runs``: run directories (manifest.json, config.yaml, adapter/ or merged/ and tokenizer/, or
      booster/ for a feature or stack run);
      each lands in ``models/<dir name>/``. Only the contract pieces and small top-level files
      are carried (trainer checkpoints and logs stay behind; the report says what was left), and
      each file once: a run's ``tokenizer/`` that is its bundled base's own stays behind
      (:mod:`~arena_core.kaggle.shared_files`; the run then loads the base's).
    * ``include_base``: one base checkpoint or several (an ensemble over different backbones),
      each copied to ``models/base/<model_type>-<hash>/`` (its identity: config.json + a weights
      fingerprint, never the mount's last folder such as ``2``). Each adapter run is matched to
      its base by the config.json SHA-256 its manifest records (older runs without it: by name,
      one base only), and the bundled copy of its manifest names that folder (so
      ``runs.load_run`` finds it). Files are copied as they are: weights keep their own precision.
    * wheels: the arena_core wheel (from ``wheel_dir`` when one is there, else built from the
      source tree), plus the exact pins in ``requirements`` (``None``: none): downloaded with
      ``pip download --only-binary=:all: --no-deps`` for ``python``/``platform`` when
      ``download``, else taken from ``wheel_dir``. Every wheel's tags must fit the target.
    * ``dataset_id``/``title``/``license_name`` make ``dataset-metadata.json``, validated by
      the kaggle package (:func:`check_metadata`) before anything is copied.

    The bundle is assembled in a scratch folder beside ``out_dir`` and renamed into place at
    the end, so a failed build leaves nothing behind. ``overwrite`` replaces an existing
    bundle (only a folder that holds a BUNDLE.md or dataset-metadata.json). A base (or merged
    run) whose architecture the target image's transformers does not know is refused before
    anything is copied (:func:`~arena_core.kaggle.bases.architecture_problems`), unless
    ``allow_newer_arch``.
    """
    out = Path(out_dir)
    minor = python_minor(python)
    python = f"3.{minor}"
    title = title or _default_title(dataset_id)
    notes: list[str] = []

    # 1. metadata first: a placeholder id or bad licence stops before any copying
    description = f"Offline arena_core {__version__} bundle (wheels for CPython {python}, trained runs)."
    check_metadata(dataset_metadata(dataset_id, title, license_name, description), "dataset")

    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise BundleError(
                f"{out} exists and is not empty; choose another --out or pass --overwrite (overwrite=True)"
            )
        if not ((out / BUNDLE_MD).is_file() or (out / DATASET_METADATA).is_file()):
            raise BundleError(f"{out} does not look like a bundle (no {BUNDLE_MD}); refusing to replace it")

    # 2. runs and base
    problems: list[str] = []
    infos: list[tuple[RunInfo, dict, dict | None]] = []
    names: set[str] = set()
    for r in runs:
        run = Path(r)
        if not run.is_dir():
            problems.append(f"run directory not found: {run}")
            continue
        info, manifest, adapter_cfg, run_problems = inspect_run(run)
        problems += run_problems
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", info.name) or info.name == "base":
            problems.append(
                f"{run}: run name {info.name!r} must be [A-Za-z0-9._-] and not 'base' (models/base/ is the base model)"
            )
        if info.name in names:
            problems.append(f"two runs are named {info.name!r}; rename one directory")
        names.add(info.name)
        infos.append((info, manifest, adapter_cfg))
    base_dirs = _as_list(include_base)
    bases, base_of, base_notes, base_problem_list = check_bases(base_dirs, infos)
    problems += base_problem_list
    notes += base_notes
    configs = {f"base {b.path}": b.path / "config.json" for b in bases}
    configs.update(
        {f"run {i.name}": i.source / "merged" / "config.json" for i, _, _ in infos if i.kind == "merged"}
    )
    too_new = architecture_problems(configs, python)
    if allow_newer_arch:
        notes += [f"--allow-newer-arch: {p.split(';')[0]}" for p in too_new]
    else:
        problems += too_new
    for info, manifest, _ in infos:
        if info.kind == "adapter" and not bases:
            notes.append(
                f"run {info.name!r} is an adapter: attach its base {info.base_model!r} to the notebook too"
            )
        skipped = sorted(
            p.name for p in info.source.iterdir() if p.name not in info.items and not p.name.startswith(".")
        )
        if skipped:
            notes.append(f"run {info.name!r}: not carried: {', '.join(skipped)}")
        ver = manifest.get("versions", {}) if isinstance(manifest.get("versions"), dict) else {}
        trained_py = str(ver.get("python") or "")
        if trained_py and not trained_py.startswith(python + ".") and trained_py != python:
            notes.append(f"run {info.name!r} was trained on Python {trained_py}; the bundle targets {python}")
    if problems:
        raise BundleError("cannot bundle these runs:\n  - " + "\n  - ".join(problems))
    # each file once: a run's tokenizer/ that is its bundled base's own stays behind
    notes += drop_shared_tokenizers(
        [i for i, _, _ in infos], {r: (b.name, b.path) for r, b in base_of.items()}
    )

    req_path = _resolve_requirements(requirements, repo_root)
    pins = read_requirements(req_path) if req_path is not None else []
    early = {f"models/{i.name}/": i.nbytes for i, _, _ in infos}  # fail before building/downloading wheels
    for b in bases:
        early[f"models/base/{b.name}/"] = tree_size(b.path)
    check_size(early, max_size_gb)

    # 3. assemble in a scratch folder beside out_dir
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        wheels = stage / "wheels"
        wheels.mkdir()
        if wheel_dir and not Path(wheel_dir).is_dir():
            raise BundleError(f"wheel_dir not found: {wheel_dir}")
        supplied = sorted(Path(wheel_dir).glob("*.whl")) if wheel_dir else []
        own = [w for w in supplied if parse_wheel_filename(w).name == "arena-core"]
        for w in own:
            if parse_wheel_filename(w).version != __version__:
                raise BundleError(
                    f"{w}: stale arena_core wheel (version {parse_wheel_filename(w).version}, source is {__version__})"
                )
        if not own:
            build_arena_core_wheel(wheels, repo_root=repo_root)
        for w in supplied:
            shutil.copy2(w, wheels / w.name)
        if download and pins:
            missing_req = [
                f"{n}=={v}"
                for n, v in pins
                if not any(
                    parse_wheel_filename(w).name == n and parse_wheel_filename(w).version == v
                    for w in wheels.glob("*.whl")
                )
            ]
            if missing_req:
                req_tmp = stage / ".requirements.txt"
                req_tmp.write_text("\n".join(missing_req) + "\n", encoding="utf-8")
                download_wheels(wheels, req_tmp, python, platform)
                req_tmp.unlink()
        have = {(parse_wheel_filename(w).name, parse_wheel_filename(w).version) for w in wheels.glob("*.whl")}
        unmet = [f"{n}=={v}" for n, v in pins if (n, v) not in have]
        if unmet:
            raise BundleError(
                f"no wheel for {', '.join(unmet)} (pinned in {req_path}); download them (download=True / drop "
                "--no-download) or put them in wheel_dir"
            )
        wheel_files = sorted(wheels.glob("*.whl"))
        check_wheels(wheel_files, python, platform)

        parts = {f"wheels/{w.name}": w.stat().st_size for w in wheel_files}
        parts.update({f"models/{i.name}/": i.nbytes for i, _, _ in infos})
        for b in bases:
            parts[f"models/base/{b.name}/"] = tree_size(b.path)
        check_size(parts, max_size_gb)

        # 4. copy runs and base
        models = stage / "models"
        if infos or bases:  # a wheels-only bundle has no models/ (an empty folder would upload oddly)
            models.mkdir()
        for info, _, _ in infos:
            dest = models / info.name
            dest.mkdir()
            for item in info.items:
                src = info.source / item
                if src.is_dir():
                    shutil.copytree(src, dest / item, ignore=COPY_IGNORE)
                else:
                    shutil.copy2(src, dest / item)
            if info.kind == "adapter" and (dest / "adapter" / "adapter_config.json").is_file():
                notes += portable_adapter_notes(info.name, dest / "adapter")
            if info.name in base_of:
                point_manifest_at_base(dest / "manifest.json", base_of[info.name])
        for b in bases:
            shutil.copytree(b.path, models / "base" / b.name, ignore=COPY_IGNORE)

        # 5. metadata, validated again where it now lives; then the listing
        meta = dataset_metadata(dataset_id, title, license_name, description)
        (stage / DATASET_METADATA).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        check_metadata(stage / DATASET_METADATA, "dataset")
        report = BundleReport(
            out,
            dataset_id,
            title,
            python,
            platform if isinstance(platform, str) else list(platform),
            [i for i, _, _ in infos],
            [b.name for b in bases],
            [w.name for w in wheel_files],
            list_files(stage),
            notes,
        )
        header = {
            "format": 1,
            "arena_core": __version__,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dataset_id": dataset_id,
            "python": python,
            "platform": report.platform,
            "runs": [i.name for i in report.runs],
            "base": bases[0].name if bases else None,
            "bases": {b.name: sorted(r for r, x in base_of.items() if x is b) for b in bases},
            "pins": [f"{n}=={v}" for n, v in pins],
            "max_size_gb": max_size_gb,
        }
        write_bundle_md(stage, report, header, pins)
        check_size({"bundle": report.total_bytes + (stage / BUNDLE_MD).stat().st_size}, max_size_gb)

        # 6. into place
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        stage.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return report
