"""Wheels for an offline Kaggle image: which ones install there, and how to get them.

A no-internet notebook installs with ``pip install --no-index``, so a wheel built for another
Python or a newer glibc only fails on Kaggle, after the upload. Here its file name tags are
judged against the target image up front; the requirements file is read as exact pins; the
arena_core wheel is built from the source tree and the pinned extras are fetched with
``pip download`` for the target, not for the machine building the bundle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from arena_core.kaggle.errors import BundleError

__all__ = [
    "COPY_IGNORE",
    "KAGGLE_PLATFORM",
    "MIN_PYTHON_MINOR",
    "WheelTags",
    "build_arena_core_wheel",
    "canonical_name",
    "check_wheels",
    "download_wheels",
    "expand_platforms",
    "find_source_tree",
    "parse_wheel_filename",
    "python_minor",
    "read_requirements",
    "wheel_mismatch",
]

# Kaggle's GPU images are Ubuntu 22.04 (glibc 2.35): pip there accepts every manylinux wheel up
# to manylinux_2_35. Asking pip for "manylinux2014_x86_64" alone (glibc 2.17) would refuse
# bitsandbytes >= 0.43, which only ships manylinux_2_24 wheels.
KAGGLE_PLATFORM = "manylinux_2_35_x86_64"

MIN_PYTHON_MINOR = 10  # pyproject: requires-python >= 3.10
# Never copied from a source tree or a run directory: VCS data, caches, editor and OS litter.
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".cache", "__pycache__", ".ipynb_checkpoints", ".DS_Store", "*.pyc"
)


# ============================================================================ wheel tags
@dataclass(frozen=True)
class WheelTags:
    """The parts of a wheel file name pip matches against the interpreter and platform."""

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
    """Project name as pip compares it, so ``arena_core`` and ``arena-core`` are one wheel."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(v: str):
    """A comparable version: ``packaging`` (always in an image with transformers), else numbers."""
    try:
        from packaging.version import Version

        return Version(v)
    except Exception:  # packaging missing, or an odd version string
        return tuple(int(x) for x in re.findall(r"\d+", v)[:4])


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


def python_minor(python: str) -> int:
    """The minor version of a target ``'3.N'``; refuses what arena_core cannot run on."""
    m = re.fullmatch(r"3\.(\d+)", str(python).strip())
    if not m or int(m.group(1)) < MIN_PYTHON_MINOR:
        raise BundleError(f"python={python!r}: give the Kaggle image's Python as '3.10', '3.11' or '3.12'")
    return int(m.group(1))


def _supported_tags(python: str, platforms: Sequence[str]) -> set[tuple[str, str, str]]:
    """The (python, abi, platform) triples CPython ``python`` on ``platforms`` installs."""
    minor = python_minor(python)
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
            f"CPython {python} (cp3{python_minor(python)}; fine: cp3{python_minor(python)}, abi3, py3-none)"
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


# ============================================================================ building and downloading
def find_source_tree(repo_root: str | os.PathLike | None) -> Path:
    """The arena_core checkout (``repo_root`` or the one this file sits in), to build the wheel from."""
    root = Path(repo_root) if repo_root else Path(__file__).resolve().parents[2]
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
    """This interpreter's pip, quiet about its own version, with a time limit that says what hung."""
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
    root = find_source_tree(repo_root)
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
        shutil.copytree(root / "arena_core", src / "arena_core", ignore=COPY_IGNORE)
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


def download_wheels(dest: Path, requirements: Path, python: str, platform: str | Sequence[str]) -> None:
    """``pip download`` the pinned binary wheels for the *target* Python and platform into ``dest``."""
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
