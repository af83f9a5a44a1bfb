"""Uploading a built bundle with the ``kaggle`` command: a new dataset, or a new version.

The one place that talks to Kaggle. It verifies the folder again first, so nothing changed
since the build is uploaded, and explains a missing credential (where to put a token) instead
of leaving that to the kaggle CLI's own error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.listing import verify_bundle
from arena_core.kaggle.metadata import DATASET_METADATA

__all__ = ["find_kaggle_credentials", "upload_bundle"]


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
    """The kaggle command of this interpreter when installed here, else the one on PATH."""
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
