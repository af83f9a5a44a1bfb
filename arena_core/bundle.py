"""Offline Kaggle dataset bundle: wheels + run weights + ``dataset-metadata.json`` + ``BUNDLE.md``.

A no-internet Kaggle notebook cannot ``pip install`` from PyPI, so everything the library needs
that the Kaggle image lacks travels as wheels inside a Kaggle *dataset*, next to the trained runs::

    OUT/wheels/                      arena_core-<v>-py3-none-any.whl + pinned extras (bitsandbytes)
    OUT/models/<run_name>/           manifest.json, config.yaml, adapter/ | merged/, tokenizer/
    OUT/models/base/<name>/          optional base checkpoint the adapters were trained on
    OUT/dataset-metadata.json        what ``kaggle datasets create`` reads
    OUT/BUNDLE.md                    every file with size + SHA-256, and how to install offline

Every check runs *before* anything is uploaded and stops with a :class:`BundleError` that says
what is wrong and how to fix it: missing run directories or manifests, adapters whose base model
differs from the bundled base, wheels built for another Python or platform, placeholder ids,
unknown licences, bundles over a size limit.

Metadata is judged by the ``kaggle`` package's *own* validation code, run without network: the
id/slug/title/licence-count checks that ``kaggle datasets create`` and ``kaggle kernels push``
perform before they contact Kaggle are executed on a ``KaggleApi`` whose network entry points
are replaced by a stop signal (see :func:`check_metadata`). Our own checks only add what the
package does not check locally: placeholder ids, the licence name, ``enable_internet: false``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__

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

COMPETITION = "wsdm-cup-multilingual-chatbot-arena"

# Kaggle's GPU images are Ubuntu 22.04 (glibc 2.35): pip there accepts every manylinux wheel up
# to manylinux_2_35. Asking pip for "manylinux2014_x86_64" alone (glibc 2.17) would refuse
# bitsandbytes >= 0.43, which only ships manylinux_2_24 wheels.
KAGGLE_PLATFORM = "manylinux_2_35_x86_64"

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

MIN_PYTHON_MINOR = 10  # pyproject: requires-python >= 3.10
BUNDLE_MD = "BUNDLE.md"
DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"
_HEADER_TAG = "arena_core-bundle"
_COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".cache", "__pycache__", ".ipynb_checkpoints", ".DS_Store", "*.pyc"
)
_SMALL_TOP_LEVEL_FILE = 16 * 2**20  # run-dir files beyond the contract are carried if this small


class BundleError(ValueError):
    """A bundle that must not be built or uploaded; the message says what to fix."""


# ============================================================================ wheel tags
@dataclass(frozen=True)
class WheelTags:
    filename: str
    name: str  # canonical: lower case, runs of -_. folded to "-"
    version: str
    python_tags: tuple[str, ...]
    abi_tags: tuple[str, ...]
    platform_tags: tuple[str, ...]

    @property
    def tag_string(self) -> str:
        return "-".join(".".join(t) for t in (self.python_tags, self.abi_tags, self.platform_tags))


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_wheel_filename(filename: str | os.PathLike) -> WheelTags:
    """Split ``name-version[-build]-python-abi-platform.whl`` into its (compressed) tag sets."""
    base = os.path.basename(os.fspath(filename))
    parts = base[:-4].split("-") if base.endswith(".whl") else []
    if len(parts) not in (5, 6) or not all(parts):
        raise BundleError(f"{base}: not a wheel file name (name-version[-build]-python-abi-platform.whl)")
    py, abi, plat = parts[-3:]
    return WheelTags(
        base,
        canonical_name(parts[0]),
        parts[1],
        tuple(py.split(".")),
        tuple(abi.split(".")),
        tuple(plat.split(".")),
    )


_LEGACY_MANYLINUX = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def expand_platforms(platform: str | Sequence[str]) -> list[str]:
    """Every platform tag pip on such a machine accepts, newest first.

    ``manylinux_2_35_x86_64`` stands for "glibc 2.35 on x86_64" and expands to every manylinux
    tag down to ``manylinux1`` (pip only does this for the host, not for ``--platform``), plus
    ``linux_x86_64``; other tags are kept as given.
    """
    requested = [platform] if isinstance(platform, str) else list(platform)
    out: list[str] = []
    for p in requested:
        m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", p)
        legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", p)
        if m or legacy:
            glibc, arch = (
                (int(m.group(1)), m.group(2)) if m else (_LEGACY_MANYLINUX[legacy.group(1)], legacy.group(2))
            )
            tags = [f"manylinux_2_{k}_{arch}" for k in range(glibc, 4, -1)]
            tags += [f"{name}_{arch}" for name, k in _LEGACY_MANYLINUX.items() if k <= glibc]
            tags.append(f"linux_{arch}")
        else:
            tags = [p]
        out += [t for t in tags if t not in out]
    return out


def _python_minor(python: str) -> int:
    m = re.fullmatch(r"3\.(\d+)", str(python).strip())
    if not m or int(m.group(1)) < MIN_PYTHON_MINOR:
        raise BundleError(f"python={python!r}: give the Kaggle image's Python as '3.10', '3.11' or '3.12'")
    return int(m.group(1))


def _supported_tags(python: str, platforms: Sequence[str]) -> set[tuple[str, str, str]]:
    """The (python, abi, platform) triples CPython ``python`` on ``platforms`` installs."""
    minor = _python_minor(python)
    cp = f"cp3{minor}"
    py_generic = ["py3"] + [f"py3{m}" for m in range(minor, -1, -1)]
    tags: set[tuple[str, str, str]] = set()
    for plat in [*platforms, "any"]:
        if plat != "any":
            tags |= {(cp, cp, plat), (cp, "abi3", plat), (cp, "none", plat)}
            tags |= {(f"cp3{m}", "abi3", plat) for m in range(minor - 1, 1, -1)}
        else:
            tags.add((cp, "none", "any"))
        tags |= {(p, "none", plat) for p in py_generic}
    return tags


def wheel_mismatch(
    filename: str | os.PathLike, python: str, platform: str | Sequence[str] = KAGGLE_PLATFORM
) -> str | None:
    """``None`` when the wheel installs on CPython ``python`` / ``platform``, else the reason."""
    w = parse_wheel_filename(filename)
    platforms = expand_platforms(platform)
    supported = _supported_tags(python, platforms)
    triples = [(p, a, pl) for p in w.python_tags for a in w.abi_tags for pl in w.platform_tags]
    if any(t in supported for t in triples):
        return None
    interp_ok = {(p, a) for p, a, _ in supported}
    if not any((p, a) in interp_ok for p, a, _ in triples):
        return (
            f"{w.filename}: built for {'.'.join(w.python_tags)}/{'.'.join(w.abi_tags)}, but the target is "
            f"CPython {python} (cp3{_python_minor(python)}; fine: cp3{_python_minor(python)}, abi3, py3-none)"
        )
    return (
        f"{w.filename}: platform {'.'.join(w.platform_tags)} does not run on the target "
        f"({platforms[0]} and older manylinux, linux_*, any)"
    )


def check_wheels(
    paths: Iterable[str | os.PathLike], python: str, platform: str | Sequence[str] = KAGGLE_PLATFORM
) -> None:
    """Raise one :class:`BundleError` naming every wheel that does not fit the target."""
    paths = list(paths)
    problems = [r for r in (wheel_mismatch(p, python, platform) for p in paths) if r]
    seen: dict[str, str] = {}
    for p in paths:
        w = parse_wheel_filename(p)
        if w.name in seen:
            problems.append(f"two wheels for {w.name}: {seen[w.name]} and {w.filename}; keep one")
        seen[w.name] = w.filename
        if Path(p).is_file() and not zipfile.is_zipfile(p):
            problems.append(f"{w.filename}: not a valid zip archive (truncated download?)")
    if problems:
        raise BundleError(
            f"wheels do not fit CPython {python} on {platform}:\n  - " + "\n  - ".join(problems)
        )


# ============================================================================ requirements
def read_requirements(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Exact pins ``name==version`` (comments allowed), as (canonical name, version) pairs."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"requirements file not found: {path}")
    pins = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)", line)
        if not m:
            raise BundleError(
                f"{path}:{n}: {line!r} is not an exact pin; the bundle carries fixed wheels, write name==version"
            )
        pins.append((canonical_name(m.group(1)), m.group(2)))
    return pins


# ============================================================================ kaggle metadata
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


@dataclass
class MetadataCheck:
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


# ============================================================================ runs
@dataclass
class RunInfo:
    name: str
    source: Path
    kind: str  # "adapter" | "merged"
    base_model: str | None
    items: list[str]  # top-level entries carried into models/<name>/
    nbytes: int


def _model_key(value: Any) -> str | None:
    """Comparable name of a model reference: last path part that is not a version number."""
    if not isinstance(value, str) or not value.strip():
        return None
    parts = [p for p in re.split(r"[\\/]+", value.strip()) if p]
    while parts and parts[-1].isdigit():
        parts.pop()
    return parts[-1].lower() if parts else None


def _model_dirname(path: Path) -> str:
    parts = [p for p in path.resolve().parts if p not in ("/", "")]
    while len(parts) > 1 and parts[-1].isdigit():
        parts.pop()
    return parts[-1] if parts else "base-model"


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in (".git", ".cache", "__pycache__", ".ipynb_checkpoints")]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if not f.endswith(".pyc"))
    return total


def _check_safetensors(path: Path) -> str | None:
    """A truncated or foreign .safetensors file, as a message; None when the header adds up."""
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


def _weights_problems(folder: Path, what: str) -> list[str]:
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        return [f"{folder}: {what} holds no weights (*.safetensors or *.bin)"]
    return [p for p in (_check_safetensors(w) for w in weights if w.suffix == ".safetensors") if p]


def _inspect_run(run: Path) -> tuple[RunInfo, dict, dict | None, list[str]]:
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
        problems += _weights_problems(run / "adapter", "adapter/")
        base = manifest.get("base_model")
        if not isinstance(base, dict) or not (base.get("name") or base.get("path")):
            problems.append(
                f"{manifest_path}: base_model {{name, path, config_sha256}} is missing; an adapter needs it"
            )
    elif (run / "merged").is_dir():
        kind = "merged"
        if not (run / "merged" / "config.json").is_file():
            problems.append(f"{run}/merged: config.json is missing")
        problems += _weights_problems(run / "merged", "merged/")
    else:
        kind = "?"
        problems.append(f"{run}: neither adapter/ nor merged/ found (no weights to ship)")
    tok = run / "tokenizer"
    if not tok.is_dir() or not any(
        (tok / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
    ):
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
    info = RunInfo(run.name, run, kind, base_name, items, sum(_tree_size(run / i) for i in items))
    return info, manifest, adapter_cfg, problems


def _config_hashes(config_json: Path) -> set[str]:
    """SHA-256 of config.json's bytes (what runs.base_model_identity records) and of its canonical JSON."""
    from .runs import file_sha256

    out = {file_sha256(config_json)}
    with contextlib.suppress(ValueError):
        canon = json.dumps(
            json.loads(config_json.read_text(encoding="utf-8")), sort_keys=True, separators=(",", ":")
        )
        out.add(hashlib.sha256(canon.encode("utf-8")).hexdigest())
    return {h for h in out if h}


