"""Loading a tokenizer with a pad token the classifier can trust (never BOS, never in the template).

A decoder's classification head finds its read position by looking for the pad id, so the pad
choice decides which token is pooled: on transformers 4.47 a pad equal to BOS pools the wrong one.
"""

from __future__ import annotations

import logging
import os

import torch

from arena_core.encoding.template import FRAMING_PROBE, framing_tokens
from arena_core.models.errors import ModelLoadError, check_dir

__all__ = ["ADDED_PAD_TOKEN", "fit_embeddings_to_pad", "load_tokenizer"]

logger = logging.getLogger(__name__)

# A pad token added when the vocabulary has none that is safe (see _ensure_pad_token).
ADDED_PAD_TOKEN = "<|arena_pad|>"

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)

# Tokens that are dedicated padding tokens in common vocabularies (Gemma, BERT, Llama-3, GPT-NeoX...).
_PAD_CANDIDATES = ("<pad>", "[PAD]", "<|pad|>", "<|padding|>", "<|finetune_right_pad_id|>", "<|pad_token|>")


def load_tokenizer(path: str | os.PathLike):
    """Load a (preferably fast) tokenizer from a local directory and make sure it has a safe pad token.

    The sequence classifier of a decoder pools the last *non-pad* token, found by comparing
    ``input_ids`` with ``pad_token_id`` (transformers 4.47 pools the token before the *first* pad,
    5.x the last token that is not pad). A pad id that also stands for a real token of the
    sequence makes 4.47 pool the wrong position, so the pad must never be the BOS token nor any
    token the tokenizer adds around a text (which the template then contains). Choice, in order:

    1. the tokenizer's own pad token, when it is safe in that sense;
    2. an existing dedicated padding token of the vocabulary (``<pad>``, ``[PAD]``, ``<|pad|>``,
       ``<|finetune_right_pad_id|>`` ...);
    3. the unknown token (real text rarely maps to it; byte-level vocabularies never);
    4. the end-of-sequence token (text is tokenized with ``split_special_tokens``, so it cannot
       come from the text);
    5. a new special token ``<|arena_pad|>``: :func:`load_classifier` then gives the model an
       embedding row for it (zeros, where the vocabulary has no spare row); padding is masked and
       never pooled, so the row's value never reaches a logit.
    """
    p = check_dir(path, "tokenizer")
    if not any((p / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"no tokenizer files in {p} (looked for {', '.join(_TOKENIZER_FILES)}); "
            "save the tokenizer next to the weights with tokenizer.save_pretrained(dir)"
        )
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer from {p}: {exc}") from exc
    _ensure_pad_token(tok)
    return tok


def _framing_token_ids(tok) -> set[int]:
    """Ids the pad must never take: BOS, and every token the tokenizer adds around a text."""
    found = framing_tokens(tok)
    if found is None:  # no clean split: keep the pad off everything the tokenizer emits for the probe
        added = set(tok(FRAMING_PROBE, add_special_tokens=True)["input_ids"])
    else:
        added = set(found[0] + found[1])
    return added | ({tok.bos_token_id} - {None})


def _ensure_pad_token(tok) -> None:
    framing = _framing_token_ids(tok)
    if tok.pad_token is not None and tok.pad_token_id not in framing:
        return
    if tok.pad_token is not None:
        logger.warning(
            "the tokenizer's pad token %r is also its BOS or a token it adds to every text; "
            "choosing another so the classifier pools the right position",
            tok.pad_token,
        )
    vocab = tok.get_vocab()
    unk_id = tok.unk_token_id
    for candidate in _PAD_CANDIDATES:
        if candidate in vocab and vocab[candidate] != unk_id and vocab[candidate] not in framing:
            tok.pad_token = candidate
            logger.info("padding with the vocabulary's dedicated %r", candidate)
            return
    if tok.unk_token is not None and tok.unk_token_id not in framing:
        tok.pad_token = tok.unk_token
        logger.info("padding with the unk token %r", tok.unk_token)
        return
    if tok.eos_token is not None and tok.eos_token_id not in framing:
        tok.pad_token = tok.eos_token
        logger.info("padding with the eos token %r (never produced from text)", tok.eos_token)
        return
    tok.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
    logger.warning(
        "the tokenizer has no pad, unk or eos token distinct from BOS and its framing tokens; "
        "added %r (id %d) for padding",
        ADDED_PAD_TOKEN,
        tok.pad_token_id,
    )


def fit_embeddings_to_pad(model, pad_token_id: int) -> None:
    """Give an added pad token an embedding row (zeros) when the vocabulary has no spare one."""
    rows = model.get_input_embeddings().num_embeddings
    if pad_token_id < rows:
        return
    try:
        model.resize_token_embeddings(pad_token_id + 1, mean_resizing=False)
    except TypeError:  # transformers before 4.46 has no mean_resizing
        model.resize_token_embeddings(pad_token_id + 1)
    with torch.no_grad():
        model.get_input_embeddings().weight[rows:] = 0
