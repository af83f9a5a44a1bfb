"""Kaggle metadata files (``dataset-metadata.json``, ``kernel-metadata.json``), judged offline.

A bad id, title or licence is otherwise only reported by ``kaggle datasets create`` / ``kaggle
kernels push``, after the bundle is built. So metadata is judged by the ``kaggle`` package's
*own* validation code, run without network: the id/slug/title/licence-count checks those
commands perform before they contact Kaggle are executed on a ``KaggleApi`` whose network entry
points are replaced by a stop signal (see :func:`check_metadata`). Our own checks only add what
the package does not check locally: placeholder ids, the licence name, ``enable_internet: false``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena_core.kaggle.errors import BundleError

__all__ = [
    "COMPETITION",
    "DATASET_METADATA",
    "KAGGLE_DATASET_LICENSES",
    "KERNEL_METADATA",
    "MetadataCheck",
    "check_metadata",
    "dataset_metadata",
    "write_kernel_metadata",
]

COMPETITION = "wsdm-cup-multilingual-chatbot-arena"  # the kernel's default competition source

# Licence names accepted in dataset-metadata.json, from Kaggle's documentation
# (kaggle-api docs/datasets_metadata.md, "Licenses"). The kaggle package has no local list: it
# only checks that there is exactly one licence with a name, and the server rejects the rest.
KAGGLE_DATASET_LICENSES = (
    "CC0-1.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-SA-4.0",
    "GPL-2.0",
    "ODbL-1.0",
    "DbCL-1.0",
    "copyright-authors",
    "other",
    "unknown",
    "CC-BY-4.0",
    "CC-BY-NC-4.0",
    "PDDL",
    "CC-BY-3.0",
    "CC-BY-3.0-IGO",
    "US-Government-Works",
    "CC-BY-NC-SA-3.0-IGO",
    "CDLA-Permissive-1.0",
    "CDLA-Sharing-1.0",
    "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0",
    "ODC-BY-1.0",
    "LGPL-3.0",
    "AGPL-3.0",
    "FDL-1.3",
    "EU-ODP-Legal-Notice",
    "apache-2.0",
    "GPL-3.0",
)

DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"


# ============================================================================ kaggle's checks, offline
class _StopBeforeNetwork(Exception):
    """Raised where the kaggle package would contact Kaggle: validation passed up to there."""


_KAGGLE_API_CLASS: type | None = None


def _kaggle_api_class() -> type:
    """``kaggle.api.kaggle_api_extended.KaggleApi`` without running ``kaggle/__init__``.

    ``import kaggle`` authenticates at import time (and exits without credentials in kaggle
    1.7); the validation helpers live in ``kaggle.api.kaggle_api_extended`` and need no
    credentials. When ``kaggle`` is not imported yet, a bare package shell (its real
    ``__path__`` and ``__version__``) stands in for it while the submodule is imported, then is
    removed again so a later ``import kaggle`` behaves as usual.
    """
    global _KAGGLE_API_CLASS
    if _KAGGLE_API_CLASS is not None:
        return _KAGGLE_API_CLASS
    hint = "install it with: pip install 'kaggle>=1.7' six   (or pip install -e '.[dev]')"
    try:
        if "kaggle" in sys.modules:
            mod = importlib.import_module("kaggle.api.kaggle_api_extended")
        else:
            spec = importlib.util.find_spec("kaggle")
            if spec is None or not spec.submodule_search_locations:
                raise BundleError(f"the kaggle package is needed to validate metadata; {hint}")
            shell = types.ModuleType("kaggle")
            shell.__path__ = list(spec.submodule_search_locations)
            shell.__file__ = spec.origin
            shell.__version__ = importlib.metadata.version("kaggle")
            sys.modules["kaggle"] = shell
            try:
                mod = importlib.import_module("kaggle.api.kaggle_api_extended")
            finally:
                if sys.modules.get("kaggle") is shell:
                    del sys.modules["kaggle"]
    except ImportError as exc:
        raise BundleError(f"cannot import the kaggle package's validation code ({exc}); {hint}") from exc
    _KAGGLE_API_CLASS = mod.KaggleApi
    return _KAGGLE_API_CLASS


def _dry_run_api(username: str) -> Any:
    """A KaggleApi whose every network entry point raises :class:`_StopBeforeNetwork`."""
    base = _kaggle_api_class()

    def stop(name):
        def method(self, *args, **kwargs):
            raise _StopBeforeNetwork(name)

        return method

    namespace = {
        n: stop(n) for n in ("build_kaggle_client", "dataset_status", "upload_files", "authenticate")
    }
    api = type("DryRunKaggleApi", (base,), namespace)()
    api.config_values = {getattr(api, "CONFIG_NAME_USER", "username"): username}
    return api


def _run_kaggle_check(call: Callable[[], Any]) -> tuple[str | None, str]:
    """Run one of kaggle's push/create methods up to the network: (problem or None, printed text)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            call()
    except _StopBeforeNetwork:
        return None, printed.getvalue()
    except ValueError as exc:
        return f"kaggle: {exc}", printed.getvalue()
    except Exception as exc:  # the kaggle code tripped over the metadata (KeyError, TypeError, ...)
        return f"kaggle: {type(exc).__name__}: {exc}", printed.getvalue()
    return (
        "kaggle: validation ran to the end without stopping before the network (unexpected)",
        printed.getvalue(),
    )


