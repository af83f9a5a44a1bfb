"""Kaggle metadata files (``dataset-metadata.json``, ``kernel-metadata.json``), judged offline.

A bad id, title or licence is otherwise only reported by ``kaggle datasets create`` / ``kaggle
kernels push``, after the bundle is built. So metadata is judged by the ``kaggle`` package's
*own* validation code, run without network (:mod:`~arena_core.kaggle.metadata_dry_run`); our own
rules (:mod:`~arena_core.kaggle.metadata_rules`) only add what the package does not check
locally: placeholder ids, the licence name, ``enable_internet: false``. :func:`check_metadata`
runs both, in named steps, and reports every problem at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.metadata_dry_run import (
    DATASET_METADATA,
    KERNEL_METADATA,
    dry_run_api,
    push_dry_run,
    slug_problems,
)
from arena_core.kaggle.metadata_rules import (
    KAGGLE_DATASET_LICENSES,
    MACHINE_SHAPES,
    bundle_source_problems,
    hardware_problems,
    internet_problems,
    kernel_source_problems,
    licence_problems,
    placeholder_problem,
)

__all__ = [
    "COMPETITION",
    "COMPETITIONS",
    "DATASET_METADATA",
    "DEFAULT_MACHINE_SHAPE",
    "KAGGLE_DATASET_LICENSES",
    "KERNEL_METADATA",
    "MACHINE_SHAPES",
    "MetadataCheck",
    "check_kernel_sources",
    "check_metadata",
    "competition_slug",
    "dataset_metadata",
    "hardware_problems",
    "kernel_hardware",
    "write_kernel_metadata",
]

COMPETITION = "wsdm-cup-multilingual-chatbot-arena"  # the kernel's default competition source
COMPETITIONS = {"wsdm": COMPETITION, "lmsys": "lmsys-chatbot-arena"}

# GPU T4 x2: without machine_shape, enable_gpu alone may land on a P100 (sm_60), for which today's
# image's CUDA build has no kernels ("no kernel image is available for execution on the device").
DEFAULT_MACHINE_SHAPE = "NvidiaTeslaT4"


@dataclass
class MetadataCheck:
    """Metadata that passed, with what kaggle printed while checking it (worth showing the user)."""

    kind: str
    metadata: dict
    warnings: list[str] = field(default_factory=list)


def _load_metadata(path_or_dict: str | os.PathLike | dict, kind: str) -> tuple[dict, Path | None, str]:
    if isinstance(path_or_dict, dict):
        return dict(path_or_dict), None, f"{kind} metadata"
    path = Path(path_or_dict)
    if path.is_dir():
        path = path / (DATASET_METADATA if kind == "dataset" else KERNEL_METADATA)
    if not path.is_file():
        raise BundleError(f"metadata file not found: {path}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise BundleError(f"{path}: must hold a JSON object")
    return meta, path.parent, str(path)


def check_metadata(
    path_or_dict: str | os.PathLike | dict,
    kind: str = "dataset",
    *,
    folder: str | os.PathLike | None = None,
    require_offline: bool = True,
) -> MetadataCheck:
    """Validate ``dataset-metadata.json`` / ``kernel-metadata.json`` as ``kaggle`` would, offline.

    What runs, from the kaggle package (no credentials, no network):

    * ``KaggleApi.validate_dataset_string`` / ``validate_kernel_string`` on ids and sources;
    * ``KaggleApi.dataset_create_new`` and ``dataset_create_version`` (dataset) or
      ``kernels_push`` (kernel), up to the first network call, which is replaced by a stop
      signal: their local checks (id/slug/title lengths, exactly one licence, default
      ``INSERT_*`` values, subtitle length, resources on disk, language, kernel type, code file
      exists, booleans, pinning type, source formats) are the ones that judge;
    * ``KaggleApi._validate_slug_syntax`` (when the installed version has it) on owner and slug.

    Added on top: placeholder ids (``user/slug``, ``YOUR_USERNAME/...``), the licence name
    (Kaggle's documented list: :data:`KAGGLE_DATASET_LICENSES`) and, for kernels with
    ``require_offline``, an explicit ``enable_internet: false`` (kaggle defaults it to *true*).

    ``folder`` is where ``code_file`` / ``resources`` live (default: the metadata file's folder;
    for a dict without ``folder`` the kernel code file is not checked). Returns the metadata and
    kaggle's printed warnings; raises :class:`BundleError` listing every problem found.
    """
    if kind not in ("dataset", "kernel"):
        raise ValueError(f"kind must be 'dataset' or 'kernel', not {kind!r}")
    meta, file_folder, label = _load_metadata(path_or_dict, kind)
    folder = Path(folder) if folder is not None else file_folder
    ref = meta.get("id")
    api = dry_run_api(ref.split("/")[0] if isinstance(ref, str) else "")

    problems, id_ok = _id_problems(api, ref, kind)
    if kind == "dataset":
        problems += licence_problems(meta)
    else:
        problems += kernel_source_problems(meta) + hardware_problems(meta)
        if require_offline:
            problems += internet_problems(meta, api)
    warnings: list[str] = []
    if id_ok or ref is None:  # kaggle's create/push refuses a bad id before anything else it checks
        found, warnings = push_dry_run(api, meta, kind, folder)
        problems += [p for p in found if p not in problems]
    if problems:
        raise BundleError(f"{label} is not valid:\n  - " + "\n  - ".join(problems))
    return MetadataCheck(kind, meta, warnings)


def check_kernel_sources(path_or_dict: str | os.PathLike | dict, dataset_id: str) -> None:
    """Refuse a kernel-metadata.json that does not attach a competition and the bundle ``dataset_id``
    (:func:`~arena_core.kaggle.metadata_rules.bundle_source_problems`), in one line."""
    meta, _, label = _load_metadata(path_or_dict, "kernel")
    problems = bundle_source_problems(meta, dataset_id)
    if problems:
        raise BundleError(f"{label}: " + "; ".join(problems))


def _id_problems(api: Any, ref: Any, kind: str) -> tuple[list[str], bool]:
    """The id judged by kaggle's validator and slug syntax, and by our placeholder rule (listed first).

    Returns (problems, whether the id is well-formed enough for kaggle's push/create dry run).
    """
    problems: list[str] = []
    id_ok = True
    if ref is not None:
        if not isinstance(ref, str):
            problems.append(f"id must be a string 'owner/slug', not {ref!r}")
            id_ok = False
        else:
            validator = api.validate_dataset_string if kind == "dataset" else api.validate_kernel_string
            try:
                validator(ref)
            except ValueError as exc:
                problems.append(f"kaggle: {exc}")
                id_ok = False
            if id_ok and "/" not in ref:  # some kaggle versions take a bare slug (owner from config)
                problems.append(f"id {ref!r} needs the owner: '{{username}}/{{slug}}'")
                id_ok = False
    id_hint = (
        "e.g. 'jdoe/arena-core-bundle': build_dataset.py --dataset-id USER/SLUG"
        if kind == "dataset"
        else "e.g. 'jdoe/arena-core-inference': build_dataset.py --kernel-dir DIR writes it from --dataset-id"
    )
    placeholder = placeholder_problem(ref, "id", id_hint)
    if placeholder:
        problems.insert(0, placeholder)
    if id_ok and isinstance(ref, str):
        problems += slug_problems(api, ref)
    return problems, id_ok


def dataset_metadata(dataset_id: str, title: str, license_name: str, description: str | None = None) -> dict:
    """The ``dataset-metadata.json`` content ``kaggle datasets create`` needs, one licence."""
    meta: dict[str, Any] = {"id": dataset_id, "title": title, "licenses": [{"name": license_name}]}
    if description:
        meta["description"] = description
    return meta


def write_kernel_metadata(
    path: str | os.PathLike,
    *,
    kernel_id: str,
    title: str,
    code_file: str = "infer_notebook.ipynb",
    dataset_sources: Sequence[str],
    competition_sources: Sequence[str] = (COMPETITION,),
    enable_gpu: bool = True,
    is_private: bool = True,
    kernel_sources: Sequence[str] = (),
    model_sources: Sequence[str] = (),
    validate: bool = True,
    machine_shape: str | None = DEFAULT_MACHINE_SHAPE,
    docker_image: str | None = None,
    docker_image_pinning_type: str | None = None,
    enable_internet: bool = False,
) -> Path:
    """Write ``kernel-metadata.json`` for a notebook, internet explicitly off by default.

    ``path`` is the file (it must be named ``kernel-metadata.json``: that is the only name
    ``kaggle kernels push`` reads) or its folder. ``machine_shape`` asks for the accelerator
    (see :func:`kernel_hardware`); ``docker_image`` / ``docker_image_pinning_type`` pin the
    image. With ``validate`` the result must pass :func:`check_metadata` (``code_file`` must
    then exist next to it; internet must be off); ``validate=False`` is for writing a template
    with a placeholder id.
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / KERNEL_METADATA
    if path.name != KERNEL_METADATA:
        raise BundleError(f"{path}: kaggle kernels push only reads a file named {KERNEL_METADATA}")
    meta = {
        "id": kernel_id,
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": bool(is_private),
        "enable_gpu": bool(enable_gpu),
        "enable_tpu": False,
        "enable_internet": bool(enable_internet),
        **kernel_hardware(machine_shape if enable_gpu else None, docker_image, docker_image_pinning_type),
        "dataset_sources": list(dataset_sources),
        "competition_sources": [competition_slug(c) for c in competition_sources],
        "kernel_sources": list(kernel_sources),
        "model_sources": list(model_sources),
    }
    if validate:
        check_metadata(meta, "kernel", folder=path.parent, require_offline=not enable_internet)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


# ============================================================================ accelerator and image
def competition_slug(name: str) -> str:
    """``wsdm`` / ``lmsys`` -> the competition's slug; any other value is taken as a slug itself."""
    key = str(name).strip()
    return COMPETITIONS.get(key.lower(), key)


def kernel_hardware(
    machine_shape: str | None = DEFAULT_MACHINE_SHAPE,
    docker_image: str | None = None,
    docker_image_pinning_type: str | None = None,
) -> dict[str, str]:
    """The ``kernel-metadata.json`` fields that choose the accelerator and the image (empty ones left out).

    ``machine_shape``: one of :data:`MACHINE_SHAPES` (default ``NvidiaTeslaT4``, GPU T4 x2).
    ``docker_image``: an image reference to run on (e.g. the one a working version used, with its
    digest); ``docker_image_pinning_type``: ``original`` (the environment the notebook was first
    run with) or ``latest``.
    """
    out = {}
    if machine_shape:
        out["machine_shape"] = str(machine_shape)
    if docker_image:
        out["docker_image"] = str(docker_image)
    if docker_image_pinning_type:
        out["docker_image_pinning_type"] = str(docker_image_pinning_type)
    return out
