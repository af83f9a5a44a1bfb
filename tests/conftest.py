"""Shared pytest fixtures. Keep each fixture small, documented and session-scoped when it is costly."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Gemma-2 checkpoint (Gemma2ForCausalLM weights + fast BPE tokenizer), written once.

    Load it with ``AutoModelForSequenceClassification`` / ``arena_core.models.loading.load_classifier``;
    the ``score`` head is freshly initialised on load. Treat the directory as read-only.
    """
    from arena_core.models.backbones import make_tiny_gemma2

    return make_tiny_gemma2(tmp_path_factory.mktemp("tiny-gemma2") / "model")
