"""The ``arena`` command lines the Kaggle notebooks run, built where the tests reach them.

The training notebook's launcher (:mod:`~arena_core.kaggle.train_launch`) builds its ``arena train``
command with :func:`train_argv`, the config as ``--set`` overrides with :func:`config_overrides`;
the inference notebook's ``arena predict`` line is :func:`arena_core.kaggle.steps.infer_argv`.
Only the standard library at import time: the notebooks import this before anything heavy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

__all__ = ["config_overrides", "train_argv"]


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
