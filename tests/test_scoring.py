"""The Scorer's guards on the real tiny Gemma-2 in fp16 with eager attention (CPU runs fp16 too)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from arena_core.config import ModelConfig
from arena_core.encoding.batching import collate
from arena_core.inference.scoring import Scorer
from arena_core.models.loading import load_classifier


@pytest.fixture(scope="module")
def overflowing_fp16(tiny_gemma2_dir):
    """Tiny Gemma-2 in fp16 whose first layer scores every query-key pair far below -16.

    Every token shares a large component along one direction, and head 0's query and key read it
    with opposite signs (on the lowest RoPE frequency, so position hardly changes it): the
    soft-capped score is about -50 everywhere. Added to the mask's finfo(float16).min that is
    -inf, so a query row whose keys are all masked (pad rows) becomes NaN in softmax: the
    arithmetic the fp16 eager path is exposed to, made certain instead of depending on the weights.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = load_classifier(
            ModelConfig(path=str(tiny_gemma2_dir), dtype="fp16"), None, for_training=False, device="cpu"
        )
    attn = model.model.layers[0].self_attn
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] += 10
        attn.q_proj.weight[7] = 0
        attn.q_proj.weight[7, 0] = 3
        attn.k_proj.weight[7] = 0
        attn.k_proj.weight[7, 0] = -3
    seqs = [np.arange(5, 40), np.arange(5, 12)]  # the short row gets 28 pads
    return model, tok, seqs


def test_fp16_eager_pad_rows_really_overflow_to_nan(overflowing_fp16):
    model, tok, seqs = overflowing_fp16
    with torch.no_grad():
        raw = model(**collate(seqs, tok.pad_token_id, "left")).logits
    assert torch.isnan(raw[1]).all() and torch.isfinite(raw[0]).all()


@pytest.mark.parametrize("side", ["left", "right"])
def test_scorer_never_returns_nan_from_padding(overflowing_fp16, side):
    # right padding overflows too here: the tiny model's sliding window (16) leaves the pad rows
    # past it with every key masked; the guard re-scores such rows alone.
    model, tok, seqs = overflowing_fp16
    scorer = Scorer(model, tok.pad_token_id, device="cpu", dtype=torch.float16)
    logits = scorer(collate(seqs, tok.pad_token_id, side))
    assert np.isfinite(logits).all()
    alone = [scorer(collate([s], tok.pad_token_id, "right"))[0] for s in seqs]
    np.testing.assert_allclose(logits, np.stack(alone), atol=1e-3)
    if side == "left":
        assert scorer.left_padding_refused  # fp16 + eager: padded on the right instead


def test_left_padding_is_kept_where_it_is_safe(tiny_gemma2_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = load_classifier(ModelConfig(path=str(tiny_gemma2_dir)), None, for_training=False)
    scorer = Scorer(model, tok.pad_token_id, device="cpu")
    assert scorer.left_padding_refused is None  # fp32 decoder: left padding is fine
    seqs = [np.arange(5, 40), np.arange(5, 12)]
    left = scorer(collate(seqs, tok.pad_token_id, "left"))
    right = scorer(collate(seqs, tok.pad_token_id, "right"))
    np.testing.assert_allclose(left, right, atol=1e-5)
    assert scorer.nan_rescored == 0
