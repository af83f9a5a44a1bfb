"""Building the classifier: backbone + sequence-classification head (+ LoRA / QLoRA adapter).

One entry point, :func:`load_classifier`, turns a :class:`~arena_core.config.ModelConfig` (and an
optional :class:`~arena_core.config.LoraConfig`) into ``(model, tokenizer)`` ready for training or
inference. Everything is loaded from local directories; nothing is fetched from the hub.

Works on transformers 4.47 + peft 0.14 (the competition-era Kaggle image) and transformers 5.x:
the precision keyword is ``torch_dtype=`` before 4.56 and ``dtype=`` since (see :func:`dtype_kwarg`),
and only APIs present in both are used.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from arena_core.config import LoraConfig, ModelConfig
from arena_core.models.capabilities import (
    HEAD_NEIGHBOURS,
    model_class,
    modules_saved_with_head,
    supported_attn_implementation,
)
from arena_core.models.heads import check_head_init, init_head

__all__ = [
    "ModelLoadError",
    "classification_head_name",
    "count_parameters",
    "dtype_kwarg",
    "load_classifier",
    "load_tokenizer",
    "merge_adapter",
    "resolve_attn_implementation",
    "resolve_device",
    "resolve_dtype",
    "select_target_modules",
]

logger = logging.getLogger(__name__)

_DTYPE_ALIASES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}
_QUANTIZATIONS = ("none", "8bit", "4bit")
# Model types whose attention uses logit soft-capping (or whose reference numerics were validated
# with eager attention): SDPA / flash kernels silently skip the soft-capping.
_EAGER_MODEL_TYPES = ("gemma2", "gemma3", "gemma3_text")
_HEAD_NAMES = ("score", "classifier")  # decoder *ForSequenceClassification vs encoder models
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
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Tokens that are dedicated padding tokens in common vocabularies (Gemma, BERT, Llama-3, GPT-NeoX...).
_PAD_CANDIDATES = ("<pad>", "[PAD]", "<|pad|>", "<|padding|>", "<|finetune_right_pad_id|>", "<|pad_token|>")


class ModelLoadError(FileNotFoundError):
    """A backbone, tokenizer or adapter cannot be loaded; the message names the path or the missing piece."""


# --------------------------------------------------------------------------- versions & small helpers


@functools.lru_cache(maxsize=1)
def _transformers_version() -> tuple[int, int]:
    import transformers

    parts = transformers.__version__.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):  # pragma: no cover - exotic version strings
        return 0, 0


def dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The ``from_pretrained`` precision keyword the installed transformers understands.

    transformers < 4.56 reads ``torch_dtype=``; 4.56 renamed it to ``dtype=`` (v5 still accepts the old
    name with a deprecation warning). Passing ``dtype=`` to 4.47 would *silently* end up as a config
    attribute and load float32, hence the version switch rather than "try one, then the other".
    """
    return {"dtype": dtype} if _transformers_version() >= (4, 56) else {"torch_dtype": dtype}


