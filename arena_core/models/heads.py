"""How a freshly created classification head starts: at zero, from the model's own verdict, or random.

``zero`` (the default for training): every logit is 0, so step 0 predicts uniform (log loss
ln 2 / ln 3). transformers' random head does not: on Gemma-3 270M it starts at log loss 0.86
with most A/B decisions flipping when the responses swap places. Training still starts at once:
the head's gradient ``h (p - y)`` is not zero, and the LoRA ``B`` matrices (zero too) get gradient
through the head from the second step on. ``random`` keeps transformers' initialisation.

``verdict``: a decoder ``*ForSequenceClassification`` model computes ``logits = score(h)`` from
the final hidden state ``h`` of the last token, and its language-model head computes
``lm_logits = lm_head(h)`` from the same ``h``. Copying the ``lm_head`` rows of the verdict
tokens (`` A``, `` B``, and a tie token for 3 classes) into ``score`` therefore makes the
classifier's logits at step 0 equal the language model's logits for those tokens: with the judge
template (which ends where the model would write its verdict) the model starts from its zero-shot
judgement.

Two details: with tied embeddings the ``lm_head`` rows are the input-embedding rows (Gemma); an
untied ``lm_head`` is not part of the classifier's weights, so its rows are read from the
checkpoint's safetensors. Gemma-2's ``final_logit_softcapping`` (``c * tanh(x / c)``) is not
applied: the classifier gets the raw logits (same ranking, sharper probabilities).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

HEAD_INITS = ("zero", "random", "verdict")
# Names under which causal-LM checkpoints store the output projection.
_LM_HEAD_KEYS = ("lm_head.weight", "embed_out.weight", "output.weight")


def check_head_init(value: str) -> str:
    value = (value or "zero").strip().lower()
    if value not in HEAD_INITS:
        raise ValueError(f"model.head_init must be one of {'|'.join(HEAD_INITS)}, got {value!r}")
    return value


def verdict_token_ids(tokenizer, tokens, num_labels: int) -> list[int]:
    """One vocabulary id per class; a clear error when a string is not exactly one token."""
    tokens = list(tokens or [])
    if len(tokens) < num_labels:
        raise ValueError(
            f"model.verdict_tokens has {len(tokens)} string(s) {tokens}; model.num_labels={num_labels} needs "
            f"{num_labels} (A wins, B wins{', tie' if num_labels > 2 else ''})"
        )
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    ids = []
    for text in tokens[:num_labels]:
        got = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(got) != 1:
            pieces = tokenizer.convert_ids_to_tokens(got)
            raise ValueError(
                f"model.verdict_tokens: {text!r} is {len(got)} tokens {pieces} in the tokenizer of {name}, "
                "not exactly one; choose a string that is a single token there (e.g. ' A' or 'A')"
            )
        ids.append(got[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"model.verdict_tokens {tokens[:num_labels]} map to repeated token ids {ids}")
    return ids


def _tied(model) -> bool:
    config = model.config
    text_config = getattr(config, "get_text_config", lambda: config)()
    return bool(getattr(text_config, "tie_word_embeddings", getattr(config, "tie_word_embeddings", True)))


def _checkpoint_rows(checkpoint: Path, ids: list[int]) -> torch.Tensor:
    """Rows ``ids`` of the untied LM head, read straight from the checkpoint's safetensors files."""
    from safetensors import safe_open

    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        candidates = [(key, checkpoint / weight_map[key]) for key in _LM_HEAD_KEYS if key in weight_map]
    else:
        candidates = [
            (key, path) for path in sorted(checkpoint.glob("*.safetensors")) for key in _LM_HEAD_KEYS
        ]
    for key, path in candidates:
        with safe_open(str(path), framework="pt") as fh:
            if key not in fh.keys():
                continue
            rows = fh.get_slice(key)
            return torch.cat([rows[i : i + 1] for i in ids]).float()
    raise ValueError(
        f"model.head_init=verdict: {checkpoint} has untied embeddings but no LM head "
        f"({' / '.join(_LM_HEAD_KEYS)}) in its safetensors files to copy the verdict rows from"
    )


def lm_head_rows(model, ids: list[int], checkpoint: str | Path) -> torch.Tensor:
    """The language-model head's rows for ``ids`` (float32), from the tied embeddings or the checkpoint."""
    if _tied(model):
        return model.get_input_embeddings().weight.detach()[ids].float()
    return _checkpoint_rows(Path(checkpoint), ids)


def _output_layer(head, num_labels: int) -> torch.nn.Linear | None:
    """The Linear that writes the logits: the head itself, or its last ``num_labels``-wide layer."""
    if isinstance(head, torch.nn.Linear):
        return head
    layers = [m for m in head.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
    return layers[-1] if layers else None


def zero_head(model, head_name: str) -> bool:
    """Zero the layer that writes the logits (weight and bias): uniform predictions at step 0."""
    head = getattr(model, head_name, None)
    layer = _output_layer(head, int(model.config.num_labels)) if head is not None else None
    if layer is None:
        warnings.warn(
            f"model.head_init=zero: no {model.config.num_labels}-wide Linear in the '{head_name}' head of "
            f"{type(model).__name__}; it keeps its random initialisation",
            stacklevel=3,
        )
        return False
    with torch.no_grad():
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.zero_()
    return True


def init_head(model, tokenizer, model_cfg, checkpoint: str | Path, head_name: str = "score") -> bool:
    """Apply ``model_cfg.head_init`` to a freshly created head; True when the head was changed."""
    how = check_head_init(model_cfg.head_init)
    if how == "random":
        return False
    if how == "zero":
        return zero_head(model, head_name)
    head = getattr(model, head_name, None)
    if head_name != "score" or not isinstance(head, torch.nn.Linear):
        raise ValueError(
            f"model.head_init=verdict needs a decoder model whose 'score' head reads the last token; "
            f"{type(model).__name__} has a '{head_name}' head (use head_init=zero or random)"
        )
    num_labels = head.weight.shape[0]
    ids = verdict_token_ids(tokenizer, model_cfg.verdict_tokens, num_labels)
    rows = lm_head_rows(model, ids, checkpoint)
    if rows.shape != head.weight.shape:
        raise ValueError(
            f"model.head_init=verdict: LM head rows have shape {tuple(rows.shape)}, the head "
            f"{tuple(head.weight.shape)}"
        )
    with torch.no_grad():
        head.weight.copy_(rows.to(device=head.weight.device, dtype=head.weight.dtype))
        if head.bias is not None:
            head.bias.zero_()
    return True
