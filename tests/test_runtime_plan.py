"""Time budgets and run-time estimates: duration parsing, Kaggle detection, the planner's batches."""

from __future__ import annotations

import numpy as np
import pytest

from arena_core.encoding.batching import padding_efficiency, plan_batches
from arena_core.inference.runtime_plan import detect_time_budget, parse_duration, plan_runtime


def test_parse_duration_and_detect_budget(tmp_path):
    assert parse_duration("4.5h") == 16200 and parse_duration("30m") == 1800
    assert parse_duration("90s") == 90 and parse_duration("1200") == 1200 and parse_duration("1h30m") == 5400
    assert parse_duration("none") is None
    for bad in ("soon", "4.5x", "h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    nowhere = tmp_path / "no-kaggle"
    assert detect_time_budget({}, nowhere) is None
    assert detect_time_budget({"KAGGLE_KERNEL_RUN_TYPE": "Batch"}, nowhere) == 4.5 * 3600
    assert detect_time_budget({}, tmp_path) == 4.5 * 3600


def test_min_fill_keeps_padding_small_and_every_row_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 600, size=37)
    batches = plan_batches(lengths, token_budget=4096, max_rows=64, min_fill=0.9)
    rows = np.concatenate([b.index for b in batches])
    assert sorted(rows.tolist()) == list(range(37))
    assert all(b.cost <= 4096 or len(b.index) == 1 for b in batches)
    assert all(lengths[b.index].min() >= 0.9 * b.padded_length for b in batches)
    assert padding_efficiency(lengths, batches) >= 0.9
    assert padding_efficiency(lengths, plan_batches(lengths, 4096, 64)) < 0.85  # what the fill rule fixes


def test_plan_runtime():
    lengths = np.array([100] * 50 + [1000] * 50)
    plan = plan_runtime(lengths, tokens_per_s=1000.0, gpus=2, tta="swap", token_budget=2000, max_rows=64)
    assert plan.computed_tokens == 55_000 and plan.padding_efficiency == pytest.approx(1.0)
    assert plan.seconds_min == pytest.approx(27.5) and plan.seconds_max == pytest.approx(55.0)
    rows = plan_runtime(lengths, rows_per_s=2.0, gpus=1, tta="none")
    assert rows.seconds_max == pytest.approx(50.0)
    assert "does not fit" in rows.summary(budget_s=10)
    with pytest.raises(ValueError):
        plan_runtime(lengths, rows_per_s=1.0, tokens_per_s=1.0)
