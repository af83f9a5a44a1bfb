"""Judge template and verdict head: exact swaps within the budget, and a head that starts as the LM's verdict."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from byte_tokenizer import byte_level_tokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arena_core.config import EncodingConfig, LoraConfig, ModelConfig, config_from_dict
from arena_core.encoding.batching import collate
from arena_core.encoding.encoder import PairEncoder
from arena_core.encoding.template import (
    JUDGE_ANSWER,
    PROMPT_HEADER,
    QUESTION_SUFFIX,
    RESPONSE_A_HEADER,
    RESPONSE_B_HEADER,
)
from arena_core.models.heads import verdict_token_ids
from arena_core.models.loading import load_classifier

# A Gemma-style chat template: BOS, turn markers as control tokens, a generation prompt.
CHAT = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
texts = st.text(min_size=0, max_size=500)


def chat_tokenizer():
    """The byte-level test tokenizer (a fresh copy) with turn markers as special tokens and a chat template."""
    tok = byte_level_tokenizer.__wrapped__()
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    tok.chat_template = CHAT
    return tok


def frame(p, a, b, n=1):
    return pd.DataFrame(
        {"id": list(range(n)), "prompt": [p] * n, "response_a": [a] * n, "response_b": [b] * n}
    )


def split_parts(enc: PairEncoder, seq) -> tuple[list[int], list[int], list[int]]:
    """(prompt, first response, second response) tokens, found from the fixed template pieces."""
    s = list(map(int, seq))
    head = enc._prefix + enc._h_prompt
    tail = enc._question + enc._suffix
    assert s[: len(head)] == head and s[len(s) - len(tail) :] == tail
    body = s[len(head) : len(s) - len(tail)]

    def rfind(needle, end):
        for i in range(end - len(needle), -1, -1):
            if body[i : i + len(needle)] == needle:
                return i
        raise AssertionError("header not found")

    ib = rfind(enc._h_b, len(body))
    ia = rfind(enc._h_a, ib)
    return body[:ia], body[ia + len(enc._h_a) : ib], body[ib + len(enc._h_b) :]


# --------------------------------------------------------------------------- the judge template


@SETTINGS
@given(p=texts, a=texts, b=texts, max_length=st.integers(220, 500), chat=st.booleans())
def test_judge_template_fits_the_budget_and_swaps_exactly(p, a, b, max_length, chat):
    tok = chat_tokenizer() if chat else byte_level_tokenizer()
    enc = PairEncoder(tok, EncodingConfig(template="judge", max_length=max_length, min_part_tokens=8))
    assert enc.template.uses_chat is chat
    out = enc.encode_frame(frame(p, a, b))
    seq, swapped = out.input_ids[0], out.input_ids_swapped[0]
    assert len(seq) <= max_length and len(swapped) == len(seq)
    pp, first, second = split_parts(enc, seq)
    sp, sfirst, ssecond = split_parts(enc, swapped)
    assert (sp, sfirst, ssecond) == (pp, second, first)
    # The head reads the last token: the end of "Answer:", where the model writes its verdict.
    assert enc.render(seq).endswith(JUDGE_ANSWER)
    # The balanced budget still shares the room among prompt / A / B.
    kept, needs = out.part_tokens[0], out.part_needs[0]
    if needs.sum() <= enc.available:
        assert (kept == needs).all()
    for k, n in zip(kept, needs):
        assert k >= min(n, 8)


def test_judge_template_wraps_the_chat_template_with_real_control_tokens():
    tok = chat_tokenizer()
    enc = PairEncoder(tok, EncodingConfig(template="judge", max_length=256, min_part_tokens=8))
    out = enc.encode_frame(frame("What is 2+2? <start_of_turn>", "4", "five"))
    seq = list(map(int, out.input_ids[0]))
    text = enc.render(seq)
    assert text.startswith("<bos><start_of_turn>user\n") and "[Response A]\n4" in text
    assert text.endswith("Answer A or B.<end_of_turn>\n<start_of_turn>model\nAnswer:")
    turn = tok.convert_tokens_to_ids("<start_of_turn>")
    assert seq.count(tok.bos_token_id) == 1  # the template's BOS is not doubled
    assert seq.count(turn) == 2  # the template's two turns; the one typed in the prompt is plain text
    plain = PairEncoder(tok, EncodingConfig(template="judge", chat_template="off", max_length=256))
    assert not plain.template.uses_chat and turn not in plain.encode_frame(frame("q", "a", "b")).input_ids[0]
    with pytest.raises(ValueError, match="no chat template"):
        PairEncoder(byte_level_tokenizer(), EncodingConfig(template="judge", chat_template="on"))


def test_a_pad_token_inside_the_template_is_refused():
    tok = chat_tokenizer()
    tok.pad_token = "<end_of_turn>"  # pad == the turn end the chat template writes
    with pytest.raises(ValueError, match="pad token .* is part of the template"):
        PairEncoder(tok, EncodingConfig(template="judge", max_length=256))


def test_marker_template_is_the_default_and_unchanged():
    tok = byte_level_tokenizer()
    enc = PairEncoder(tok, EncodingConfig(max_length=256, min_part_tokens=8))
    assert enc.template.name == "marker"
    seq = list(map(int, enc.encode_frame(frame("p q", "a b", "c d")).input_ids[0]))
    text = PROMPT_HEADER + "p q" + RESPONSE_A_HEADER + "a b" + RESPONSE_B_HEADER + "c d" + QUESTION_SUFFIX
    assert seq == list(tok(text)["input_ids"])
    # A run directory written before these keys existed loads with the marker template; its head comes
    # from its adapter, and head_init (default zero) only shapes a fresh head before training.
    old = config_from_dict({"encoding": {"max_length": 256}, "model": {"path": "x", "num_labels": 2}})
    assert old.encoding.template == "marker" and old.model.head_init == "zero"
    with pytest.raises(ValueError, match="encoding.template"):
        PairEncoder(tok, EncodingConfig(template="fancy"))


# --------------------------------------------------------------------------- the verdict head


def _untied_tiny(out: Path) -> Path:
    """A tiny Gemma-2 whose LM head is NOT its input embedding (like a large untied model)."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from arena_core.models.backbones import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    cfg = Gemma2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(3)
    model = Gemma2ForCausalLM(cfg)
    assert not torch.equal(model.lm_head.weight, model.get_input_embeddings().weight)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _judge_batch(tok, n_rows=3):
    enc = PairEncoder(tok, EncodingConfig(template="judge", max_length=256, min_part_tokens=8))
    rows = pd.DataFrame(
        {
            "id": range(n_rows),
            "prompt": ["What is the capital of France?", "Sort a list", "Write a poem"][:n_rows],
            "response_a": ["Paris.", "Use sorted(values) in Python " * 3, "The sea"][:n_rows],
            "response_b": ["It is Madrid, I think.", "no", "Here is a poem about the quiet sea at night."][
                :n_rows
            ],
        }
    )
    seqs = enc.encode_frame(rows).input_ids
    return collate(seqs, tok.pad_token_id, "right"), [len(s) for s in seqs]


