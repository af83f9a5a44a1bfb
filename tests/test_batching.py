"""Token-budget batches: every row once, budget respected, little padding, stable tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from arena_core.encoding.batching import collate, padding_efficiency, plan_batches


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 1024), min_size=1, max_size=300),
    budget=st.integers(256, 20000),
    max_rows=st.integers(1, 64),
)
def test_every_row_once_and_budget_respected(lengths, budget, max_rows):
    batches = plan_batches(lengths, budget, max_rows)
    seen = np.concatenate([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b.index) <= max_rows
        assert b.padded_length == max(lengths[i] for i in b.index)
        assert b.cost <= budget or len(b.index) == 1
    # longest first
    assert [b.padded_length for b in batches] == sorted((b.padded_length for b in batches), reverse=True)


def test_padding_efficiency_on_realistic_lengths():
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(6, 0.6, 5000).astype(int), 30, 1024)
    batches = plan_batches(lengths, token_budget=16384, max_rows=64)
    assert padding_efficiency(lengths, batches) >= 0.95
    # the seed-style alternative (everything padded to 1024) wastes most of its compute
    fixed = [
        type(batches[0])(index=np.arange(i, min(i + 8, len(lengths))), padded_length=1024)
        for i in range(0, len(lengths), 8)
    ]
    assert padding_efficiency(lengths, fixed) < 0.6


def test_oversized_row_gets_own_batch_and_multiple_of():
    batches = plan_batches([5000, 10, 12], token_budget=1000, max_rows=8, pad_to_multiple_of=8)
    assert batches[0].index.tolist() == [0] and batches[0].padded_length == 5000
    assert batches[1].padded_length == 16 and sorted(batches[1].index.tolist()) == [1, 2]
    with pytest.raises(ValueError):
        plan_batches([1], token_budget=0)


def test_collate_right_and_left():
    seqs = [np.array([5, 6, 7]), np.array([8])]
    right = collate(seqs, pad_id=0, padding_side="right")
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert "position_ids" not in right
    left = collate(seqs, pad_id=0, padding_side="left", padded_length=4)
    assert left["input_ids"].tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]]
    assert left["position_ids"].tolist() == [[0, 0, 1, 2], [0, 0, 0, 0]]
    assert left["input_ids"].dtype == torch.int64
    with pytest.raises(ValueError, match="padding_side"):
        collate(seqs, 0, "middle")


def test_min_fill_splits_sparse_batches():
    lengths = [1000, 990, 400, 390, 385]
    plain = plan_batches(lengths, token_budget=100_000, max_rows=64)
    assert len(plain) == 1 and padding_efficiency(lengths, plain) < 0.65
    filled = plan_batches(lengths, token_budget=100_000, max_rows=64, min_fill=0.9)
    assert [sorted(b.index.tolist()) for b in filled] == [[0, 1], [2, 3, 4]]
    assert padding_efficiency(lengths, filled) > 0.98