def _base_problems(info: RunInfo, manifest: dict, adapter_cfg: dict | None, base_dir: Path) -> list[str]:
    """Does adapter run ``info`` belong on the bundled base? Hash decides; names when no hash."""
    mb = manifest.get("base_model") if isinstance(manifest.get("base_model"), dict) else {}
    want = mb.get("config_sha256")
    have = _config_hashes(base_dir / "config.json")
    if want:
        if want not in have:
            return [
                f"run {info.name!r}: adapter was trained on base {mb.get('name')!r} whose config.json sha256 is "
                f"{str(want)[:12]}..., but the bundled base {base_dir} has {sorted(have)[0][:12] if have else '?'}...: "
                "a different base model (bundle the base the run was trained on)"
            ]
        return []
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


# ============================================================================ wheels
def _repo_root(repo_root: str | os.PathLike | None) -> Path:
    root = Path(repo_root) if repo_root else Path(__file__).resolve().parent.parent
    py = root / "pyproject.toml"
    if not py.is_file() or not re.search(
        r'^name\s*=\s*"arena[_-]core"', py.read_text(encoding="utf-8"), re.M
    ):
        raise BundleError(
            f"cannot find the arena_core source tree at {root} (pyproject.toml); pass repo_root=, or put a "
            "pre-built arena_core wheel in wheel_dir"
        )
    return root


