"""The tiny random Gemma-2 the tests load: a two-layer checkpoint and a real BPE tokenizer, made offline.

:func:`make_tiny_gemma2` writes a randomly initialised two-layer Gemma-2 checkpoint plus a real fast
(BPE) tokenizer trained in-process on a few built-in multilingual sentences (:data:`TINY_CORPUS`). It
takes about a second and nothing is fetched from the Hugging Face hub. The demo's real backbone,
Gemma-3 270M, comes from :mod:`~arena_core.models.gemma3` (its ``gemma3_270m_checkpoint`` is
importable from here too).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from arena_core.models.backbone_cache import read_marker, write_marker

__all__ = ["TINY_CORPUS", "TINY_GEMMA_SHAPE", "build_tiny_tokenizer", "make_tiny_gemma2"]

_TINY_FORMAT = 1

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


#: The tiny Gemma's layers: two, small enough to train in seconds on a CPU (Gemma-2 and Gemma-3
#: share these config keys).
TINY_GEMMA_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "query_pre_attn_scalar": 16,
    "sliding_window": 16,
}


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
    if not overwrite and out.is_dir() and read_marker(out) == spec:
        return out
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True)

    tokenizer = build_tiny_tokenizer(vocab_size)
    config = Gemma2Config(
        vocab_size=max(int(vocab_size), len(tokenizer)),
        **TINY_GEMMA_SHAPE,
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
    write_marker(out, spec)
    return out


def _portable_tokenizer_class(directory: Path) -> None:
    """transformers 5 writes ``tokenizer_class: TokenizersBackend``, a name 4.x cannot resolve;
    ``PreTrainedTokenizerFast`` loads the same ``tokenizer.json`` on both."""
    path = directory / "tokenizer_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("tokenizer_class") == "TokenizersBackend":
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
