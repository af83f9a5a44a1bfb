"""Ensemble weights fitted on out-of-fold predictions, and the file ``arena predict --weights`` reads.

Equal weights waste a strong member on a weak one. The weights here minimise the log loss of the
combined probabilities (the same :func:`~arena_core.inference.combine.combine` maths ``arena
predict`` uses, ``prob`` or ``logit`` mode) subject to weights >= 0 summing to 1.

Why projected gradient descent on the simplex: both losses are convex in the weights, so the
simplex-constrained minimum is global; projection (unlike a softmax parameterisation) can put a
useless member at exactly 0. A backtracking step keeps it stable without tuning; numpy only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from arena_core.inference.combine import ENSEMBLE_MODES, combine, softmax

__all__ = [
    "FittedWeights",
    "resolve_weights",
    "fit_ensemble_files",
    "fit_weights",
    "project_to_simplex",
    "read_member_probs",
    "read_weights_file",
]

if TYPE_CHECKING:
    import pandas as pd

FORMAT = "arena_core.ensemble_weights/1"
_EPS = 1e-15


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """The closest point (Euclidean) to ``v`` with entries >= 0 summing to 1 (sort-based projection)."""
    v = np.asarray(v, dtype=np.float64)
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.arange(1, v.size + 1)
    rho = int(np.nonzero(u - css / k > 0)[0][-1])
    return np.maximum(v - css[rho] / (rho + 1), 0.0)


def _loss_and_grad(w: np.ndarray, stack: np.ndarray, y: np.ndarray, mode: str) -> tuple[float, np.ndarray]:
    rows = np.arange(y.size)
    if mode == "prob":
        p_true = np.clip(np.einsum("m,mn->n", w, stack[:, rows, y]), _EPS, None)
        return float(-np.mean(np.log(p_true))), -np.mean(stack[:, rows, y] / p_true, axis=1)
    z = np.log(np.clip(stack, _EPS, None))  # (m, n, k)
    q = softmax(np.einsum("m,mnk->nk", w, z))
    loss = float(-np.mean(np.log(np.clip(q[rows, y], _EPS, None))))
    grad = -np.mean(z[:, rows, y] - np.einsum("nk,mnk->mn", q, z), axis=1)
    return loss, grad


def fit_weights(
    labels, prob_list, mode: str = "prob", max_iter: int = 2000, tol: float = 1e-10
) -> np.ndarray:
    """Weights (>= 0, sum 1) that minimise the log loss of ``combine(prob_list, w, mode)`` on ``labels``."""
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"ensemble mode must be one of {ENSEMBLE_MODES}, got {mode!r}")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in prob_list])
    y = np.asarray(labels, dtype=np.int64)
    if stack.ndim != 3 or stack.shape[1] != y.size:
        raise ValueError(f"each member needs one (n={y.size}, k) array, got {stack.shape}")
    if not np.all(np.isfinite(stack)):
        raise ValueError("member probabilities contain NaN/inf")
    m = stack.shape[0]
    w = np.full(m, 1.0 / m)
    if m == 1:
        return w
    loss, grad = _loss_and_grad(w, stack, y, mode)
    step = 1.0
    for _ in range(max_iter):
        while True:
            new = project_to_simplex(w - step * grad)
            new_loss, new_grad = _loss_and_grad(new, stack, y, mode)
            d = new - w
            if new_loss <= loss + grad @ d + (d @ d) / (2 * step) or step < 1e-12:
                break
            step *= 0.5
        moved = float(np.abs(d).max())
        w, loss, grad = new, new_loss, new_grad
        if moved < tol:
            break
        step = min(step * 2.0, 1e6)
    return w


@dataclass
class FittedWeights:
    """Fitted weights with the evidence, as written for ``arena predict --weights FILE`` and the notebook."""

    names: list[str]
    weights: list[float]
    mode: str
    n: int
    log_loss: float
    log_loss_equal: float
    log_loss_members: dict[str, float] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def summary(self) -> str:
        members = ", ".join(f"{n} {w:.3f}" for n, w in zip(self.names, self.weights))
        return (
            f"weights ({self.mode} mode, {self.n} rows): {members}; log loss {self.log_loss:.4f} "
            f"(equal weights {self.log_loss_equal:.4f}; best single "
            f"{min(self.log_loss_members.values()):.4f})"
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=2), encoding="utf-8")
        return path

    @classmethod
    def fit(cls, names, labels, prob_list, mode: str = "prob", sources=()) -> FittedWeights:
        from arena_core.evaluation.metrics import log_loss

        w = fit_weights(labels, prob_list, mode)
        members = {n: log_loss(labels, p) for n, p in zip(names, prob_list)}
        return cls(
            list(names),
            [float(x) for x in w],
            mode,
            int(len(labels)),
            log_loss(labels, combine(prob_list, w, mode)),
            log_loss(labels, combine(prob_list, None, mode)),
            members,
            [str(s) for s in sources],
        )


def resolve_weights(given: list | None, names: list[str]) -> list[float] | None:
    """``--weights`` as numbers: as given, or read from the one weights file ``arena ensemble`` wrote."""
    if not given or not any(isinstance(w, str) for w in given):
        return given
    if len(given) != 1:
        raise ValueError(f"--weights: expected numbers or one weights file, got {given}")
    weights = read_weights_file(given[0], names)
    print(f"weights from {given[0]}: " + ", ".join(f"{n} {w:.4f}" for n, w in zip(names, weights)))
    return weights


def read_weights_file(path: str | Path, models: list[str]) -> list[float]:
    """One weight per model in ``models`` (names) from a file written by ``arena ensemble``.

    Members are matched by name, and every model's name must be in the file: matching by position
    when names differ once gave one run another's weight without a word. A mismatch is an error
    listing both sides and the numbers to pass instead (``--weights W1 W2 ...``, in the order meant).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names, weights = list(data["names"]), [float(w) for w in data["weights"]]
    except FileNotFoundError:
        raise FileNotFoundError(f"weights file not found: {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not an ensemble weights file written by 'arena ensemble' ({exc})") from exc
    if len(names) != len(weights):
        raise ValueError(f"{path}: {len(names)} name(s) but {len(weights)} weight(s)")
    if set(models) <= set(names) and len(set(models)) == len(models):
        return [weights[names.index(m)] for m in models]
    missing = [m for m in models if m not in names]
    shown = ", ".join(f"{n} {w:.4g}" for n, w in zip(names, weights))
    raise ValueError(
        f"{path}: holds weights for {names} ({shown}), but the runs given are named {models} "
        f"({missing} not in the file); weights are matched by name only: name the run folders as in the "
        "file, or pass the numbers yourself in the order of the --model runs (--weights W1 W2 ...)"
    )


