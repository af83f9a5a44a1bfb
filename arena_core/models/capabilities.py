"""What a backbone can do, asked of the model itself: attention kernels, length, pooled token, pooler.

Encoders (BERT, DeBERTa-v2/v3) and decoders (Gemma, Llama) differ in ways that break a pipeline
silently: DeBERTa has no SDPA path, BERT's learned position table ends at 512, an encoder's
classifier reads the first token (through a pooler a base checkpoint may lack) where a decoder's
reads the last. These answers come from the class's capability flags and the loaded modules,
never from model-type lists or error texts, so an unlisted architecture gets them right too.
"""

from __future__ import annotations

import logging
import warnings

import torch

from arena_core.models.errors import ModelLoadError

__all__ = [
    "HEAD_NAMES",
    "HEAD_NEIGHBOURS",
    "classification_head_name",
    "fit_max_length",
    "max_positions",
    "model_class",
    "modules_saved_with_head",
    "pools_first_token",
    "supported_attn_implementation",
]

logger = logging.getLogger(__name__)

# Layers between the backbone and an encoder's head (BERT/DeBERTa ``pooler``, DistilBERT
# ``pre_classifier``): trained and saved with the head, and kept unquantised like it.
HEAD_NEIGHBOURS = ("pooler", "pre_classifier")
HEAD_NAMES = ("score", "classifier")  # decoder *ForSequenceClassification vs encoder models
# Attention implementations and the class flags that say a model supports them (4.47 / 5.x names).
_ATTN_FLAGS = {
    "sdpa": ("_supports_sdpa",),
    "flash_attention_2": ("_supports_flash_attn_2", "_supports_flash_attn"),
    "flash_attention_3": ("_supports_flash_attn_3", "_supports_flash_attn"),
    "flex_attention": ("_supports_flex_attn",),
}


def model_class(auto_cls, config):
    """The concrete class ``auto_cls`` (e.g. ``AutoModelForSequenceClassification``) picks for ``config``, or None."""
    try:
        return auto_cls._model_mapping[type(config)]
    except (AttributeError, KeyError):
        return None


def supported_attn_implementation(model_cls, wanted: str, *, explicit: bool) -> str:
    """``wanted`` when ``model_cls`` declares support for it, else ``"eager"`` (which every model has).

    Asks the class's own capability flags (``_supports_sdpa``, ``_supports_flash_attn[_2]``,
    ``_supports_flex_attn``) instead of reading error text: DeBERTa-v2/v3 has no SDPA path, and
    transformers says so in words that change between versions. ``explicit``: the user asked for
    ``wanted`` (a warning), rather than it being the default (an info line).
    """
    flags = _ATTN_FLAGS.get(wanted)
    if model_cls is None or flags is None:
        return wanted
    if any(getattr(model_cls, flag, None) for flag in flags):
        return wanted
    (logger.warning if explicit else logger.info)(
        "%s does not support attn_implementation=%r; using eager attention", model_cls.__name__, wanted
    )
    return "eager"


def modules_saved_with_head(model, missing_keys, head_name: str) -> list[str]:
    """Modules besides the head that must be trained and saved with the adapter.

    An encoder's classifier reads the backbone through a pooler (BERT, DeBERTa ``pooler``,
    DistilBERT ``pre_classifier``). A base checkpoint often lacks it (every DeBERTa-v2/v3 one
    does), so it is freshly random on each load: left out of the adapter, every reload would
    predict differently. Any module with parameters missing from the checkpoint counts too.
    """
    params = dict(model.named_parameters())
    names = [
        n
        for n, _ in model.named_modules()
        if n and n.rsplit(".", 1)[-1] in HEAD_NEIGHBOURS and not n.startswith(head_name + ".")
    ]
    for key in missing_keys or []:
        if key in params and not key.startswith(head_name + ".") and "." in key:
            owner = key.rsplit(".", 1)[0]
            if not any(owner == n or owner.startswith(n + ".") for n in names):
                names.append(owner)
    return names


def max_positions(model) -> int | None:
    """The longest sequence ``model`` takes, or None when nothing in it sets a limit.

    A learned absolute position table (BERT, RoBERTa ``position_embeddings``, GPT-2 ``wpe``) is a
    hard limit: one more token is an index error. RoBERTa-style tables reserve ``padding_idx + 1``
    rows. Without one, ``max_position_embeddings`` is the context the model was trained for
    (rotary decoders), except for relative-position-only encoders (DeBERTa-v2/v3 with
    ``position_biased_input=False``), which take any length.
    """
    limits = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Embedding) and name.rsplit(".", 1)[-1] in (
            "position_embeddings",
            "wpe",
        ):
            reserved = module.padding_idx + 1 if module.padding_idx is not None else 0
            limits.append(module.num_embeddings - reserved)
    if limits:
        return min(limits)
    config = getattr(model, "config", None)
    if getattr(config, "position_biased_input", True) is False:
        return None
    n = getattr(config, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def fit_max_length(max_length: int, model, where: str = "encoding.max_length") -> int:
    """``max_length`` capped at :func:`max_positions` of ``model``, saying so when it cuts."""
    limit = max_positions(model)
    if limit is None or max_length <= limit:
        return int(max_length)
    name = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    warnings.warn(
        f"{where}={max_length} exceeds the {limit} positions of the {name} backbone; using {limit}",
        stacklevel=2,
    )
    return int(limit)


def pools_first_token(model) -> bool:
    """True when the classifier reads the first token (encoders: BERT, DeBERTa, RoBERTa ...).

    Decoder ``*ForSequenceClassification`` heads are called ``score`` and read the last non-pad
    token; encoder heads are called ``classifier`` and read position 0 (the CLS token the
    tokenizer puts first), so a row must start at column 0: right padding only.
    """
    get_base = getattr(model, "get_base_model", None)  # a peft model wraps the transformers one
    inner = get_base() if callable(get_base) else model
    if isinstance(getattr(inner, "score", None), torch.nn.Module):
        return False
    return isinstance(getattr(inner, "classifier", None), torch.nn.Module)


def classification_head_name(model) -> str:
    """Attribute name of the classification head (``score`` for decoder models, ``classifier`` else)."""
    for name in HEAD_NAMES:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise ModelLoadError(
        f"{type(model).__name__} has no classification head named {' or '.join(HEAD_NAMES)}; "
        "cannot mark it trainable for LoRA"
    )
