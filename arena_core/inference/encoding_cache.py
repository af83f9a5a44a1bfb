"""Encoding a test frame for prediction: once per tokenizer + config, and again shorter on demand.

Ensemble members that share a tokenizer and an encoding config need not tokenize the test set
twice (:func:`encode_cached`); when time runs short the engine re-encodes the rows it has not
reached at a smaller ``max_length`` with the same template (:func:`make_reencoder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable

import pandas as pd

from arena_core.config import EncodingConfig
from arena_core.encoding.encoder import EncodedPairs, PairEncoder

__all__ = ["encode_cached", "make_reencoder", "tokenizer_key"]


def tokenizer_key(tokenizer) -> str:
    """Identity of a tokenizer's behaviour (hash of its serialised fast tokenizer when it has one)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        return "sha1:" + hashlib.sha1(backend.to_str().encode("utf-8")).hexdigest()
    return f"{type(tokenizer).__name__}:{getattr(tokenizer, 'name_or_path', '')}:{len(tokenizer)}"


def encode_cached(
    frame: pd.DataFrame, tokenizer, encoding: EncodingConfig, cache: dict | None = None
) -> EncodedPairs:
    """``PairEncoder(tokenizer, encoding).encode_frame(frame)``, reused for an identical tokenizer + config."""
    key = (tokenizer_key(tokenizer), json.dumps(dataclasses.asdict(encoding), sort_keys=True))
    if cache is not None and key in cache:
        return cache[key]
    enc = PairEncoder(tokenizer, encoding).encode_frame(frame)
    if cache is not None:
        cache[key] = enc
    return enc


def make_reencoder(
    frame: pd.DataFrame, tokenizer, encoding: EncodingConfig
) -> Callable[[list, int], EncodedPairs]:
    """A ``reencode(ids, max_length)`` for :func:`predict_probs`: same template, shorter budget."""
    index = pd.Index(frame["id"])

    def reencode(ids: list, max_length: int) -> EncodedPairs:
        pos = index.get_indexer(list(ids))
        if (pos < 0).any():
            raise KeyError(f"re-encode asked for {(pos < 0).sum()} unknown id(s)")
        cfg = dataclasses.replace(encoding, max_length=int(max_length))
        return PairEncoder(tokenizer, cfg).encode_frame(frame.iloc[pos])

    return reencode
