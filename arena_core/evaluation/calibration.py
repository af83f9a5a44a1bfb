"""Temperature scaling: one number that makes a model's probabilities as confident as it is right.

LMSYS is scored by log loss, where an over-confident model pays for every wrong answer it was
sure of. Dividing the log-probabilities by a temperature ``T`` (> 1 softens, < 1 sharpens) keeps
every decision (the argmax) and can only lower the log loss on the rows it is fitted on. Fit it
on rows the model did not train on (the evaluation fold or the out-of-fold predictions), store
it in the run directory, and ``arena predict`` applies it.

Why a bisection: the negative log-likelihood is convex in ``1/T`` (a log-sum-exp of a linear
function minus a linear function), so its derivative is increasing and one root finder suffices.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from arena_core.evaluation.metrics import log_loss

__all__ = ["CALIBRATION_FILE", "Calibration", "apply_temperature", "fit_calibration", "fit_temperature"]

CALIBRATION_FILE = "calibration.json"
T_RANGE = (0.05, 20.0)  # a temperature outside this range means something else is wrong
_EPS = 1e-15


def _log_probs(probs) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, None)
    return np.log(p / p.sum(axis=1, keepdims=True))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row: the same argmax, softer (T > 1) or sharper (T < 1)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = _log_probs(probs) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _scorable(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities with tie rows dropped when the probabilities have no tie column."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"labels ({y.shape[0]}) and probs {p.shape} do not match")
    keep = y < p.shape[1]
    return y[keep], p[keep]


def fit_temperature(labels, probs, bounds: tuple[float, float] = T_RANGE) -> float:
    """The temperature that minimises the log loss of ``probs`` against ``labels`` (within ``bounds``)."""
    y, p = _scorable(labels, probs)
    if y.size == 0:
        raise ValueError("no labelled rows to fit a temperature on")
    z = _log_probs(p)
    z_true = z[np.arange(y.size), y]

    def slope(beta: float) -> float:  # d/d(beta) of the mean NLL of softmax(beta * z)
        s = beta * z
        s -= s.max(axis=1, keepdims=True)
        q = np.exp(s)
        q /= q.sum(axis=1, keepdims=True)
        return float(np.mean((q * z).sum(axis=1) - z_true))

    lo, hi = 1.0 / bounds[1], 1.0 / bounds[0]
    if slope(lo) >= 0:
        return float(bounds[1])
    if slope(hi) <= 0:
        return float(bounds[0])
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if slope(mid) > 0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-10 * hi:
            break
    return float(1.0 / (0.5 * (lo + hi)))


@dataclass
class Calibration:
    """A fitted temperature and the evidence for it, as stored in ``RUN_DIR/calibration.json``."""

    temperature: float
    n: int
    log_loss_before: float
    log_loss_after: float
    fitted_on: str = ""

    def summary(self) -> str:
        where = f" on {self.fitted_on}" if self.fitted_on else ""
        return (
            f"temperature {self.temperature:.3f} fitted{where} ({self.n} rows): "
            f"log loss {self.log_loss_before:.4f} -> {self.log_loss_after:.4f}"
        )

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / CALIBRATION_FILE
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> Calibration | None:
        """The run's calibration, or None when it has none."""
        path = Path(run_dir) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            cal = cls(**{k: data[k] for k in ("temperature", "n", "log_loss_before", "log_loss_after")})
            cal.fitted_on = str(data.get("fitted_on", ""))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a calibration file ({exc})") from exc
        if not (isinstance(cal.temperature, (int, float)) and cal.temperature > 0):
            raise ValueError(f"{path}: temperature must be a number > 0, got {cal.temperature!r}")
        return cal


def fit_calibration(labels, probs, fitted_on: str = "") -> Calibration:
    """Fit a temperature and measure the log loss before and after on the same rows."""
    y, p = _scorable(labels, probs)
    t = fit_temperature(y, p)
    return Calibration(t, int(y.size), log_loss(y, p), log_loss(y, apply_temperature(p, t)), fitted_on)