# ----------------------------------------------------------------------------- prediction files


def read_member_probs(path: str | Path) -> dict[str, pd.DataFrame]:
    """Each member's ``id, p_a, p_b[, p_tie][, label]`` frame in a predictions file.

    Accepts ``arena cv``'s ``oof.parquet`` (one member, named after its folder) and ``arena predict
    --save-probs`` files (one member per ``model``; the ``ensemble`` rows are left out), parquet or csv.
    """
    from arena_core.evaluation.predictions_io import read_prob_table

    path = Path(path)
    df = read_prob_table(path, "arena cv / predict")
    cols = ["id", "p_a", "p_b"] + [c for c in ("p_tie", "label") if c in df.columns]
    if "model" not in df.columns:
        return {path.parent.name if path.stem == "oof" else path.stem: df[cols].reset_index(drop=True)}
    return {
        str(name): part[cols].reset_index(drop=True)
        for name, part in df[df["model"] != "ensemble"].groupby("model", sort=False)
    }


def fit_ensemble_files(
    probs_files, labels_frame: pd.DataFrame | None = None, mode: str = "prob"
) -> tuple[FittedWeights, pd.DataFrame]:
    """Fit weights for the members in ``probs_files`` against the labels of ``labels_frame`` (by id),
    or against the files' own ``label`` column (``arena cv``'s OOF has one).

    Returns the weights and the combined predictions on the labelled rows (``id, p_a, p_b[,
    p_tie], label``): soft labels from several teachers at once.
    """
    import pandas as pd

    members: dict[str, pd.DataFrame] = {}
    sources: list[str] = []
    for f in probs_files:
        for name, frame in read_member_probs(f).items():
            base, i = name, 2
            while name in members:
                name, i = f"{base}#{i}", i + 1
            members[name] = frame
            sources.append(str(f))
    if len(members) < 2:
        raise ValueError(f"need at least two members to weight, found {list(members)} in {list(probs_files)}")
    ks = {n: 3 if "p_tie" in m.columns else 2 for n, m in members.items()}
    if len(set(ks.values())) != 1:
        raise ValueError(f"cannot weight 2-class and 3-class members together: {ks}")
    first_name, first = next(iter(members.items()))
    if labels_frame is not None:
        truth = labels_frame[["id", "label"]]
    elif "label" in first.columns:
        truth = first[["id", "label"]]
    else:
        raise ValueError(f"{sources[0]}: has no label column; pass the labelled data file (--data)")
    key = truth["id"].astype(str)
    truth = truth[truth["label"].notna()].assign(key=key)
    if ks[first_name] == 2:
        truth = truth[truth["label"] != 2]
    probs = []
    for name, m in members.items():
        keys = pd.Index(m["id"].astype(str))
        if keys.duplicated().any():
            raise ValueError(f"member {name!r}: duplicated ids, e.g. {keys[keys.duplicated()][:3].tolist()}")
        pos = keys.get_indexer(truth["key"])
        if (pos < 0).any():
            lacking = truth["key"][pos < 0]
            raise ValueError(
                f"member {name!r} has no prediction for {len(lacking)} labelled id(s), e.g. {lacking.iloc[:3].tolist()}"
            )
        cols = ["p_a", "p_b"] + (["p_tie"] if ks[name] == 3 else [])
        probs.append(m[cols].to_numpy(dtype=np.float64)[pos])
    labels = truth["label"].to_numpy(dtype=np.int64)
    fitted = FittedWeights.fit(list(members), labels, probs, mode, sources)
    mixed = combine(probs, fitted.weights, mode)
    combined = pd.DataFrame({"id": truth["id"].to_numpy(), "p_a": mixed[:, 0], "p_b": mixed[:, 1]})
    if mixed.shape[1] == 3:
        combined["p_tie"] = mixed[:, 2]
    combined["label"] = labels
    return fitted, combined
