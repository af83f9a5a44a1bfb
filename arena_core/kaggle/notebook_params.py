"""Papermill-style parameters: read a notebook's ``parameters`` cell, inject overrides after it.

:func:`inject_parameters` adds a cell tagged ``injected-parameters`` after the one tagged
``parameters`` (as papermill does), which is how the tests point the notebooks at a fake
``/kaggle/input`` layout. nbformat is imported inside the function that needs it.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

__all__ = ["INJECTED_TAG", "PARAMETERS_TAG", "inject_parameters", "notebook_parameters"]

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def _parameter_index(nb, tag: str) -> int | None:
    hits = [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]
    if len(hits) > 1:
        raise ValueError(f"{len(hits)} cells are tagged {tag!r}; expected at most one")
    return hits[0] if hits else None


def notebook_parameters(nb) -> dict[str, Any]:
    """Names and default values of the parameters cell (literal assignments only)."""
    idx = _parameter_index(nb, PARAMETERS_TAG)
    if idx is None:
        raise ValueError(f"the notebook has no cell tagged {PARAMETERS_TAG!r}")
    params = {}
    for node in ast.parse(nb.cells[idx].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            params[node.targets[0].id] = ast.literal_eval(node.value)
    return params


def inject_parameters(nb, params: dict[str, Any]):
    """A copy of ``nb`` with ``params`` set in a cell tagged ``injected-parameters`` after the parameters cell.

    Like papermill: the defaults stay visible, the injected cell overrides them, and injecting again
    replaces the earlier injected cell. Names must exist in the parameters cell; values must be
    Python literals (``Path`` values are written as strings).
    """
    from nbformat import v4

    known = notebook_parameters(nb)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise KeyError(f"unknown notebook parameter(s) {unknown}; the notebook has {sorted(known)}")
    lines = ["# Injected parameters (arena_core.kaggle.notebooks.inject_parameters)"]
    for name, value in params.items():
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, (list, tuple)):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        text = repr(value)
        try:
            ok = ast.literal_eval(text) == value
        except (ValueError, SyntaxError):
            ok = False
        if not ok:
            raise ValueError(f"parameter {name}={value!r} is not a Python literal")
        lines.append(f"{name} = {text}")
    out = copy.deepcopy(nb)
    cell = v4.new_code_cell("\n".join(lines), id=INJECTED_TAG)
    cell.metadata["tags"] = [INJECTED_TAG]
    old = _parameter_index(out, INJECTED_TAG)
    if old is not None:
        out.cells[old] = cell
    else:
        out.cells.insert(_parameter_index(out, PARAMETERS_TAG) + 1, cell)
    return out
