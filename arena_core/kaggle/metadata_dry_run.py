"""The kaggle package's own metadata validation, run offline: its checks judge, the network is never reached.

``kaggle datasets create`` / ``kaggle kernels push`` check ids, slugs, titles, licence count,
resources, language, kernel type, code file, booleans and source formats *before* they contact
Kaggle. Those checks run here on a ``KaggleApi`` whose network entry points are replaced by a stop
signal (:func:`dry_run_api`), so a bad bundle is refused before it is built, without credentials.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arena_core.kaggle.errors import BundleError

__all__ = [
    "DATASET_METADATA",
    "KERNEL_METADATA",
    "dry_run_api",
    "kaggle_api_class",
    "push_dry_run",
    "slug_problems",
]

# The only file names ``kaggle datasets create`` / ``kaggle kernels push`` read.
DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"


class _StopBeforeNetwork(Exception):
    """Raised where the kaggle package would contact Kaggle: validation passed up to there."""


_KAGGLE_API_CLASS: type | None = None


def kaggle_api_class() -> type:
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


def dry_run_api(username: str) -> Any:
    """A KaggleApi whose every network entry point raises :class:`_StopBeforeNetwork`."""
    base = kaggle_api_class()

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


def slug_problems(api: Any, ref: Any) -> list[str]:
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


def push_dry_run(api: Any, meta: dict, kind: str, folder: Path | None) -> tuple[list[str], list[str]]:
    """kaggle's create/push validation on ``meta``, stopped before the network: (problems, warnings).

    The metadata is written into a temporary folder as kaggle expects it (for a kernel with its
    ``code_file`` copied from ``folder``); dataset ``resources`` are checked against ``folder``.
    What kaggle printed while checking becomes a warning.
    """
    problems: list[str] = []
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="arena-meta-") as tmp:
        dry = dict(meta)
        resources = dry.pop("resources", None) if kind == "dataset" else None
        if resources:
            if folder is None:
                warnings.append("resources not checked against files: no folder given")
            else:
                try:
                    api.validate_resources(str(folder), resources)
                except ValueError as exc:
                    problems.append(f"kaggle: {exc}")
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
    return problems, warnings
