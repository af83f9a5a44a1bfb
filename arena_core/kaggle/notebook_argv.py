"""The ``arena`` command lines the Kaggle notebooks run, built where the tests reach them.

The notebooks' code cells only call :func:`predict_argv` / :func:`train_argv` and hand the result
to :func:`arena_core.cli.main`; every decision (which runs a bundle holds, weights, TTA, the
base model folder) is made here. Only the standard library at import time: the notebooks import
this before anything heavy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["bundle_runs", "config_overrides", "predict_argv", "train_argv"]


def bundle_runs(bundle_dir: str | Path) -> list[str]:
    """Names of the run directories in ``BUNDLE/models/`` (every folder with a manifest.json but ``base``)."""
    models = Path(bundle_dir) / "models"
    if not models.is_dir():
        raise FileNotFoundError(
            f"{models}: not found; is {bundle_dir} an arena_core bundle (wheels/, models/)?"
        )
    return sorted(p.name for p in models.iterdir() if p.name != "base" and (p / "manifest.json").is_file())


def predict_argv(
    competition_dir: str | Path,
    bundle_dir: str | Path,
    runs: Sequence[str] = (),
    weights: Sequence[float] | str | Path = (),
    *,
    tta: str | None = "swap",
    time_budget: str | None = "4.5h",
    out: str | Path = "submission.csv",
    extra: Iterable[str] = (),
) -> list[str]:
    """The ``arena predict`` arguments for runs inside a bundle.

    ``runs``: names under ``BUNDLE/models/`` (an absolute path is taken as is); empty: every run in
    the bundle. ``weights``: one per run, empty for equal weights, or the path of a weights file
    written by ``arena ensemble`` (relative paths are taken inside the bundle). ``tta``/``time_budget``:
    ``None`` or ``""`` leaves the run's / the engine's default.
    """
    available = bundle_runs(bundle_dir)
    names = [str(r) for r in runs] or available
    if not names:
        raise FileNotFoundError(f"{Path(bundle_dir) / 'models'}: holds no run (no */manifest.json)")
    models = Path(bundle_dir) / "models"
    paths = [models / n for n in names]
    missing = [str(p) for p in paths if not (p / "manifest.json").is_file()]
    if missing:
        raise FileNotFoundError(f"run(s) not found: {missing}; the bundle holds {available}")
    if isinstance(weights, (str, Path)):  # a weights file written by 'arena ensemble'
        weight_args = [str(Path(bundle_dir) / weights)] if weights else []
    else:
        weight_args = [repr(float(w)) for w in weights]
        if weight_args and len(weight_args) != len(paths):
            raise ValueError(f"WEIGHTS has {len(weight_args)} value(s) for {len(paths)} run(s) {names}")
    argv = ["predict", "--data-dir", str(competition_dir)]
    for p in paths:
        argv += ["--model", str(p)]
    if weight_args:
        argv += ["--weights", *weight_args]
    if tta:
        argv += ["--tta", str(tta)]
    if time_budget:
        argv += ["--time-budget", str(time_budget)]
    return [*argv, "--out", str(out), *extra]


def train_argv(
    competition_dir: str | Path,
    config: str | Path | None,
    base_model_dir: str | Path | None,
    overrides: Iterable[str] = (),
    out_dir: str | Path = "run",
    *,
    extra: Iterable[str] = (),
) -> list[str]:
    """The ``arena train`` arguments: ``config`` ``""``/``None`` starts from the library defaults."""
    if base_model_dir and not (Path(base_model_dir) / "config.json").is_file():
        parent = Path(base_model_dir).parent
        seen = sorted(p.name for p in parent.iterdir())[:20] if parent.is_dir() else []
        raise FileNotFoundError(
            f"BASE_MODEL_DIR {base_model_dir}: no config.json there. Attach the model to the notebook "
            "(Add Input -> Models, e.g. Gemma 2 / transformers / gemma-2-2b-it) and point BASE_MODEL_DIR at "
            "the folder holding config.json"
            + (f"; {parent} holds {seen}" if seen else f"; {parent} does not exist")
        )
    argv = ["train", "--data-dir", str(competition_dir), "--out", str(out_dir)]
    if config:
        argv += ["--config", str(config)]
    if base_model_dir:
        argv += ["--model", str(base_model_dir)]
    for item in overrides:
        argv += ["--set", str(item)]
    return [*argv, *extra]


def config_overrides(path: str | Path, skip: Iterable[str] = ("model.path",)) -> list[str]:
    """A YAML/JSON config as ``section.key=value`` overrides (what ``arena train --set`` takes)."""
    from arena_core.config import load_config

    path = Path(path)
    load_config(path)  # refuse unknown keys and unreadable values here, not on Kaggle
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
    else:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    skip = set(skip)
    out = []
    for section, values in data.items():
        for key, value in (values or {}).items():
            dotted = f"{section}.{key}"
            if dotted in skip:
                continue
            out.append(f"{dotted}={value if isinstance(value, str) else json.dumps(value)}")
    return out