def _pip(args: list[str], what: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        return subprocess.run(
            [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise BundleError(f"{what}: pip did not finish within {timeout:.0f} s") from exc


def build_arena_core_wheel(
    dest_dir: str | os.PathLike, *, repo_root: str | os.PathLike | None = None
) -> Path:
    """Build ``arena_core-<version>-py3-none-any.whl`` from the source tree into ``dest_dir``.

    The sources (pyproject.toml, README/LICENSE, the package) are copied to a scratch folder
    first, so the build leaves nothing in the working tree and two builds cannot collide.
    ``pip wheel --no-deps --no-build-isolation --no-index`` works offline with the installed
    setuptools; when that fails, an isolated ``pip wheel --no-deps`` (needs an index) is tried.
    """
    root = _repo_root(repo_root)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="arena-wheel-") as tmp:
        src = Path(tmp, "src")
        src.mkdir()
        for f in root.iterdir():
            if f.is_file() and (
                f.name in ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in")
                or f.name.upper().startswith(("README", "LICENSE"))
            ):
                shutil.copy2(f, src / f.name)
        shutil.copytree(root / "arena_core", src / "arena_core", ignore=_COPY_IGNORE)
        out = Path(tmp, "out")
        attempts = [
            ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(src)],
            ["wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        ]
        errors = []
        for args in attempts:
            proc = _pip(args, "building the arena_core wheel", timeout=600)
            built = sorted(out.glob("arena_core-*.whl"))
            if proc.returncode == 0 and built:
                break
            errors.append(f"pip {' '.join(args[:5])}...: {(proc.stderr or proc.stdout).strip()[-800:]}")
        else:
            raise BundleError("could not build the arena_core wheel:\n  " + "\n  ".join(errors))
        wheel = built[-1]
        tags = parse_wheel_filename(wheel)
        if tags.tag_string != "py3-none-any":
            raise BundleError(f"{wheel.name}: arena_core must build as py3-none-any, got {tags.tag_string}")
        target = dest / wheel.name
        shutil.copy2(wheel, target)
    return target


def _download_wheels(dest: Path, requirements: Path, python: str, platform: str | Sequence[str]) -> None:
    plats = [p for p in expand_platforms(platform) if not p.startswith("linux_")]
    args = [
        "download",
        "--only-binary=:all:",
        "--no-deps",
        "--python-version",
        python,
        "--implementation",
        "cp",
    ]
    for p in plats:
        args += ["--platform", p]
    args += ["-d", str(dest), "-r", str(requirements)]
    proc = _pip(args, f"downloading {requirements.name}")
    if proc.returncode != 0:
        raise BundleError(
            f"pip download of {requirements} for CPython {python} / {plats[0]} failed:\n"
            + (proc.stderr or proc.stdout).strip()[-1500:]
        )


# ============================================================================ report
@dataclass
class BundleFile:
    path: str  # relative to the bundle root, "/" separated
    size: int
    sha256: str


@dataclass
class BundleReport:
    out_dir: Path
    dataset_id: str
    title: str
    python: str
    platform: str | list[str]
    runs: list[RunInfo]
    base: str | None
    wheels: list[str]
    files: list[BundleFile]
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def summary(self) -> str:
        lines = [
            f"bundle {self.out_dir}  ({_human(self.total_bytes)}, {len(self.files)} files)",
            f"  dataset  {self.dataset_id}  {self.title!r}",
            f"  target   CPython {self.python} / {self.platform if isinstance(self.platform, str) else self.platform[0]}",
            f"  wheels   {', '.join(self.wheels)}",
        ]
        for r in self.runs:
            lines.append(
                f"  run      models/{r.name}/  ({r.kind}, base {r.base_model or '-'}, {_human(r.nbytes)})"
            )
        if self.base:
            lines.append(f"  base     models/base/{self.base}/")
        lines += [f"  note     {n}" for n in self.notes]
        return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * 2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def _list_files(root: Path) -> list[BundleFile]:
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == BUNDLE_MD:
            continue
        if any(c in rel for c in "`|\n\r"):
            raise BundleError(
                f"{rel}: file names with backticks, pipes or newlines cannot be listed in {BUNDLE_MD}"
            )
        out.append(BundleFile(rel, path.stat().st_size, _sha256_file(path)))
    return out


_ROW = re.compile(r"^\| `([^`]+)` \| ([\d,]+) \| [^|]* \| `([0-9a-f]{64})` \|$")


def _write_bundle_md(root: Path, report: BundleReport, header: dict, pins: list[tuple[str, str]]) -> None:
    slug = report.dataset_id.split("/")[-1]
    extra = " ".join(f"{n}=={v}" for n, v in pins)
    wheels_dir = f"/kaggle/input/{slug}/wheels"
    lines = [
        f"<!-- {_HEADER_TAG} {json.dumps(header, sort_keys=True)} -->",
        f"# {report.title}",
        "",
        f"Offline bundle for the Kaggle dataset `{report.dataset_id}`: arena_core {__version__} as a wheel, "
        "the wheels the Kaggle image lacks, and trained runs. Built "
        f"{header['built']} for CPython {report.python} on {expand_platforms(report.platform)[0]} (and older manylinux).",
        "",
        "## Contents",
        "",
        *[f"- `wheels/{w}`" for w in report.wheels],
        *[
            f"- `models/{r.name}/` - {r.kind} run, base model `{r.base_model or 'n/a'}` ({_human(r.nbytes)})"
            for r in report.runs
        ],
        *([f"- `models/base/{report.base}/` - base checkpoint for the adapter runs"] if report.base else []),
        "",
        "## Install in a Kaggle notebook (internet off)",
        "",
        f"Attach the dataset `{report.dataset_id}` (and the competition data), then in the first cell:",
        "",
        "```",
        f"!pip install --no-index --find-links {wheels_dir} arena_core {extra}".rstrip(),
        "```",
        "",
        "`--no-index` keeps pip offline: arena_core's own dependencies (torch, transformers, peft, numpy, "
        "pandas, pyarrow, pyyaml, tqdm, safetensors) must already be in the image, and pip takes them from "
        "there. If Kaggle mounts the dataset elsewhere, find the folder with "
        "`glob.glob('/kaggle/input/**/wheels/arena_core-*.whl', recursive=True)`.",
        "",
        f"Runs are then at `/kaggle/input/{slug}/models/<run>/`"
        + (f"; the base model at `/kaggle/input/{slug}/models/base/{report.base}/`" if report.base else "")
        + " (`arena_core.runs.load_run` looks for `models/base/<name>/` beside the runs).",
        "",
        "## Files",
        "",
        f"Every file in the bundle except this {BUNDLE_MD}; check one with `sha256sum FILE`.",
        "",
        "| File | Bytes | Size | SHA-256 |",
        "|---|---:|---:|---|",
        *[f"| `{f.path}` | {f.size:,} | {_human(f.size)} | `{f.sha256}` |" for f in report.files],
        "",
    ]
    (root / BUNDLE_MD).write_text("\n".join(lines), encoding="utf-8")


def _read_bundle_md(root: Path) -> tuple[dict, dict[str, tuple[int, str]]]:
    path = root / BUNDLE_MD
    if not path.is_file():
        raise BundleError(f"{root}: {BUNDLE_MD} is missing; is this a folder written by build_bundle?")
    text = path.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {_HEADER_TAG} (\{{.*?\}}) -->", text)
    if not m:
        raise BundleError(f"{path}: header line '<!-- {_HEADER_TAG} {{...}} -->' is missing")
    listed = {}
    for line in text.splitlines():
        row = _ROW.match(line.strip())
        if row:
            listed[row.group(1)] = (int(row.group(2).replace(",", "")), row.group(3))
    return json.loads(m.group(1)), listed


# ============================================================================ build
def _check_size(parts: dict[str, int], max_size_gb: float | None) -> None:
    if max_size_gb is None:
        return
    total = sum(parts.values())
    if total > max_size_gb * 1e9:
        biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:5]
        raise BundleError(
            f"bundle would be {total / 1e9:.3f} GB, over max_size_gb={max_size_gb}; largest parts: "
            + ", ".join(f"{k} {_human(v)}" for k, v in biggest)
        )


def _default_title(dataset_id: str) -> str:
    slug = dataset_id.split("/")[-1] if isinstance(dataset_id, str) else "bundle"
    return " ".join(w.capitalize() for w in re.split(r"[-_]+", slug) if w)[:50] or "Arena Core Bundle"


def _resolve_requirements(
    requirements: str | os.PathLike | None, repo_root: str | os.PathLike | None
) -> Path | None:
    if requirements is None or str(requirements) == "":
        return None
    req = Path(requirements)
    if req.is_file() or req.is_absolute():
        return req
    with contextlib.suppress(BundleError):
        candidate = _repo_root(repo_root) / req
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
    include_base: str | os.PathLike | None = None,
    dataset_id: str = "user/slug",
    title: str | None = None,
    license_name: str = "apache-2.0",
    max_size_gb: float | None = None,
    download: bool = True,
    wheel_dir: str | os.PathLike | None = None,
    repo_root: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> BundleReport:
    """Assemble an offline Kaggle dataset folder at ``out_dir``; every check runs first.

    * ``runs``: run directories (manifest.json, config.yaml, adapter/ or merged/, tokenizer/);
      each lands in ``models/<dir name>/``. Only the contract pieces and small top-level files
      are carried (trainer checkpoints and logs stay behind; the report says what was left).
    * ``include_base``: a base checkpoint copied to ``models/base/<name>/``, ``<name>`` being
      the ``base_model.name`` the adapter manifests record (so ``runs.load_run`` finds it).
      Every adapter run must have been trained on it (config.json SHA-256, else names).
    * wheels: the arena_core wheel (from ``wheel_dir`` when one is there, else built from the
      source tree), plus the exact pins in ``requirements`` (``None``: none): downloaded with
      ``pip download --only-binary=:all: --no-deps`` for ``python``/``platform`` when
      ``download``, else taken from ``wheel_dir``. Every wheel's tags must fit the target.
    * ``dataset_id``/``title``/``license_name`` make ``dataset-metadata.json``, validated by
      the kaggle package (:func:`check_metadata`) before anything is copied.

    The bundle is assembled in a scratch folder beside ``out_dir`` and renamed into place at
    the end, so a failed build leaves nothing behind. ``overwrite`` replaces an existing
    bundle (only a folder that holds a BUNDLE.md or dataset-metadata.json).
    """
    out = Path(out_dir)
    minor = _python_minor(python)
    python = f"3.{minor}"
    title = title or _default_title(dataset_id)
    notes: list[str] = []

    # 1. metadata first: a placeholder id or bad licence stops before any copying
    description = f"Offline arena_core {__version__} bundle (wheels for CPython {python}, trained runs)."
    check_metadata(dataset_metadata(dataset_id, title, license_name, description), "dataset")

    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise BundleError(f"{out} exists and is not empty; choose another --out or pass overwrite=True")
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
        info, manifest, adapter_cfg, run_problems = _inspect_run(run)
        problems += run_problems
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", info.name) or info.name == "base":
            problems.append(
                f"{run}: run name {info.name!r} must be [A-Za-z0-9._-] and not 'base' (models/base/ is the base model)"
            )
        if info.name in names:
            problems.append(f"two runs are named {info.name!r}; rename one directory")
        names.add(info.name)
        infos.append((info, manifest, adapter_cfg))
    base_dir = Path(include_base) if include_base else None
    base_name = None
    if base_dir is not None:
        if not (base_dir / "config.json").is_file():
            problems.append(f"base model {base_dir}: not found or no config.json")
        else:
            problems += _weights_problems(base_dir, "the base model")
            adapters = [i for i in infos if i[0].kind == "adapter"]
            for info, manifest, adapter_cfg in adapters:
                problems += _base_problems(info, manifest, adapter_cfg, base_dir)
            wanted = sorted({i.base_model for i, _, _ in adapters if i.base_model})
            base_name = wanted[0] if wanted else _model_dirname(base_dir)
            if ".." in Path(base_name).parts or Path(base_name).is_absolute():
                problems.append(
                    f"base model name {base_name!r} (from the run manifests) is not a safe folder name"
                )
            if len(wanted) > 1:
                notes.append(f"adapter manifests name the base {wanted}; bundled as models/base/{base_name}/")
            if not adapters:
                notes.append("a base model is bundled but no run is an adapter")
    for info, manifest, _ in infos:
        if info.kind == "adapter" and base_dir is None:
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

    req_path = _resolve_requirements(requirements, repo_root)
    pins = read_requirements(req_path) if req_path is not None else []
    early = {f"models/{i.name}/": i.nbytes for i, _, _ in infos}  # fail before building/downloading wheels
    if base_dir is not None:
        early[f"models/base/{base_name}/"] = _tree_size(base_dir)
    _check_size(early, max_size_gb)

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
                _download_wheels(wheels, req_tmp, python, platform)
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
        if base_dir is not None:
            parts[f"models/base/{base_name}/"] = _tree_size(base_dir)
        _check_size(parts, max_size_gb)

        # 4. copy runs and base
        models = stage / "models"
        models.mkdir()
        for info, _, _ in infos:
            dest = models / info.name
            dest.mkdir()
            for item in info.items:
                src = info.source / item
                if src.is_dir():
                    shutil.copytree(src, dest / item, ignore=_COPY_IGNORE)
                else:
                    shutil.copy2(src, dest / item)
            if info.kind == "adapter" and (dest / "adapter" / "adapter_config.json").is_file():
                notes += _portable_adapter_notes(info.name, dest / "adapter")
        if base_dir is not None:
            shutil.copytree(base_dir, models / "base" / str(base_name), ignore=_COPY_IGNORE)

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
            base_name,
            [w.name for w in wheel_files],
            _list_files(stage),
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
            "base": base_name,
            "pins": [f"{n}=={v}" for n, v in pins],
            "max_size_gb": max_size_gb,
        }
        _write_bundle_md(stage, report, header, pins)
        _check_size({"bundle": report.total_bytes + (stage / BUNDLE_MD).stat().st_size}, max_size_gb)

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


def _portable_adapter_notes(run_name: str, adapter_dir: Path) -> list[str]:
    """Make the copied adapter_config.json readable by peft 0.14 (competition image); say what changed."""
    from .runs import NEWER_PEFT_KEYS_DEFAULTS, make_adapter_portable

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


# ============================================================================ verify + upload
def verify_bundle(
    bundle_dir: str | os.PathLike, *, hashes: bool = True, max_size_gb: float | None = None
) -> dict:
    """Check a built bundle before upload: metadata (kaggle validation), every file listed in
    BUNDLE.md present with its size (and SHA-256 when ``hashes``), nothing unlisted, wheel
    tags against the target Python recorded in the header, and the size limit. Returns the header.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"bundle folder not found: {root}")
    check_metadata(root / DATASET_METADATA, "dataset")
    header, listed = _read_bundle_md(root)
    problems = []
    present = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    present.pop(BUNDLE_MD, None)
    for rel in sorted(set(present) - set(listed)):
        problems.append(f"{rel}: in the folder but not listed in {BUNDLE_MD} (added after the build?)")
    for rel, (size, sha) in sorted(listed.items()):
        p = present.get(rel)
        if p is None:
            problems.append(f"{rel}: listed in {BUNDLE_MD} but missing")
        elif p.stat().st_size != size:
            problems.append(f"{rel}: {p.stat().st_size} bytes, {BUNDLE_MD} says {size}")
        elif hashes and _sha256_file(p) != sha:
            problems.append(f"{rel}: SHA-256 differs from {BUNDLE_MD}")
    wheels = sorted((root / "wheels").glob("*.whl"))
    if not any(parse_wheel_filename(w).name == "arena-core" for w in wheels):
        problems.append("wheels/: no arena_core wheel")
    if problems:
        raise BundleError(f"bundle {root} does not match its {BUNDLE_MD}:\n  - " + "\n  - ".join(problems))
    check_wheels(wheels, header["python"], header.get("platform", KAGGLE_PLATFORM))
    limit = max_size_gb if max_size_gb is not None else header.get("max_size_gb")
    _check_size({"bundle": sum(p.stat().st_size for p in present.values())}, limit)
    return header


def find_kaggle_credentials(env: dict | None = None, home: str | os.PathLike | None = None) -> str | None:
    """Where the kaggle CLI would find credentials (a description), or None. No network."""
    env = os.environ if env is None else env
    home = Path(home) if home is not None else Path.home()
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME + KAGGLE_KEY"
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    dirs = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    dirs += [home / ".kaggle", Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"]
    for d in dirs:
        for name in ("kaggle.json", "access_token", "access_token.txt", "credentials.json"):
            if (d / name).is_file():
                return str(d / name)
    return None


_CREDENTIALS_HELP = """no Kaggle credentials found, so nothing was uploaded. Provide one of:
  - an API token: create one at https://www.kaggle.com/settings/api ("Create New Token") and
    export KAGGLE_API_TOKEN=<token>   or save it as ~/.kaggle/access_token
  - a legacy key: save kaggle.json as ~/.kaggle/kaggle.json (chmod 600), or
    export KAGGLE_USERNAME=<user> KAGGLE_KEY=<key>
  - OAuth: run 'kaggle auth login' (kaggle >= 2)
then run the upload again."""


def _kaggle_cli() -> list[str]:
    spec = importlib.util.find_spec("kaggle")
    if (
        spec
        and spec.submodule_search_locations
        and any(Path(p, "__main__.py").is_file() for p in spec.submodule_search_locations)
    ):
        return [sys.executable, "-m", "kaggle"]
    exe = shutil.which("kaggle")
    if exe:
        return [exe]
    raise BundleError("the kaggle command is not installed: pip install 'kaggle>=1.7' six")


def upload_bundle(
    bundle_dir: str | os.PathLike,
    message: str | None = None,
    *,
    new: bool | None = None,
    public: bool = False,
    dir_mode: str = "zip",
    hashes: bool = True,
    runner: Callable[[list[str]], subprocess.CompletedProcess] | None = None,
) -> list[str]:
    """Upload a built bundle: ``kaggle datasets create`` the first time, ``version`` after.

    Runs :func:`verify_bundle` first and stops on any problem; then needs credentials (see
    :func:`find_kaggle_credentials`). ``new=None`` asks ``kaggle datasets status`` whether the
    dataset exists. ``runner`` (tests) replaces ``subprocess.run``. Returns the command run.
    """
    root = Path(bundle_dir)
    header = verify_bundle(root, hashes=hashes)
    if find_kaggle_credentials() is None:
        raise BundleError(_CREDENTIALS_HELP)
    run = runner or (lambda cmd: subprocess.run(cmd, capture_output=True, text=True))
    cli = _kaggle_cli()
    dataset_id = json.loads((root / DATASET_METADATA).read_text(encoding="utf-8"))["id"]
    if new is None:
        status = run([*cli, "datasets", "status", dataset_id])
        said = f"{status.stdout}\n{status.stderr}"
        if status.returncode == 0 and not re.search(r"\b404\b|not found", said, re.I):
            new = False
        elif re.search(r"\b404\b|not found|does not exist", said, re.I):
            new = True
        else:
            raise BundleError(
                f"kaggle datasets status {dataset_id} failed; nothing uploaded:\n{said.strip()[-1500:]}"
            )
    if new:
        cmd = [*cli, "datasets", "create", "-p", str(root), "--dir-mode", dir_mode]
        if public:
            cmd.append("--public")
    else:
        msg = (
            message
            or f"arena_core {header.get('arena_core')}: runs {', '.join(header.get('runs') or []) or '-'}"
        )
        cmd = [*cli, "datasets", "version", "-p", str(root), "-m", msg, "--dir-mode", dir_mode]
    proc = run(cmd)
    if proc.returncode != 0:
        raise BundleError(
            f"{' '.join(cmd[-7:])} failed:\n{(proc.stderr or proc.stdout or '').strip()[-1500:]}"
        )
    return cmd
