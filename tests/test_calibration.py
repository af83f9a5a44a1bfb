"""Temperature scaling and fitted ensemble weights: pure numpy, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from arena_core.evaluation.calibration import Calibration, apply_temperature, fit_calibration, fit_temperature
from arena_core.evaluation.metrics import log_loss
from arena_core.inference.combine import combine
from arena_core.inference.weights import FittedWeights, fit_weights, project_to_simplex, read_weights_file


def sample(n: int, k: int, seed: int):
    """Labels drawn from known probabilities: those probabilities are calibrated by construction."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.8), size=n)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return labels, probs


def sharpen(probs, power):
    p = probs**power
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 3])
def test_fitted_temperature_lowers_log_loss_on_an_over_confident_frame(k):
    labels, true = sample(4000, k, seed=k)
    over = sharpen(true, 3.0)  # the model is three times too sure of itself
    cal = fit_calibration(labels, over, fitted_on="test frame")
    assert 2.5 < cal.temperature < 3.5  # recovers the power it was sharpened by
    assert cal.log_loss_after < cal.log_loss_before - 0.05
    assert cal.log_loss_after == pytest.approx(log_loss(labels, apply_temperature(over, cal.temperature)))
    fixed = apply_temperature(over, cal.temperature)
    assert (fixed.argmax(1) == over.argmax(1)).all()  # decisions unchanged
    # the optimum: a brute-force scan finds nothing better
    scan = min(log_loss(labels, apply_temperature(over, t)) for t in np.linspace(0.5, 6, 221))
    assert cal.log_loss_after <= scan + 1e-9
    # an under-confident model gets a temperature below 1
    assert fit_temperature(labels, sharpen(true, 0.4)) < 0.6


def test_temperature_ignores_ties_for_two_class_probs_and_round_trips(tmp_path):
    labels, true = sample(500, 2, seed=7)
    with_ties = np.concatenate([labels, [2, 2, 2]])
    probs = np.concatenate([sharpen(true, 2.0), [[0.99, 0.01]] * 3])
    cal = fit_calibration(with_ties, probs, "oof")
    assert cal.n == 500
    assert cal.temperature == pytest.approx(fit_temperature(labels, sharpen(true, 2.0)))
    cal.save(tmp_path)
    assert Calibration.load(tmp_path) == cal
    assert Calibration.load(tmp_path / "nothing-here") is None
    (tmp_path / "calibration.json").write_text(
        '{"temperature": -1, "n": 1, "log_loss_before": 1, "log_loss_after": 1}'
    )
    with pytest.raises(ValueError, match="calibration.json: temperature must be a number > 0"):
        Calibration.load(tmp_path)


def test_projection_onto_the_simplex():
    for v in ([0.2, 0.3, 0.5], [5.0, -1.0, 0.0], [-3.0, -2.0], [0.0, 0.0, 0.0, 10.0]):
        w = project_to_simplex(np.array(v))
        assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    assert project_to_simplex(np.array([0.2, 0.3, 0.5])) == pytest.approx([0.2, 0.3, 0.5])
    assert project_to_simplex(np.array([5.0, -1.0, 0.0])) == pytest.approx([1.0, 0.0, 0.0])


@pytest.mark.parametrize("mode", ["prob", "logit"])
def test_fitted_weights_minimise_log_loss_on_the_simplex(mode):
    labels, true = sample(3000, 3, seed=11)
    rng = np.random.default_rng(0)
    good = sharpen(true, 0.9)
    noisy = sharpen(0.5 * true + 0.5 * rng.dirichlet(np.ones(3), size=len(true)), 1.5)
    useless = np.full_like(true, 1 / 3)
    members = [noisy, good, useless]
    w = fit_weights(labels, members, mode)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    assert w[1] == w.max()
    best = log_loss(labels, combine(members, w, mode))
    assert best <= log_loss(labels, combine(members, None, mode)) - 0.01
    assert best <= min(log_loss(labels, m) for m in members) + 1e-12
    grid = np.linspace(0, 1, 41)
    brute = min(
        log_loss(labels, combine(members, [a, b, max(0.0, 1 - a - b)], mode))
        for a in grid
        for b in grid
        if a + b <= 1 + 1e-12
    )
    assert best <= brute + 1e-6


def test_weights_file_round_trip_by_name_and_refused_when_a_name_differs(tmp_path):
    labels, true = sample(300, 2, seed=3)
    fitted = FittedWeights.fit(
        ["big", "small"], labels, [sharpen(true, 1.0), sharpen(true, 4.0)], sources=["a", "b"]
    )
    path = fitted.save(tmp_path / "w.json")
    assert fitted.weights[0] > fitted.weights[1]
    assert read_weights_file(path, ["small", "big"]) == [fitted.weights[1], fitted.weights[0]]
    # never by position: a run that is not named in the file gets no one else's weight
    with pytest.raises(ValueError, match=r"holds weights for \['big', 'small'\].*named \['run1', 'run2'\]"):
        read_weights_file(path, ["run1", "run2"])
    with pytest.raises(ValueError, match=r"\['r2x'\] not in the file"):
        read_weights_file(path, ["small", "r2x"])
    assert read_weights_file(path, ["small"]) == [fitted.weights[1]]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not an ensemble weights file"):
        read_weights_file(tmp_path / "bad.json", ["a"])