def resolve_device(device: Any = None) -> torch.device:
    """``None`` -> the current CUDA device when there is one, else CPU."""
    if device is None:
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def resolve_dtype(
    cfg_dtype: str,
    device: Any,
    *,
    compute_capability: tuple[int, int] | None = None,
) -> torch.dtype:
    """Compute dtype for ``ModelConfig.dtype`` on ``device``.

    ``"auto"``: CPU (and any non-CUDA device) -> float32; CUDA with compute capability < 8 (T4, V100,
    P100) -> float16; >= 8 (A100, L4, H100) -> bfloat16. Explicit ``fp32``/``fp16``/``bf16`` (or the
    long names) are honoured, except bf16 on a CUDA device with compute capability < 8, which raises:
    those GPUs have no bf16 tensor cores, so bf16 is emulated (very slow) or fails in some kernels.

    ``compute_capability`` overrides the query of the device (for tests and planning).
    """
    key = (cfg_dtype or "auto").strip().lower()
    if key != "auto" and key not in _DTYPE_ALIASES:
        raise ValueError(f"model.dtype must be one of auto|fp32|fp16|bf16, got {cfg_dtype!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and compute_capability is None:
        if not torch.cuda.is_available():
            raise ValueError(f"device {dev} requested but CUDA is not available")
        compute_capability = torch.cuda.get_device_capability(dev)
    is_cuda = dev.type == "cuda"
    if key == "auto":
        if not is_cuda:
            return torch.float32
        return torch.bfloat16 if compute_capability[0] >= 8 else torch.float16
    dtype = _DTYPE_ALIASES[key]
    if dtype == torch.bfloat16 and is_cuda and compute_capability[0] < 8:
        cc = ".".join(str(x) for x in compute_capability)
        raise ValueError(
            f"model.dtype={cfg_dtype!r} on a GPU with compute capability {cc}: bf16 needs compute capability >= 8 "
            "(Ampere or newer); a T4 (7.5) has no real bf16 support. Use dtype=fp16 or dtype=auto."
        )
    if dtype == torch.float16 and not is_cuda:
        warnings.warn(
            f"model.dtype={cfg_dtype!r} on {dev.type}: float16 is slow and partly unsupported off-GPU; "
            "fp32 (or bf16) is the usual choice there.",
            stacklevel=2,
        )
    return dtype


def resolve_attn_implementation(cfg_value: str, model_type: str) -> str:
    """``"auto"`` -> ``"eager"`` for Gemma-2/Gemma-3 (attention logit soft-capping), ``"sdpa"`` otherwise."""
    value = (cfg_value or "auto").strip().lower()
    if value == "auto":
        return "eager" if model_type in _EAGER_MODEL_TYPES else "sdpa"
    if model_type == "gemma2" and value != "eager":
        warnings.warn(
            f"attn_implementation={value!r} for Gemma-2 skips its attention soft-capping; "
            "results differ from the reference model (use 'auto' or 'eager').",
            stacklevel=2,
        )
    return value


# --------------------------------------------------------------------------- tokenizer


def _check_dir(path: str | os.PathLike, what: str) -> Path:
    if not path:
        raise ModelLoadError(
            f"no {what} directory given (model.path is empty); set it to a local checkpoint directory"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"{what} directory not found: {p}")
    if not p.is_dir():
        raise ModelLoadError(f"{what} path is not a directory: {p}")
    return p


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
    p = _check_dir(path, "tokenizer")
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
    probe = "hello"
    plain = list(tok(probe, add_special_tokens=False)["input_ids"])
    full = list(tok(probe, add_special_tokens=True)["input_ids"])
    added = set(full)
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            added = set(full[:start] + full[start + len(plain) :])
            break
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


def _fit_embeddings_to_pad(model, pad_token_id: int) -> None:
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


# --------------------------------------------------------------------------- quantisation


def _check_weights(p: Path) -> None:
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"no config.json in model directory {p}: not a Hugging Face checkpoint")
    has_weights = any((p / name).is_file() for name in _WEIGHT_FILES) or any(p.glob("*.safetensors"))
    if not has_weights:
        raise ModelLoadError(
            f"no model weights in {p} (looked for {', '.join(_WEIGHT_FILES)} or *.safetensors); "
            "a GGUF file must first be converted (see arena_core.models.backbones)"
        )


@functools.lru_cache(maxsize=4)
def _bnb_cpu_probe(quantization: str) -> str | None:
    """Run one tiny bitsandbytes layer on CPU; ``None`` if it works, else the reason it does not."""
    try:
        import bitsandbytes as bnb
    except Exception as exc:  # ImportError, or a broken native library raising anything
        return f"bitsandbytes is not importable ({type(exc).__name__}: {exc})"
    try:
        ref = torch.nn.Linear(64, 16)
        if quantization == "4bit":
            layer = bnb.nn.Linear4bit(
                64, 16, compute_dtype=torch.float32, quant_type="nf4", compress_statistics=True
            )
        else:
            layer = bnb.nn.Linear8bitLt(64, 16, has_fp16_weights=False)
        layer.load_state_dict(ref.state_dict())
        layer = layer.to("cpu")
        with torch.no_grad():
            out = layer(torch.randn(2, 64))
        if out.shape != (2, 16) or not torch.isfinite(out).all():
            return "the CPU layer returned a wrong result"
    except Exception as exc:
        return f"bitsandbytes {getattr(bnb, '__version__', '?')} has no working CPU {quantization} kernel ({exc})"
    return None


