"""The pure combination maths behind TTA and ensembles: prob vs logit averaging, weights, masks."""

from __future__ import annotations

import numpy as np
import pytest

from arena_core.inference.combine import combine, normalise_weights, swap_columns


def test_combine_prob_vs_logit_and_weights():
    p1 = np.array([[0.9, 0.1], [0.5, 0.5]])
    p2 = np.array([[0.5, 0.5], [0.2, 0.8]])
    assert np.allclose(combine([p1, p2]), [[0.7, 0.3], [0.35, 0.65]])
    assert np.allclose(combine([p1, p2], [3, 1]), [[0.8, 0.2], [0.425, 0.575]])
    geo = np.sqrt(p1 * p2)
    assert np.allclose(combine([p1, p2], mode="logit"), geo / geo.sum(axis=1, keepdims=True))
    # logit mode cancels +c / -c offsets exactly
    s = np.array([[0.3, -0.2]])
    soft = lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)  # noqa: E731
    assert np.allclose(combine([soft(s + [[4, 0]]), soft(s + [[0, 4]])], mode="logit"), soft(s))
    # mask: a member that did not score a row is left out of it; no member -> NaN
    out = combine([p1, p2], mask=[[True, False], [False, False]])
    assert np.allclose(out[0], p1[0]) and np.isnan(out[1]).all()
    assert np.allclose(swap_columns(np.array([[0.1, 0.7, 0.2]])), [[0.7, 0.1, 0.2]])
    assert np.allclose(swap_columns(swap_columns(p1)), p1)
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(ValueError):
            normalise_weights(bad, 2)
    with pytest.raises(ValueError):
        combine([p1, p2], mode="median")