# ============================================================================ placeholder ids
_PLACEHOLDER_MARKERS = (
    "your_",
    "your-",
    "insert_",
    "insert-",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "todo",
    "<",
    ">",
    "{",
    "}",
)
_PLACEHOLDER_OWNERS = {
    "user",
    "username",
    "user-name",
    "user_name",
    "owner",
    "yourname",
    "yourusername",
    "me",
    "example",
    "someone",
    "xxx",
    "kaggle-username",
    "kaggle_username",
}
_PLACEHOLDER_SLUGS = {
    "slug",
    "dataset-slug",
    "dataset_slug",
    "kernel-slug",
    "kernel_slug",
    "my-dataset",
    "my-kernel",
    "example",
    "xxx",
}


def _placeholder_problem(ref: Any, what: str, hint: str) -> str | None:
    if not isinstance(ref, str) or "/" not in ref:
        return None  # the kaggle format check reports these
    owner, slug = ref.split("/")[:2]
    low_owner, low_slug = owner.lower(), slug.lower()
    if (
        low_owner in _PLACEHOLDER_OWNERS
        or low_slug in _PLACEHOLDER_SLUGS
        or any(m in low_owner or m in low_slug for m in _PLACEHOLDER_MARKERS)
    ):
        return f"{what} {ref!r} is a placeholder: use your Kaggle username and a real slug ({hint})"
    return None


def _slug_problems(api: Any, ref: Any) -> list[str]:
    """Kaggle's own slug-syntax helper (used for model slugs) applied to owner and slug."""
    check = getattr(api, "_validate_slug_syntax", None)
    if check is None or not isinstance(ref, str) or ref.count("/") != 1:
        return []
    owner, slug = ref.split("/")
    out = []
    for value, underscore in ((owner, True), (slug, False)):
        try:
            check(value, allow_underscore=underscore)
        except ValueError as exc:
            out.append(f"kaggle: {exc}")
    return out


