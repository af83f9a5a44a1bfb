"""``BUNDLE.md``: every file of a bundle with its size and SHA-256, plus how to install offline.

The listing is what makes a built bundle checkable: before anything is uploaded,
:func:`verify_bundle` compares the folder with it, so a file changed, added or lost after the
build is caught on the build machine rather than in a Kaggle notebook.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from arena_core import __version__
from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.metadata import DATASET_METADATA, check_metadata
from arena_core.kaggle.run_checks import RunInfo
from arena_core.kaggle.wheels import KAGGLE_PLATFORM, check_wheels, expand_platforms, parse_wheel_filename

__all__ = [
    "BUNDLE_MD",
    "BundleFile",
    "BundleReport",
    "bundle_parts",
    "check_size",
    "human_size",
    "list_files",
    "part_sizes",
    "read_bundle_md",
    "size_lines",
    "verify_bundle",
    "write_bundle_md",
]

BUNDLE_MD = "BUNDLE.md"
_HEADER_TAG = "arena_core-bundle"
INPUT = "/kaggle/input"


def either_layout_install(slug: str, root: str = INPUT) -> list[str]:
    """Python lines that install the bundle's wheels wherever Kaggle mounted ``slug`` under ``root``
    (``<root>/<slug>/`` or ``<root>/datasets/<owner>/<slug>/``, as ``kaggle.mounts`` knows them)."""
    return [
        "import glob, subprocess, sys",
        f'wheels = sorted(glob.glob("{root}/{slug}/wheels/*.whl") + glob.glob("{root}/datasets/*/{slug}/wheels/*.whl"))',
        'subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", *wheels], check=True)',
    ]


# ============================================================================ the listing
@dataclass
class BundleFile:
    """One row of the listing."""

    path: str  # relative to the bundle root, "/" separated
    size: int
    sha256: str


@dataclass
class BundleReport:
    """What :func:`~arena_core.kaggle.bundle.build_bundle` put where; ``summary()`` is what the command prints."""

    out_dir: Path
    dataset_id: str
    title: str
    python: str
    platform: str | list[str]
    runs: list[RunInfo]
    bases: list[str]  # folder names under models/base/ (base identities)
    wheels: list[str]
    files: list[BundleFile]
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str | None:
        """The first bundled base (most bundles carry one)."""
        return self.bases[0] if self.bases else None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def summary(self) -> str:
        lines = [
            f"bundle {self.out_dir}  ({human_size(self.total_bytes)}, {len(self.files)} files)",
            f"  dataset  {self.dataset_id}  {self.title!r}",
            f"  target   CPython {self.python} / {self.platform if isinstance(self.platform, str) else self.platform[0]}",
            f"  wheels   {', '.join(self.wheels)}",
        ]
        for r in self.runs:
            tok = f"; tokenizer: its base's, {r.tokenizer_from}" if r.tokenizer_from else ""
            lines.append(
                f"  run      models/{r.name}/  ({r.kind}, base {r.base_model or '-'}, {human_size(r.nbytes)}{tok})"
            )
        lines += [f"  base     models/base/{b}/" for b in self.bases]
        lines += [f"  note     {n}" for n in self.notes]
        listing = self.out_dir / BUNDLE_MD
        extra = [(BUNDLE_MD, listing.stat().st_size)] if listing.is_file() else []
        return "\n".join(lines + size_lines(part_sizes([(f.path, f.size) for f in self.files] + extra)))


def human_size(n: float) -> str:
    """``1.5 GiB`` rather than a byte count, for messages and the listing."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def part_sizes(files) -> dict[str, int]:
    """Bytes per part of a bundle from ``(path, size)`` pairs: ``wheels/``, each ``models/base/<id>/``,
    each ``models/<run>/``, then the metadata files; in that order."""
    parts: dict[str, int] = {}
    for path, size in files:
        bits = path.split("/")
        if bits[0] == "wheels":
            key = "wheels/"
        elif bits[0] == "models" and len(bits) > 3 and bits[1] == "base":
            key = f"models/base/{bits[2]}/"
        elif bits[0] == "models" and len(bits) > 2:
            key = f"models/{bits[1]}/"
        else:
            key = path
        parts[key] = parts.get(key, 0) + size

    def order(key: str) -> int:
        return (
            0
            if key == "wheels/"
            else 1
            if key.startswith("models/base/")
            else 2
            if key.startswith("models/")
            else 3
        )

    return dict(sorted(parts.items(), key=lambda kv: order(kv[0])))


def size_lines(parts: dict[str, int]) -> list[str]:
    """The size of each part and the total, aligned (what build_dataset.py prints)."""
    width = max((len(k) for k in parts), default=0)
    total = sum(parts.values())
    lines = [f"  size     {k:<{width}}  {human_size(v):>10}" for k, v in parts.items()]
    lines.append(
        f"  total    {'':<{width}}  {human_size(total):>10}  ({total / 1e9:.3f} GB, as --max-size-gb counts)"
    )
    return lines


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * 2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(root: Path) -> list[BundleFile]:
    """Every file under ``root`` but BUNDLE.md itself, hashed; refuses names a Markdown row cannot hold."""
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


