"""Where Kaggle mounted a notebook's inputs: competition data, the bundle, runs and base weights.

Kaggle has mounted attached inputs in two layouts, and a notebook must work under both:

* old: ``/kaggle/input/<slug>/`` for a competition or a dataset, and
  ``/kaggle/input/<model>/<framework>/<variation>/<version>/`` for a Kaggle Model;
* new: ``/kaggle/input/competitions/<competition>/``, ``/kaggle/input/datasets/<owner>/<slug>/``,
  ``/kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>/`` (and attached
  notebook outputs under ``/kaggle/input/notebooks/<owner>/<slug>/``).

So nothing here assumes a path. :func:`scan` walks the input root (a few levels deep, the deepest
layout needs) and recognises folders by what they hold; :func:`discover` picks the one competition
folder and the one bundle, or stops with an error that lists everything it found. A notebook
parameter (a folder, or a name when several are attached) always wins over discovery.

Standard library only: the notebook's install cell imports this before anything else is installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "INPUT_ROOT",
    "Found",
    "MountError",
    "Mounts",
    "discover",
    "is_base",
    "is_bundle",
    "is_competition",
    "is_run",
    "scan",
]

INPUT_ROOT = "/kaggle/input"
# models/<owner>/<model>/<framework>/<variation>/<version>/ is 6 levels; a bundle's
# models/base/<identity>/ under datasets/<owner>/<slug>/ is 6 too. One more for a nested folder.
MAX_DEPTH = 7
_SKIP = {
    ".git",
    "__pycache__",
    ".ipynb_checkpoints",
    "wheels",
    "checkpoints",
    "tokenizer",
    "adapter",
    "booster",
}
_WEIGHTS = ("*.safetensors", "*.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


class MountError(FileNotFoundError):
    """Nothing (or too much) found under the input root; the message lists what is there."""


# ============================================================================ what a folder is
def is_competition(path: Path) -> bool:
    """A competition folder: ``test.parquet`` or ``test.csv`` beside ``sample_submission.csv``."""
    return (path / "sample_submission.csv").is_file() and (
        (path / "test.parquet").is_file() or (path / "test.csv").is_file()
    )


def is_bundle(path: Path) -> bool:
    """An arena_core bundle: ``wheels/arena_core-*.whl`` (the install cell looks for the same)."""
    wheels = path / "wheels"
    return wheels.is_dir() and any(wheels.glob("arena_core-*.whl"))


def is_run(path: Path) -> bool:
    """A run directory written by ``arena train`` or ``arena stack``: ``manifest.json`` and ``adapter/``,
    ``merged/`` or ``booster/``."""
    return (path / "manifest.json").is_file() and any(
        (path / d).is_dir() for d in ("adapter", "merged", "booster")
    )


def is_base(path: Path) -> bool:
    """A Hugging Face checkpoint: ``config.json`` and weights (safetensors / bin, or their index)."""
    return (path / "config.json").is_file() and any(any(path.glob(p)) for p in _WEIGHTS)


# ============================================================================ the walk
@dataclass
class Found:
    """Everything recognised under ``root``, each list sorted."""

    root: Path
    competitions: list[Path] = field(default_factory=list)
    bundles: list[Path] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)
    bases: list[Path] = field(default_factory=list)
    top: list[str] = field(default_factory=list)  # the root's own entries, for error messages

    def listing(self) -> str:
        """What was found, one kind per line (for error messages and the notebook log)."""

        def show(paths: list[Path]) -> str:
            return ", ".join(str(p) for p in paths) if paths else "none"

        return "\n".join(
            [
                f"  competition folders (test + sample_submission.csv): {show(self.competitions)}",
                f"  bundles (wheels/arena_core-*.whl): {show(self.bundles)}",
                f"  runs (manifest.json + adapter/, merged/ or booster/): {show(self.runs)}",
                f"  base checkpoints (config.json + weights): {show(self.bases)}",
                f"  {self.root} holds: {', '.join(self.top) if self.top else 'nothing'}",
            ]
        )


def scan(root: str | os.PathLike = INPUT_ROOT, max_depth: int = MAX_DEPTH) -> Found:
    """Walk ``root`` (symlinks followed once, ``max_depth`` levels) and sort folders into kinds.

    A run or a base checkpoint is a leaf (a run's ``merged/`` is not a second base); a bundle and
    a competition folder are searched further (a bundle holds ``models/<run>/`` and
    ``models/base/<identity>/``).
    """
    root = Path(root)
    found = Found(root)
    if not root.is_dir():
        return found
    found.top = sorted(p.name for p in root.iterdir())[:50]
    seen: set[str] = set()
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        if is_run(folder):
            found.runs.append(folder)
            continue
        if is_base(folder):
            found.bases.append(folder)
            continue
        if is_competition(folder):
            found.competitions.append(folder)
        if is_bundle(folder):
            found.bundles.append(folder)
        if depth >= max_depth:
            continue
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name in _SKIP or entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    stack.append((Path(entry.path), depth + 1))
            except OSError:
                continue
    for kind in (found.competitions, found.bundles, found.runs, found.bases):
        kind.sort()
    return found


# ============================================================================ the choice
@dataclass
class Mounts:
    """The folders a notebook works with, chosen from :class:`Found` (or given)."""

    root: Path
    competition: Path | None
    bundle: Path | None
    runs: list[Path]  # the bundle's runs first (models/<run>/), then runs found elsewhere
    bases: list[Path]  # base checkpoints found anywhere (the bundle's models/base/* included)
    found: Found

    def summary(self) -> str:
        lines = [
            f"competition {self.competition or '-'}",
            f"bundle      {self.bundle or '-'}",
            *[f"run         {r}" for r in self.runs],
            *[f"base        {b}" for b in self.bases],
        ]
        return "\n".join(lines)


def _pick(kind: str, given: str | os.PathLike | None, candidates: list[Path], check, found: Found) -> Path:
    """The one folder of ``kind``: ``given`` (a folder, or a name among the candidates), else the only find."""
    hint = {
        "competition folder": "attach the competition (Add Input -> Competitions) or set COMPETITION_DIR",
        "bundle": "attach the bundle dataset built by build_dataset.py (Add Input -> Datasets) or set BUNDLE_DIR",
    }[kind]
    if given:
        path = Path(given)
        if path.is_dir() and check(path):
            return path
        named = [c for c in candidates if c.name == str(given) or c.as_posix().endswith("/" + str(given))]
        if len(named) == 1:
            return named[0]
        why = "is not one" if path.is_dir() else "does not exist and names none of the finds"
        raise MountError(f"{kind} {given!r} {why}; found under {found.root}:\n{found.listing()}")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise MountError(f"no {kind} under {found.root}: {hint}. Found:\n{found.listing()}")
    raise MountError(
        f"{len(candidates)} {kind}s under {found.root}: {', '.join(map(str, candidates))}; name one "
        f"({'COMPETITION_DIR' if kind.startswith('competition') else 'BUNDLE_DIR'}: a folder or its name). "
        f"Found:\n{found.listing()}"
    )


def discover(
    root: str | os.PathLike = INPUT_ROOT,
    *,
    competition: str | os.PathLike | None = None,
    bundle: str | os.PathLike | None = None,
    need_competition: bool = True,
    need_bundle: bool = True,
) -> Mounts:
    """The competition folder, the bundle, the runs and the base checkpoints under ``root``.

    ``competition`` / ``bundle``: ``None``/``""`` discovers; a folder is taken as is (it must be
    one); a name picks among several finds (``lmsys-chatbot-arena``, ``jdoe/arena-core-bundle``).
    Missing or ambiguous finds raise :class:`MountError` listing everything found. With
    ``need_*=False`` a missing find is ``None`` instead (ambiguity still raises).
    """
    found = scan(root)
    # _pick raises on a missing find only when nothing was found: not needed and not named -> None.
    comp = bund = None
    if need_competition or competition or found.competitions:
        comp = _pick("competition folder", competition, found.competitions, is_competition, found)
    if need_bundle or bundle or found.bundles:
        bund = _pick("bundle", bundle, found.bundles, is_bundle, found)
    runs = list(found.runs)
    bases = list(found.bases)
    if bund is not None and not str(os.path.realpath(bund)).startswith(os.path.realpath(found.root)):
        extra = scan(bund, max_depth=3)  # a bundle given outside the root
        runs += [r for r in extra.runs if r not in runs]
        bases += [b for b in extra.bases if b not in bases]
    if bund is not None:
        inside = [r for r in runs if _within(r, bund)]
        runs = inside + [r for r in runs if not _within(r, bund)]
    return Mounts(found.root, comp, bund, runs, bases, found)


def _within(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
    except ValueError:
        return False
    return True