# ============================================================================ check and write metadata
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
    api = _dry_run_api(ref.split("/")[0] if isinstance(ref, str) else "")
    problems: list[str] = []
    warnings: list[str] = []

    def kaggle_call(fn, *args):
        try:
            fn(*args)
        except ValueError as exc:
            problems.append(f"kaggle: {exc}")
            return False
        return True

    id_ok = True
    if ref is not None:
        if not isinstance(ref, str):
            problems.append(f"id must be a string 'owner/slug', not {ref!r}")
            id_ok = False
        else:
            validator = api.validate_dataset_string if kind == "dataset" else api.validate_kernel_string
            id_ok = kaggle_call(validator, ref)
            if id_ok and "/" not in ref:  # some kaggle versions take a bare slug (owner from config)
                problems.append(f"id {ref!r} needs the owner: '{{username}}/{{slug}}'")
                id_ok = False
    id_hint = (
        "e.g. 'jdoe/arena-core-bundle': build_dataset.py --dataset-id USER/SLUG"
        if kind == "dataset"
        else "e.g. 'jdoe/arena-core-inference': build_dataset.py --kernel-dir DIR writes it from --dataset-id"
    )
    placeholder = _placeholder_problem(ref, "id", id_hint)
    if placeholder:
        problems.insert(0, placeholder)
    if id_ok and isinstance(ref, str):
        problems += _slug_problems(api, ref)

    if kind == "dataset":
        licenses = meta.get("licenses")
        if isinstance(licenses, list):
            for lic in licenses:
                name = lic.get("name") if isinstance(lic, dict) else None
                if name is not None and name not in KAGGLE_DATASET_LICENSES:
                    near = [x for x in KAGGLE_DATASET_LICENSES if x.lower() == str(name).lower()]
                    hint = (
                        f"did you mean {near[0]!r}?"
                        if near
                        else "Kaggle accepts: " + ", ".join(KAGGLE_DATASET_LICENSES)
                    )
                    problems.append(f"licence {name!r} is not a Kaggle dataset licence name; {hint}")
        elif licenses is not None:
            problems.append('licenses must be a list like [{"name": "apache-2.0"}]')
    else:
        for key in ("dataset_sources", "competition_sources", "kernel_sources", "model_sources"):
            value = meta.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{key} must be a list of strings, not {value!r}")
        for src in meta.get("dataset_sources", []) if isinstance(meta.get("dataset_sources"), list) else []:
            p = _placeholder_problem(src, "dataset source", "the bundle's --dataset-id")
            if p:
                problems.append(p)
        if require_offline:
            if "enable_internet" not in meta:
                problems.append(
                    "enable_internet is missing: the kaggle package then pushes the kernel WITH internet; "
                    'set "enable_internet": false explicitly (the competition requires it off)'
                )
            else:
                try:
                    on = api.get_bool(meta, "enable_internet", True)
                except (ValueError, TypeError) as exc:
                    problems.append(f"kaggle: {exc}")
                else:
                    if on:
                        problems.append(
                            'enable_internet is true: set "enable_internet": false (competition kernels run offline)'
                        )

    # kaggle's own create/push validation, stopped before the network
    if id_ok or ref is None:
        with tempfile.TemporaryDirectory(prefix="arena-meta-") as tmp:
            dry = dict(meta)
            resources = dry.pop("resources", None) if kind == "dataset" else None
            if resources:
                if folder is None:
                    warnings.append("resources not checked against files: no folder given")
                else:
                    kaggle_call(api.validate_resources, str(folder), resources)
            if kind == "dataset":
                Path(tmp, DATASET_METADATA).write_text(json.dumps(dry), encoding="utf-8")
                calls = [
                    lambda: api.dataset_create_new(tmp, dir_mode="zip"),
                    lambda: api.dataset_create_version(tmp, "validation", dir_mode="zip"),
                ]
            else:
                code = dry.get("code_file")
                if isinstance(code, str) and code and not os.path.isabs(code):
                    target = Path(tmp, code)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    real = folder / code if folder is not None else None
                    if real is not None and real.is_file():
                        shutil.copyfile(real, target)
                    elif folder is None:
                        target.write_text(
                            json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
                        )
                        warnings.append(f"code_file {code!r} not checked: no folder given")
                Path(tmp, KERNEL_METADATA).write_text(json.dumps(dry), encoding="utf-8")
                calls = [lambda: api.kernels_push(tmp)]
            for call in calls:
                problem, printed = _run_kaggle_check(call)
                if problem:
                    problem = problem.replace(tmp, str(folder) if folder is not None else "<metadata folder>")
                    if problem not in problems:
                        problems.append(problem)
                text = " ".join(printed.split())
                if text and text not in warnings:
                    warnings.append(f"kaggle: {text}")
    if problems:
        raise BundleError(f"{label} is not valid:\n  - " + "\n  - ".join(problems))
    return MetadataCheck(kind, meta, warnings)


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
) -> Path:
    """Write ``kernel-metadata.json`` for the inference notebook, internet explicitly off.

    ``path`` is the file (it must be named ``kernel-metadata.json``: that is the only name
    ``kaggle kernels push`` reads) or its folder. With ``validate`` the result must pass
    :func:`check_metadata` (``code_file`` must then exist next to it); ``validate=False`` is
    for writing a template with a placeholder id.
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
        "enable_internet": False,
        "dataset_sources": list(dataset_sources),
        "competition_sources": list(competition_sources),
        "kernel_sources": list(kernel_sources),
        "model_sources": list(model_sources),
    }
    if validate:
        check_metadata(meta, "kernel", folder=path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path