def _bnb_config(quantization: str, dtype: torch.dtype, device: torch.device):
    """BitsAndBytesConfig for ``quantization`` on ``device``, or a ModelLoadError saying why not."""
    if device.type == "cuda":
        try:
            import bitsandbytes  # noqa: F401
        except Exception as exc:
            raise ModelLoadError(
                f"model.quantization={quantization!r} needs bitsandbytes, which is not importable here "
                f"({type(exc).__name__}: {exc}); install arena_core[train] or set model.quantization=none"
            ) from exc
    elif device.type == "cpu":
        reason = _bnb_cpu_probe(quantization)
        if reason is not None:
            raise ModelLoadError(
                f"model.quantization={quantization!r} on CPU is not possible: {reason}. bitsandbytes >= 0.48 "
                "runs 4-bit (NF4/FP4) and 8-bit layers on CPU (slowly); older versions need a CUDA GPU. "
                "Set model.quantization=none for CPU runs."
            )
    else:
        raise ModelLoadError(
            f"model.quantization={quantization!r} is not supported on device {device}: bitsandbytes "
            "quantisation is used here on CUDA (and CPU) only; set model.quantization=none"
        )
    try:
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(
            "bitsandbytes quantisation through transformers needs accelerate: install arena_core[train]"
        ) from exc
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            # The classification head stays in full precision: it is trained and saved with the adapter.
            llm_int8_skip_modules=[*_HEAD_NAMES, *HEAD_NEIGHBOURS],
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=[*_HEAD_NAMES, *HEAD_NEIGHBOURS])


def _is_quantized(model) -> bool:
    """True when ``model`` (or the transformers model inside a peft wrapper) holds bitsandbytes weights."""
    candidates = [model]
    inner = getattr(model, "base_model", None)  # PeftModel -> LoraModel
    if inner is not None and inner is not model:
        candidates += [inner, getattr(inner, "model", None)]
    for m in candidates:
        if m is None:
            continue
        if getattr(m, "is_loaded_in_4bit", False) or getattr(m, "is_loaded_in_8bit", False):
            return True
        if getattr(getattr(m, "config", None), "quantization_config", None) is not None:
            return True
    return False


# --------------------------------------------------------------------------- LoRA helpers


def classification_head_name(model) -> str:
    """Attribute name of the classification head (``score`` for decoder models, ``classifier`` else)."""
    for name in _HEAD_NAMES:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise ModelLoadError(
        f"{type(model).__name__} has no classification head named {' or '.join(_HEAD_NAMES)}; "
        "cannot mark it trainable for LoRA"
    )


def select_target_modules(
    model, wanted: list[str] | tuple[str, ...], head_name: str | None = None
) -> list[str]:
    """The entries of ``wanted`` that name at least one linear layer of ``model`` (outside the head).

    An entry matches a module whose name equals it or ends with ``"." + entry`` (``q_proj``,
    ``self_attn.q_proj``). Entries without a match are dropped with a warning; none at all -> ValueError
    listing the names that exist.
    """
    linear_names = []
    for name, module in model.named_modules():
        if head_name and (name == head_name or name.startswith(head_name + ".")):
            continue
        # nn.Linear covers bitsandbytes Linear4bit / Linear8bitLt (both subclass it).
        if isinstance(module, torch.nn.Linear):
            linear_names.append(name)
    present = [t for t in wanted if any(n == t or n.endswith("." + t) for n in linear_names)]
    missing = [t for t in wanted if t not in present]
    if not present:
        leaf_names = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
        raise ValueError(
            f"none of lora.target_modules {list(wanted)} match a linear layer of {type(model).__name__}; "
            f"available: {leaf_names}"
        )
    if missing:
        warnings.warn(
            f"lora.target_modules {missing} do not exist in {type(model).__name__}; using {present}",
            stacklevel=2,
        )
    return present


def _lora_targets(model, wanted: list[str], keep_out: tuple[str, ...]) -> list[str]:
    """LoRA targets as peft reads them, never inside the head or the modules saved whole.

    peft matches a short name (``dense``) anywhere, including an encoder's ``pooler.dense``; a
    layer both LoRA-wrapped and saved whole would be saved twice and merge wrongly. When a short
    name reaches into those modules, the full names of the layers outside them are given instead.
    """

    def inside(name: str) -> bool:
        return any(name == k or name.startswith(k + ".") for k in keep_out)

    matched = [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in wanted)
    ]
    if not any(inside(n) for n in matched):
        return list(wanted)
    return [n for n in matched if not inside(n)]


