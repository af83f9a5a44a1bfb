"""Run files that both Kaggle stacks read: peft 0.14 / transformers 4.47 (the competition's image)
and today's peft / transformers 5, which write keys and class names the old ones cannot parse.

Applied when a run is saved (``training.outdir``) and again when a bundle copies it.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["NEWER_PEFT_KEYS_DEFAULTS", "make_adapter_portable", "make_tokenizer_portable"]

# Keys older peft releases (0.14, the competition-era Kaggle image) do not know. Dropped from a
# saved adapter_config.json when they hold their default value, so old peft can read it.
NEWER_PEFT_KEYS_DEFAULTS = {
    "lora_bias": False,
    "exclude_modules": None,
    "trainable_token_indices": None,
    "corda_config": None,
    "eva_config": None,
    "qalora_group_size": 16,
    "use_qalora": False,
    "target_parameters": None,
    "alora_invocation_tokens": None,
    "arrow_config": None,
    "ensure_weight_tying": False,
    "peft_version": None,
    "layer_replication": None,
}


def make_adapter_portable(adapter_dir: Path) -> list[str]:
    """Drop default-valued keys that older peft cannot parse; returns what was dropped."""
    path = Path(adapter_dir) / "adapter_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    dropped = []
    for key, default in NEWER_PEFT_KEYS_DEFAULTS.items():
        if key in cfg and (cfg[key] == default or key == "peft_version"):
            del cfg[key]
            dropped.append(key)
    path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return dropped


def make_tokenizer_portable(tokenizer_dir: Path) -> str | None:
    """transformers 5 saves ``tokenizer_class: TokenizersBackend``, a name 4.x cannot resolve.

    The generic fast class loads the same tokenizer.json on both; returns the class replaced.
    It also writes the chat template into tokenizer_config.json: transformers >= 4.51 saves it only
    as chat_template.jinja, which 4.47 never reads, and the judge template wraps its prompt in the
    chat template when there is one, so a run would otherwise encode differently there.
    """
    path = Path(tokenizer_dir) / "tokenizer_config.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text(encoding="utf-8"))
    replaced = None
    if cfg.get("tokenizer_class") == "TokenizersBackend":
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        replaced = "TokenizersBackend"
    jinja = Path(tokenizer_dir) / "chat_template.jinja"
    inline = jinja.is_file() and not cfg.get("chat_template")
    if inline:
        cfg["chat_template"] = jinja.read_text(encoding="utf-8")
    if replaced or inline:
        path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
    return replaced
