"""Run configuration as dataclasses: loaded from YAML/JSON, overridable with ``key=value``.

One nested dataclass per stage keeps every knob named, typed and documented in one place,
and lets a run directory store the exact resolved configuration it was produced with.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EncodingConfig:
    """How a (prompt, response A, response B) triple becomes one token sequence."""

    max_length: int = 1024
    # "marker": short neutral markers (the default; runs written before this key used it).
    # "judge": an LLM-judge prompt ending in "Answer:", read where the model would write its
    # verdict; pairs with model.head_init=verdict. See arena_core/encoding/template.py.
    template: str = "marker"
    # judge only: wrap the prompt in the tokenizer's chat template. auto: when it has one.
    chat_template: str = "auto"  # auto | on | off
    # "adaptive": water-filling (a short part gives its unused share to the others);
    # "thirds": each part gets a fixed third of the budget (the seed notebooks' approach).
    strategy: str = "adaptive"
    # Relative weights of prompt / response A / response B when the budget is shared.
    part_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Every non-empty part keeps at least this many tokens (or all of it if shorter).
    min_part_tokens: int = 32
    # Share of a truncated part's budget kept from its head (the rest from its tail).
    head_fraction: float = 0.6
    truncation_marker: str = " [...] "


@dataclass
class ModelConfig:
    """Which backbone to load and how (precision, quantisation, attention)."""

    # "transformer": a Hugging Face backbone with a classification head (LoRA / QLoRA);
    # "features": gradient-boosted trees over symmetric text features (booster section; CPU, seconds);
    # "stack": a second stage over other runs' out-of-fold probabilities (written by arena stack).
    kind: str = "transformer"  # transformer | features | stack
    path: str = ""  # local directory of a Hugging Face checkpoint (never a hub id)
    num_labels: int = 2  # 3 when ties are modelled
    # "auto" follows the device: CPU -> fp32, compute capability < 8 -> fp16, else bf16.
    dtype: str = "auto"  # auto | fp32 | fp16 | bf16
    quantization: str = "none"  # none | 8bit | 4bit
    attn_implementation: str = "auto"  # auto -> eager for Gemma-2, sdpa otherwise
    gradient_checkpointing: bool = False
    # How a fresh head (no adapter loaded) starts. "zero": zero weights, so training starts from
    # uniform predictions (log loss ln 2 / ln 3) instead of a random head's confident noise.
    # "random": transformers' own initialisation. "verdict": the head's rows start as the
    # language-model head's rows of verdict_tokens, so at step 0 the classifier gives the model's
    # own zero-shot verdict (use with encoding.template=judge). See arena_core/models/heads.py.
    head_init: str = "zero"  # zero | random | verdict
    # One string per class (A wins, B wins, tie); each must be exactly one token of the tokenizer.
    verdict_tokens: list[str] = field(default_factory=lambda: [" A", " B", " tie"])


@dataclass
class LoraConfig:
    """LoRA adapter settings (peft)."""

    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    layers_to_transform: list[int] | None = None


@dataclass
class BoosterConfig:
    """Gradient-boosted trees (LightGBM) for the feature run kind and the stacker.

    Rounds stop early on held-out rows: the eval fold when ``train.select_best`` and there is one,
    else an inner tenth of the training rows (grouped by prompt), after which the model is refit
    on every training row with the rounds found, so out-of-fold rows never choose their own model.
    """

    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    num_threads: int = 0  # 0: one per 20,000 training rows (both orders), up to every core


@dataclass
class TrainConfig:
    """Optimisation settings, passed through to Hugging Face ``TrainingArguments``."""

    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    lr_scheduler: str = "cosine"
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    optimizer: str = "auto"  # auto -> paged_adamw_8bit with bitsandbytes+CUDA, else adamw_torch
    max_grad_norm: float = 1.0
    # "both": every pair in both A/B orders; "random": one order at random; "none".
    swap_augmentation: str = "both"
    n_folds: int = 5
    fold: int = 0  # held-out fold for evaluation; -1 trains on everything
    # "prompt": rows with the same prompt share a fold, so no held-out score rewards remembering the
    # question (MT-Bench repeats each of its 160 questions ~8 times); "none": rows are split alone.
    fold_groups: str = "prompt"
    eval_steps: int = 200
    save_steps: int = 200
    # End on the checkpoint with the best eval log loss (true) or on the last one (false). arena cv
    # sets false: a fold's held-out rows are its OOF rows and must not choose their own model.
    select_best: bool = True
    logging_steps: int = 10
    seed: int = 42
    group_by_length: bool = True
    save_total_limit: int = 2
    # Wall-clock cap for 'arena train', e.g. "11h" (a Kaggle session ends at 12 h): before it, a
    # checkpoint is saved and training stops; --resume continues. "" = no cap.
    max_time: str = ""
    # Soft labels (arena train --soft-labels): loss = alpha * CE(hard) + (1 - alpha) * T^2 *
    # KL(teacher_T || student_T); a row with only one kind of label uses that term alone.
    distill_alpha: float = 0.5
    distill_temperature: float = 1.0
    # A run directory whose adapter this run continues training (stage after stage); "" = a fresh adapter.
    init_from: str = ""
    # Where Trainer also sends its logs: "none" (offline-safe), or integrations such as
    # "tensorboard", "wandb", a list of them, or "all" (every one installed). train_log.jsonl is
    # written whatever this says.
    report_to: str | list[str] = "none"


@dataclass
class PredictConfig:
    """Inference engine settings."""

    token_budget: int = 16384  # rows x padded length per batch
    max_rows_per_batch: int = 64
    tta: str = "swap"  # none | swap | uncertain
    time_budget_s: float | None = None
    ensemble_mode: str = "prob"  # prob | logit
    padding_side: str = "right"


@dataclass
class RunConfig:
    """Everything a training or inference run needs, in one tree."""

    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    booster: BoosterConfig = field(default_factory=BoosterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)


class ConfigError(ValueError):
    """A configuration file or override that cannot be applied; the message says where."""


def _resolve_type(tp: Any) -> Any:
    """Strip ``X | None`` / ``Optional[X]`` down to ``X`` for coercion."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _coerce(value: Any, tp: Any, where: str) -> Any:
    if value is None:
        return None
    tp = _resolve_type(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # e.g. str | list[str]: the list when given one
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        listy = [a for a in options if typing.get_origin(a) in (list, tuple)]
        text = value.strip() if isinstance(value, str) else ""
        as_list = listy and (not isinstance(value, str) or text.startswith("[") or "," in text)
        tp = listy[0] if as_list else next((a for a in options if a not in listy), options[0])
        origin = typing.get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError(f"not a boolean: {value!r}")
            return bool(value)
        if tp in (int, float, str):
            if isinstance(value, str) and tp is not str:
                return tp(float(value)) if tp is int and "." in value else tp(value)
            return tp(value)
        if origin in (list, tuple):
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("[") else value.split(",")
            (inner, *_rest) = typing.get_args(tp) or (Any,)
            items = [_coerce(v, inner, where) if inner is not Any else v for v in value]
            return tuple(items) if origin is tuple else items
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {value!r} as {tp}: {exc}") from exc
    return value


def _from_dict(cls: type, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, tp, f"{where}.{name}")
    return cls(**kwargs)


def config_from_dict(data: dict, where: str = "config") -> RunConfig:
    return _from_dict(RunConfig, data or {}, where)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML or JSON file (or start from defaults) and apply ``section.key=value`` overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
        where = str(path)
    else:
        where = "config"
    cfg = config_from_dict(data, where)
    return apply_overrides(cfg, overrides or [])


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``train.learning_rate=1e-4``-style overrides; unknown keys are an error."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        target = cfg
        for p in parts[:-1]:
            if not dataclasses.is_dataclass(target) or not hasattr(target, p):
                raise ConfigError(f"override {item!r}: no section {p!r}")
            target = getattr(target, p)
        key = parts[-1]
        if not dataclasses.is_dataclass(target) or key not in {f.name for f in dataclasses.fields(target)}:
            raise ConfigError(f"override {item!r}: unknown key {dotted!r}")
        tp = typing.get_type_hints(type(target))[key]
        # "none" is None only where None is allowed (train.report_to=none is the string "none")
        if raw.strip().lower() in ("none", "null") and type(None) in typing.get_args(tp):
            value = None
        else:
            value = _coerce(raw, tp, f"override {dotted}")
        setattr(target, key, value)
    return cfg


def config_to_dict(cfg: Any) -> dict:
    """Plain-data view (tuples as lists) for YAML/JSON dumps and manifests."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def save_config(cfg: RunConfig, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