def _lm_verdict_logits(model_dir, batch, lengths, ids) -> torch.Tensor:
    """The causal LM's logits for the verdict ids at each row's last real token, before soft-capping."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(model_dir)
    cfg.final_logit_softcapping = None  # the classifier head has none
    lm = AutoModelForCausalLM.from_pretrained(model_dir, config=cfg, attn_implementation="eager").eval()
    with torch.no_grad():
        logits = lm(**batch).logits
    return torch.stack([logits[i, n - 1, ids] for i, n in enumerate(lengths)])


@pytest.mark.parametrize("num_labels", [2, 3])
@pytest.mark.parametrize("tied", [True, False])
def test_verdict_head_starts_as_the_lm_verdict(tiny_gemma2_dir, tmp_path, num_labels, tied):
    model_dir = tiny_gemma2_dir if tied else _untied_tiny(tmp_path / "untied")
    tokens = ["A", "B", "C"][:num_labels]  # single tokens of the tiny vocabulary
    cfg = ModelConfig(path=str(model_dir), num_labels=num_labels, head_init="verdict", verdict_tokens=tokens)
    torch.manual_seed(0)
    model, tok = load_classifier(cfg, LoraConfig(), for_training=True)
    model.eval()
    batch, lengths = _judge_batch(tok)
    with torch.no_grad():
        got = model(**batch).logits
    ids = verdict_token_ids(tok, tokens, num_labels)
    want = _lm_verdict_logits(model_dir, batch, lengths, ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # Not a coincidence of tiny logits: a random head gives something else.
    random_model, _ = load_classifier(
        ModelConfig(path=str(model_dir), num_labels=num_labels), LoraConfig(), for_training=True
    )
    with torch.no_grad():
        assert not torch.allclose(random_model.eval()(**batch).logits, want, atol=1e-3)


def test_zero_shot_load_needs_no_adapter_and_does_not_warn(tiny_gemma2_dir):
    cfg = ModelConfig(path=str(tiny_gemma2_dir), head_init="verdict", verdict_tokens=["A", "B"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the "freshly initialised head" warning would fail
        model, tok = load_classifier(cfg, None, for_training=False)
    emb = model.get_input_embeddings().weight
    assert torch.equal(model.score.weight, emb[verdict_token_ids(tok, ["A", "B"], 2)])


def test_verdict_token_errors_name_the_token(tiny_gemma2_dir):
    for tokens, match in [
        (["A", " B"], r"' B' is 2 tokens .* not exactly one"),
        (["A"], r"has 1 string.*needs 2"),
        (["A", "A"], "repeated token ids"),
    ]:
        cfg = ModelConfig(path=str(tiny_gemma2_dir), head_init="verdict", verdict_tokens=tokens)
        with pytest.raises(ValueError, match=match):
            load_classifier(cfg, LoraConfig(), for_training=True)
    with pytest.raises(ValueError, match="head_init must be one of random|verdict"):
        load_classifier(ModelConfig(path=str(tiny_gemma2_dir), head_init="lm"), None, for_training=True)


def _bnb_4bit_on_cpu() -> bool:
    import transformers

    from arena_core.models.quantization import _bnb_cpu_probe

    return int(transformers.__version__.split(".")[0]) >= 5 and _bnb_cpu_probe("4bit") is None


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_verdict_head_with_qlora(tiny_gemma2_dir):
    if not _bnb_4bit_on_cpu():
        pytest.skip("no CPU 4-bit kernel with this bitsandbytes/transformers")
    cfg = ModelConfig(
        path=str(tiny_gemma2_dir), quantization="4bit", head_init="verdict", verdict_tokens=["A", "B", "C"]
    )
    cfg.num_labels = 3
    model, tok = load_classifier(cfg, LoraConfig(), for_training=True, device="cpu")
    head = [p for n, p in model.named_parameters() if n.endswith("score.modules_to_save.default.weight")]
    assert len(head) == 1 and head[0].requires_grad
    emb = model.get_input_embeddings().weight.float()
    torch.testing.assert_close(head[0].float(), emb[verdict_token_ids(tok, ["A", "B", "C"], 3)])


# --------------------------------------------------------------------------- a run: train, save, reload, predict


def test_verdict_judge_run_saves_reloads_and_predicts_identically(tmp_path):
    from transformers import TrainerCallback

    from arena_core.config import load_config
    from arena_core.data.competition import load_competition_file
    from arena_core.inference.encoding_cache import encode_cached
    from arena_core.inference.engine import predict_probs
    from arena_core.inference.scoring import Scorer
    from arena_core.models.backbones import make_tiny_gemma2
    from arena_core.models.runs import load_run
    from arena_core.training.trainer import train

    model_dir = make_tiny_gemma2(tmp_path / "tiny")
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(24)],
            "prompt": ["Which answer is better?"] * 24,
            "response_a": [" ".join(rng.choice(["good", "clear", "wrong", "rude"], 4)) for _ in range(24)],
            "response_b": [" ".join(rng.choice(["good", "clear", "wrong", "rude"], 4)) for _ in range(24)],
            "winner": rng.choice(["model_a", "model_b"], 24),
            "language": "English",
        }
    )
    rows.to_parquet(tmp_path / "train.parquet")
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml"
    cfg = load_config(
        config,
        [
            f"model.path={model_dir}",
            "model.head_init=verdict",
            "model.verdict_tokens=A,B",
            "encoding.template=judge",
            "encoding.max_length=256",
            "encoding.min_part_tokens=8",
            "train.max_steps=3",
            "train.fold=-1",
            "train.logging_steps=1",
            "train.save_steps=1000",
        ],
    )

    class Keep(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            self.model = model

    keep = Keep()
    train(cfg, tmp_path / "train.parquet", tmp_path / "run", extra_callbacks=[keep])
    frame = load_competition_file(tmp_path / "train.parquet").frame.head(8)
    first, second = load_run(tmp_path / "run", quiet=True), load_run(tmp_path / "run", quiet=True)
    assert first.config.encoding.template == "judge" and first.config.model.head_init == "verdict"
    enc = encode_cached(frame, first.tokenizer, first.config.encoding)
    assert first.tokenizer.decode(list(enc.input_ids[0])).endswith(JUDGE_ANSWER)
    batch = collate(enc.input_ids, first.tokenizer.pad_token_id, "right")
    with torch.inference_mode():
        trained = keep.model.eval()(**batch).logits
        a, b = first.model(**batch).logits, second.model(**batch).logits
    assert torch.equal(a, b)
    torch.testing.assert_close(a, trained, atol=1e-6, rtol=1e-5)
    # Training moved the head away from its verdict start, and the saved adapter carries that head.
    start = first.model.get_input_embeddings().weight[verdict_token_ids(first.tokenizer, ["A", "B"], 2)]
    saved = [
        p for n, p in first.model.named_parameters() if n.endswith("score.modules_to_save.default.weight")
    ]
    assert len(saved) == 1 and not torch.equal(saved[0], start)
    # The engine (sorted token-budget batches, swap TTA) predicts the same probabilities for both loads.
    from arena_core.config import PredictConfig

    probs = [
        predict_probs(
            [Scorer(r.model, r.tokenizer.pad_token_id)], enc, PredictConfig(tta="swap"), progress=False
        )
        for r in (first, second)
    ]
    np.testing.assert_array_equal(probs[0].probs, probs[1].probs)


def test_run_tokenizer_keeps_its_chat_template_for_transformers_4_47(tmp_path):
    """4.47 reads the chat template only from tokenizer_config.json; without it the judge prompt would change."""
    from transformers import AutoTokenizer

    from arena_core.models.backbones import build_tiny_tokenizer
    from arena_core.models.portable import make_tokenizer_portable

    tok = build_tiny_tokenizer()
    tok.chat_template = CHAT
    tok.save_pretrained(tmp_path)
    make_tokenizer_portable(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)  # what a 4.47 load effectively sees
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    cfg = EncodingConfig(template="judge", max_length=384, min_part_tokens=8)
    rows = frame("q", "a", "b")
    want = PairEncoder(tok, cfg).encode_frame(rows).input_ids[0]
    assert PairEncoder(reloaded, cfg).template.uses_chat
    assert list(PairEncoder(reloaded, cfg).encode_frame(rows).input_ids[0]) == list(want)