def write_bundle_md(root: Path, report: BundleReport, header: dict, pins: list[tuple[str, str]]) -> None:
    """BUNDLE.md: a machine-readable header (the build settings), install notes, the file table."""
    owner, _, slug = report.dataset_id.rpartition("/")
    sizes = part_sizes((f.path, f.size) for f in report.files)
    extra = " ".join(f"{n}=={v}" for n, v in pins)
    install = "!pip install --no-index --no-deps {}/wheels/*.whl"
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
            f"- `models/{r.name}/` - {r.kind} run, base model `{r.base_model or 'n/a'}` ({human_size(r.nbytes)}"
            + (f"; its tokenizer is the base's, `{r.tokenizer_from}`)" if r.tokenizer_from else ")")
            for r in report.runs
        ],
        *[
            f"- `models/base/{b}/` - base checkpoint for the adapter runs ({human_size(sizes.get(f'models/base/{b}/', 0))})"
            for b in report.bases
        ],
        "",
        f"{len(report.files)} files, {human_size(report.total_bytes)} ({report.total_bytes / 1e9:.3f} GB) without "
        f"this {BUNDLE_MD}: wheels {human_size(sizes.get('wheels/', 0))}, each base and run as listed.",
        "",
        "## Install in a Kaggle notebook (internet off)",
        "",
        f"Attach the dataset `{report.dataset_id}` (and the competition data), then in the first cell the line "
        "for the layout Kaggle mounted it in (`ls /kaggle/input` shows which):",
        "",
        f"- new layout, `/kaggle/input/datasets/{owner}/{slug}/`:",
        "",
        "  ```",
        "  " + install.format(f"{INPUT}/datasets/{owner}/{slug}"),
        "  ```",
        "",
        f"- old layout, `/kaggle/input/{slug}/`:",
        "",
        "  ```",
        "  " + install.format(f"{INPUT}/{slug}"),
        "  ```",
        "",
        "- either layout (Python):",
        "",
        "  ```python",
        *[f"  {line}" for line in either_layout_install(slug)],
        "  ```",
        "",
        "`--no-index` keeps pip offline and `--no-deps` keeps it from re-resolving the image: arena_core's own "
        "dependencies (torch, transformers, peft, numpy, pandas, pyarrow, pyyaml, tqdm, safetensors) come "
        f"from the image as they are. The carried extras ({extra or 'none'}) are best installed by the "
        "inference notebook's install cell, which keeps the image's own bitsandbytes when it is new enough. "
        "Kaggle mounts the dataset at `/kaggle/input/<slug>/` or `/kaggle/input/datasets/<owner>/<slug>/`; "
        "`arena_core.kaggle.mounts.discover()` finds it either way.",
        "",
        "Runs are then at `<mount>/models/<run>/`"
        + (
            f"; base models at `<mount>/models/base/<identity>/` ({', '.join(report.bases)})"
            if report.bases
            else ""
        )
        + " (each bundled run's manifest names its base's folder; `arena_core.models.runs.load_run` looks there).",
        "",
        "## Files",
        "",
        f"Every file in the bundle except this {BUNDLE_MD}; check one with `sha256sum FILE`.",
        "",
        "| File | Bytes | Size | SHA-256 |",
        "|---|---:|---:|---|",
        *[f"| `{f.path}` | {f.size:,} | {human_size(f.size)} | `{f.sha256}` |" for f in report.files],
        "",
    ]
    (root / BUNDLE_MD).write_text("\n".join(lines), encoding="utf-8")


def read_bundle_md(root: Path) -> tuple[dict, dict[str, tuple[int, str]]]:
    """(header, {path: (size, sha256)}) back from BUNDLE.md."""
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


# ============================================================================ checks
def check_size(parts: dict[str, int], max_size_gb: float | None) -> None:
    """Refuse a bundle over ``max_size_gb``, naming its largest parts (what to drop)."""
    if max_size_gb is None:
        return
    total = sum(parts.values())
    if total > max_size_gb * 1e9:
        biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:5]
        raise BundleError(
            f"bundle would be {total / 1e9:.3f} GB, over max_size_gb={max_size_gb}; largest parts: "
            + ", ".join(f"{k} {human_size(v)}" for k, v in biggest)
        )


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
    header, listed = read_bundle_md(root)
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
    check_size(bundle_parts(root), limit)
    return header


def bundle_parts(root: str | os.PathLike) -> dict[str, int]:
    """:func:`part_sizes` of the bundle folder ``root`` as it is on disk (BUNDLE.md included)."""
    root = Path(root)
    return part_sizes(
        (p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*") if p.is_file()
    )