def _apply_lora(model, lora_cfg: LoraConfig, head_name: str, save_whole: list[str]):
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    targets = select_target_modules(model, lora_cfg.target_modules, head_name)
    targets = _lora_targets(model, targets, (head_name, *save_whole))
    layers = lora_cfg.layers_to_transform
    if layers is not None:
        layers = [int(i) for i in layers]
        n_layers = getattr(model.config, "num_hidden_layers", None)
        bad = [i for i in layers if n_layers is not None and not 0 <= i < n_layers]
        if bad or not layers:
            raise ValueError(
                f"lora.layers_to_transform {layers}: the model has layers 0..{(n_layers or 0) - 1}"
            )
    peft_cfg = PeftLoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=int(lora_cfg.r),
        lora_alpha=int(lora_cfg.alpha),
        lora_dropout=float(lora_cfg.dropout),
        target_modules=targets,
        layers_to_transform=layers,
        # The head, and an encoder's pooler: trained, and saved whole with the adapter.
        modules_to_save=[head_name, *save_whole],
        bias="none",
    )
    return get_peft_model(model, peft_cfg)


def _cast_head_input(module, args, kwargs):
    """Forward pre-hook: feed the (fp32) trainable head in its own dtype."""
    if args and torch.is_tensor(args[0]):
        weight = next((p for p in module.parameters() if p.requires_grad), None)
        if weight is not None and args[0].dtype != weight.dtype:
            args = (args[0].to(weight.dtype), *args[1:])
    return args, kwargs


def _upcast_trainable(model, head_names: list[str]) -> None:
    """Keep trainable weights in fp32 on a half-precision base (GradScaler refuses fp16 gradients).

    The head (and a pooler saved with it) then gets its input cast to fp32 by a forward pre-hook.
    """
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
    hooked: set[str] = set()
    for name, module in model.named_modules():
        match = next((h for h in head_names if name == h or name.endswith("." + h)), None)
        if match is not None and match not in hooked:
            module.register_forward_pre_hook(_cast_head_input, with_kwargs=True)
            hooked.add(match)


def _enable_gradient_checkpointing(model, lora: bool) -> None:
    # transformers 5 renamed the method (the old name still works there, with a FutureWarning).
    ckpt_kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
    if lora:
        # Frozen embeddings give no grad to the checkpointed blocks' inputs; this re-enables it.
        model.enable_input_require_grads()


HEAD_PREFIXES = ("score.", "classifier.")


class _HeadOnlyLoadReport(logging.Filter):
    """Drops transformers 5's LOAD REPORT when its only finding is the classification head missing.

    A backbone checkpoint never has a head (nor, for DeBERTa, the pooler before it): they are
    trained by us and saved with the adapter, and
    ``load_classifier`` warns itself when an untrained head is used for inference. Any other
    missing, unexpected or mismatched key keeps the report.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "LOAD REPORT" not in msg:
            return True
        rows = [line.split("|") for line in msg.splitlines() if line.count("|") >= 2]
        findings = [(r[0].strip(), r[1].strip()) for r in rows if r[1].strip() and r[1].strip() != "Status"]
        head_only = bool(findings) and all(
            status == "MISSING"
            and (key.startswith(HEAD_PREFIXES) or any(p in HEAD_NEIGHBOURS for p in key.split(".")))
            for key, status in findings
        )
        return not head_only


def _from_pretrained(auto_cls, path: Path, kwargs: dict, quantization: str, dev: torch.device):
    """``auto_cls.from_pretrained`` with errors that name the path."""
    report_logger = logging.getLogger("transformers.modeling_utils")
    quiet = _HeadOnlyLoadReport()
    report_logger.addFilter(quiet)
    try:
        return auto_cls.from_pretrained(str(path), **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"cannot load model weights from {path}: {exc}") from exc
    except Exception as exc:
        if quantization == "none":
            raise
        # Quantised loading fails in version-specific ways (4.47 on CPU even crashes with an
        # AttributeError in its bitsandbytes device check): always answer with one clear error.
        import transformers

        raise ModelLoadError(
            f"loading {path} in {quantization} on {dev} failed: {type(exc).__name__}: {exc}. "
            f"bitsandbytes quantisation through transformers {transformers.__version__} may need a CUDA GPU "
            "(transformers 4.x only accepts bitsandbytes on CPU with Intel IPEX; transformers 5 with "
            "bitsandbytes >= 0.48 runs it on plain CPU); set model.quantization=none on this machine"
        ) from exc
    finally:
        report_logger.removeFilter(quiet)


# --------------------------------------------------------------------------- the entry point


def load_classifier(
    model_cfg: ModelConfig,
    lora_cfg: LoraConfig | None = None,
    *,
    device: Any = None,
    for_training: bool,
    adapter_dir: str | os.PathLike | None = None,
    device_map: dict | str | None = None,
    max_memory: dict | None = None,
):
    """Load ``AutoModelForSequenceClassification`` from ``model_cfg.path`` (+ LoRA); return ``(model, tokenizer)``.

    * precision from :func:`resolve_dtype`, attention from :func:`resolve_attn_implementation`;
    * ``quantization`` ``"4bit"`` (NF4, double quantisation, compute dtype = resolved dtype) or ``"8bit"``
      through bitsandbytes; the classification head stays unquantised;
    * ``adapter_dir`` given: the saved adapter (incl. its trained head) is loaded onto the base,
      trainable when ``for_training``;
    * else, ``for_training`` with ``lora_cfg.enabled``: a fresh LoRA adapter on the filtered
      ``target_modules``, the head (``score``) trainable and saved with the adapter (``modules_to_save``);
      ``for_training`` without LoRA: full fine-tuning (not possible on a quantised base);
    * not training and no adapter: the plain checkpoint (a warning says when its head is untrained);
    * ``device_map`` (with optional ``max_memory``), inference only: one model split layer-wise over
      several GPUs (see :mod:`arena_core.inference.placement`) instead of all of it on ``device``.

    ``pad_token_id`` is set on the model config from the tokenizer, ``num_labels`` from the config.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = _check_dir(model_cfg.path, "model")
    _check_weights(path)
    quantization = (model_cfg.quantization or "none").strip().lower()
    if quantization not in _QUANTIZATIONS:
        raise ValueError(
            f"model.quantization must be one of {'|'.join(_QUANTIZATIONS)}, got {model_cfg.quantization!r}"
        )
    check_head_init(model_cfg.head_init)
    lora_on = lora_cfg is not None and lora_cfg.enabled
    if for_training and quantization != "none" and not (lora_on or adapter_dir):
        raise ValueError(
            f"training a {quantization} base needs LoRA (QLoRA): quantised weights cannot be fine-tuned directly"
        )
    adapter_path = None
    if adapter_dir is not None:
        adapter_path = _check_dir(adapter_dir, "adapter")
        if not (adapter_path / "adapter_config.json").is_file():
            raise ModelLoadError(f"no adapter_config.json in adapter directory {adapter_path}")

    dev = resolve_device(device)
    dtype = resolve_dtype(model_cfg.dtype, dev)
    tokenizer = load_tokenizer(path)

    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read the model config in {path}: {exc}") from exc
    config.num_labels = int(model_cfg.num_labels)
    config.problem_type = "single_label_classification"
    # A pad token added to the tokenizer may lie past the embedding table until it is resized
    # below; the embedding layer refuses a padding_idx outside it, so it is set after that.
    fits = tokenizer.pad_token_id < (getattr(config, "vocab_size", None) or tokenizer.pad_token_id + 1)
    config.pad_token_id = tokenizer.pad_token_id if fits else None
    if for_training:
        config.use_cache = False
    attn = resolve_attn_implementation(model_cfg.attn_implementation, getattr(config, "model_type", ""))
    attn = supported_attn_implementation(
        model_class(AutoModelForSequenceClassification, config),
        attn,
        explicit=(model_cfg.attn_implementation or "auto").strip().lower() != "auto",
    )

    kwargs: dict[str, Any] = {
        "config": config,
        "local_files_only": True,
        "attn_implementation": attn,
        "output_loading_info": True,
        **dtype_kwarg(dtype),
    }
    if quantization != "none":
        kwargs["quantization_config"] = _bnb_config(quantization, dtype, dev)
        kwargs["device_map"] = {"": dev.index if dev.type == "cuda" else "cpu"}
    elif dev.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
        # Stream the weights straight onto the GPU: a 9B fp16 model never sits in host RAM whole.
        kwargs["device_map"] = {"": dev.index}
    if device_map is not None:
        if for_training:
            raise ValueError(
                "device_map (a layer-wise split) is for inference; training uses one GPU per process"
            )
        kwargs["device_map"] = device_map
        if max_memory:
            kwargs["max_memory"] = max_memory
    model, info = _from_pretrained(AutoModelForSequenceClassification, path, kwargs, quantization, dev)
    _fit_embeddings_to_pad(model, tokenizer.pad_token_id)
    if "device_map" not in kwargs:
        model.to(dev)
    model.config.pad_token_id = tokenizer.pad_token_id

    head_name = classification_head_name(model)
    missing = info.get("missing_keys", [])
    save_whole = modules_saved_with_head(model, missing, head_name)
    fresh = [n for n in [head_name, *save_whole] if any(k.startswith(n + ".") for k in missing)]
    if (
        head_name in fresh
        and adapter_path is None
        and init_head(model, tokenizer, model_cfg, path, head_name)
    ):
        fresh.remove(head_name)  # it now holds the model's own zero-shot verdict, not noise
    if fresh and not for_training and adapter_path is None:
        warnings.warn(
            f"{' and '.join(repr(n) for n in fresh)} of {path} {'is' if len(fresh) == 1 else 'are'} "
            "freshly initialised and no adapter was given: "
            "predictions are random until the model is fine-tuned",
            stacklevel=2,
        )

    gc = bool(model_cfg.gradient_checkpointing) and for_training
    if for_training and quantization != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gc,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif gc:
        _enable_gradient_checkpointing(model, lora=lora_on or adapter_path is not None)

    if adapter_path is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=for_training)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the adapter from {adapter_path}: {exc}") from exc
        saved = getattr(model.peft_config.get("default"), "modules_to_save", None) or []
        if head_name not in saved:
            warnings.warn(
                f"adapter {adapter_path} does not carry the '{head_name}' head (modules_to_save={saved}); "
                "the head stays as loaded from the base checkpoint",
                stacklevel=2,
            )
        lost = [n for n in fresh if n != head_name and n not in saved]
        if lost:
            warnings.warn(
                f"adapter {adapter_path} does not carry {lost}, which {path} lacks: they are random on every "
                "load, so predictions change from one load to the next; retrain with this arena_core",
                stacklevel=2,
            )
    elif for_training and lora_on:
        model = _apply_lora(model, lora_cfg, head_name, save_whole)

    if for_training:
        if dtype != torch.float32 and quantization == "none":
            _upcast_trainable(model, [head_name, *save_whole])
        model.train()
    else:
        # peft 0.14 leaves the saved head copy trainable even with is_trainable=False.
        for param in model.parameters():
            param.requires_grad_(False)
        model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------- utilities


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; packed 4-bit weights count as the values they hold."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if param.__class__.__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored uint8
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def merge_adapter(model, quantization: str):
    """Fold the LoRA weights into the base (``merge_and_unload``) and return the plain model.

    Refused on a 4-bit / 8-bit base: the merged weights would be re-quantised, rounding the adapter's
    small updates away (and peft dequantises/requantises with extra error). Reload the base unquantised
    (``quantization=none``, fp16/bf16), load the adapter, then merge.
    """
    q = (quantization or "none").strip().lower()
    if q not in _QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {'|'.join(_QUANTIZATIONS)}, got {quantization!r}")
    if q != "none" or _is_quantized(model):
        raise ValueError(
            f"refusing to merge the LoRA adapter into a quantised ({q if q != 'none' else 'bitsandbytes'}) base: "
            "the merged weights would be rounded back to low precision and lose the adapter's updates. "
            "Reload the base with model.quantization=none (fp16/bf16), load the adapter, then merge."
        )
    if not hasattr(model, "merge_and_unload"):
        raise ValueError(f"{type(model).__name__} carries no adapter to merge (expected a peft model)")
    return model.merge_and_unload()
