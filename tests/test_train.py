"""Training through the real Gemma2ForSequenceClassification + peft + Trainer code paths on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from arena_core.config import load_config
from arena_core.models.backbones import make_tiny_gemma2
from arena_core.models.runs import load_run, read_manifest, version_drift
from arena_core.training.trainer import TrainingDiverged, train

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "tiny-cpu.yaml")
WORDS = {"good": ["great", "clear", "correct", "helpful"], "bad": ["wrong", "rude", "useless", "broken"]}


def toy_rows(n: int, seed: int) -> pd.DataFrame:
    """A learnable signal: the winning answer is made of 'good' words, the loser of 'bad' words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        good = " ".join(rng.choice(WORDS["good"], 4))
        bad = " ".join(rng.choice(WORDS["bad"], 4))
        a_wins = bool(rng.integers(2))
        rows.append(
            {
                "id": f"r{seed}-{i}",
                "prompt": f"which answer is better ({i})",
                "response_a": good if a_wins else bad,
                "response_b": bad if a_wins else good,
                "winner": "model_a" if a_wins else "model_b",
                "language": "English",
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    model_dir = make_tiny_gemma2(root / "tiny-gemma2")
    toy_rows(160, 0).to_parquet(root / "train.parquet")
    toy_rows(60, 1).to_parquet(root / "eval.parquet")
    return root, model_dir


def cfg_for(model_dir, *more):
    base = [
        f"model.path={model_dir}",
        "encoding.max_length=96",
        "encoding.min_part_tokens=8",
        "train.learning_rate=5e-3",
        "train.max_steps=60",
        "train.eval_steps=30",
        "train.save_steps=30",
        "train.logging_steps=5",
        "train.warmup_ratio=0.05",
        "lora.r=8",
    ]
    return load_config(CONFIG, base + list(more))


@pytest.fixture(scope="module")
def trained_run(setup):
    root, model_dir = setup
    cfg = cfg_for(model_dir)
    result = train(cfg, root / "train.parquet", root / "run", eval_file=root / "eval.parquet")
    return root, model_dir, result


def test_loss_falls_and_accuracy_beats_chance(trained_run):
    root, _, result = trained_run
    log = [json.loads(x) for x in (root / "run" / "train_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in log if "loss" in x and "eval_loss" not in x]
    assert np.mean(losses[-3:]) < np.mean(losses[:2]) - 0.1, losses
    assert result.metrics["accuracy"] >= 0.8, result.metrics
    assert result.metrics["log_loss"] < 0.6


def test_run_directory_contract(trained_run):
    root, model_dir, result = trained_run
    run = root / "run"
    for p in ("manifest.json", "config.yaml", "adapter/adapter_config.json", "tokenizer", "train_log.jsonl"):
        assert (run / p).exists(), p
    manifest = read_manifest(run)
    assert (
        manifest["base_model"]["name"] == model_dir.name
        and len(manifest["base_model"]["config_sha256"]) == 64
    )
    assert {"python", "torch", "transformers", "peft"} <= set(manifest["versions"])
    assert len(manifest["data_fingerprint"]) == 64
    assert manifest["metrics"]["accuracy"] == result.metrics["accuracy"]
    adapter_cfg = json.loads((run / "adapter/adapter_config.json").read_text())
    assert "score" in (adapter_cfg.get("modules_to_save") or [])  # the head travels with the adapter
    assert version_drift(manifest) == []


def test_saved_run_reproduces_logits_exactly(trained_run):
    root, _, _ = trained_run
    from arena_core.data.competition import load_competition_file
    from arena_core.encoding.batching import collate
    from arena_core.encoding.encoder import PairEncoder

    a = load_run(root / "run")
    b = load_run(root / "run")
    frame = load_competition_file(root / "eval.parquet").frame.head(8)
    enc = PairEncoder(a.tokenizer, a.config.encoding).encode_frame(frame)
    batch = collate(enc.input_ids, a.tokenizer.pad_token_id, "right")
    with torch.inference_mode():
        la = a.model(**batch).logits
        lb = b.model(**batch).logits
    assert torch.equal(la, lb)
    probs = la.softmax(-1).numpy()
    labels = frame["label"].to_numpy(dtype=int)
    assert (probs.argmax(1) == labels).mean() >= 0.75


def test_resume_matches_uninterrupted(setup):
    root, model_dir = setup
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 14:  # after checkpoint-12 was saved
                raise KeyboardInterrupt("simulated preemption")

    over = [
        "train.max_steps=20",
        "train.save_steps=6",
        "train.eval_steps=1000",
        "train.fold=-1",
        "train.learning_rate=2e-3",
    ]
    full = train(cfg_for(model_dir, *over), root / "train.parquet", root / "full")
    with pytest.raises(KeyboardInterrupt):
        train(
            cfg_for(model_dir, *over), root / "train.parquet", root / "resumed", extra_callbacks=[Interrupt()]
        )
    assert (root / "resumed" / "checkpoints" / "checkpoint-12").is_dir()
    resumed = train(cfg_for(model_dir, *over), root / "train.parquet", root / "resumed", resume=True)
    assert resumed.metrics["global_step"] == full.metrics["global_step"] == 20
    from safetensors.torch import load_file

    wa = load_file(root / "full" / "adapter" / "adapter_model.safetensors")
    wb = load_file(root / "resumed" / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


ONE_STEP = [
    "train.max_steps=1",
    "train.logging_steps=1",
    "train.save_steps=100",
    "train.fold=-1",
    "train.swap_augmentation=none",
    "lora.dropout=0",
]


def step_one(run_dir) -> dict:
    """The first logged optimizer step (loss, pre-clipping grad norm) of a run."""
    log = [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return next(x for x in log if "grad_norm" in x)


def untrained_mean_cross_entropy(cfg, data) -> float:
    """Mean cross-entropy per row of the model train() starts from, computed outside Trainer."""
    from transformers import set_seed

    from arena_core.data.competition import load_competition_file
    from arena_core.encoding.batching import collate
    from arena_core.encoding.encoder import PairEncoder
    from arena_core.models.loading import load_classifier

    set_seed(cfg.train.seed)  # train() seeds the same way right before it loads the model
    model, tok = load_classifier(cfg.model, cfg.lora, device=torch.device("cpu"), for_training=True)
    frame = load_competition_file(data).frame
    enc = PairEncoder(tok, cfg.encoding).encode_frame(frame)
    labels = torch.tensor(frame["label"].to_numpy(dtype=np.int64))
    with torch.no_grad():
        logits = model(**collate(enc.input_ids, tok.pad_token_id, "right")).logits
    return float(torch.nn.functional.cross_entropy(logits.float(), labels))


def test_first_step_is_the_same_for_accumulation_1_4_8(setup, tmp_path):
    """The same 8 rows as 8x1, 2x4 and 1x8 micro-batches: one gradient, one per-row mean loss."""
    root, model_dir = setup
    data = tmp_path / "eight.parquet"
    toy_rows(8, 3).to_parquet(data)  # exactly one step's rows, whatever the sampler order
    seen = {}
    for batch, accum in ((8, 1), (2, 4), (1, 8)):
        layout = [f"train.per_device_batch_size={batch}", f"train.gradient_accumulation_steps={accum}"]
        result = train(cfg_for(model_dir, *ONE_STEP, *layout), data, tmp_path / f"ga{accum}")
        seen[accum] = {**step_one(tmp_path / f"ga{accum}"), "train_loss": result.metrics["train_loss"]}
    truth = untrained_mean_cross_entropy(cfg_for(model_dir, *ONE_STEP), data)
    for accum, got in seen.items():
        assert got["loss"] == pytest.approx(truth, rel=1e-4), (accum, got, truth)
        assert got["train_loss"] == pytest.approx(truth, rel=1e-4), (accum, got, truth)
        assert got["grad_norm"] == pytest.approx(seen[1]["grad_norm"], rel=1e-3), seen


def test_pair_loss_is_a_sum_divided_once_by_the_rows_of_the_step():
    from arena_core.training.loss import PairLoss, pair_loss_sum

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    labels = torch.tensor([0, 1, 1])
    per_row = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(pair_loss_sum(logits, labels), per_row.sum())
    loss = PairLoss()
    out = {"logits": logits}
    assert torch.allclose(loss(out, labels), per_row.mean())  # no count: this batch is the step
    assert torch.allclose(loss(out, labels, num_items_in_batch=12), per_row.sum() / 12)
    assert torch.allclose(loss(out, labels, num_items_in_batch=torch.tensor(12)), per_row.sum() / 12)
    # DataParallel on transformers 5 passes one count per replica
    assert torch.allclose(loss(out, labels, num_items_in_batch=torch.tensor([[6], [6]])), per_row.sum() / 12)


def test_non_finite_loss_stops_with_step_and_lr(setup):
    root, model_dir = setup
    cfg = cfg_for(
        model_dir,
        "train.learning_rate=1e12",
        "train.logging_steps=1",
        "train.max_steps=12",
        "train.fold=-1",
        "train.max_grad_norm=1e30",
        "train.warmup_ratio=0",
    )
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step \d+ \(last learning rate"):
        train(cfg, root / "train.parquet", root / "nan")


def test_missing_model_dir_named(setup, tmp_path):
    root, _ = setup
    cfg = cfg_for(tmp_path / "no-such-model")
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        train(cfg, root / "train.parquet", tmp_path / "out")


def free_port() -> int:
    """A TCP port nothing listens on right now, for torchrun's rendezvous."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_on_cpu(setup, tmp_path):
    """torchrun, 2 CPU processes: trains, evaluates, writes one run, and its first step equals one
    process's step over the same 8 rows (the loss is not multiplied by accumulation or world size)."""
    root, model_dir = setup
    data = tmp_path / "eight.parquet"
    toy_rows(8, 3).to_parquet(data)
    one = train(cfg_for(model_dir, *ONE_STEP, "train.per_device_batch_size=8"), data, tmp_path / "one")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    port = free_port()  # a fixed port collides with another DDP run on the same machine
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    cmd += ["-m", "arena_core.cli", "train", "--config", CONFIG, "--model", str(model_dir)]
    cmd += ["--train", str(data), "--eval", str(root / "eval.parquet"), "--out", str(tmp_path / "ddp")]
    sets = [*ONE_STEP, "train.max_steps=6", "train.eval_steps=3", "train.save_steps=3"]
    sets += ["train.per_device_batch_size=2", "train.gradient_accumulation_steps=2"]
    sets += ["encoding.max_length=96", "encoding.min_part_tokens=8"]
    for s in sets:
        cmd += ["--set", s]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    manifest = read_manifest(tmp_path / "ddp")
    assert manifest["metrics"]["global_step"] == 6 and "accuracy" in manifest["metrics"]
    assert (tmp_path / "ddp" / "adapter" / "adapter_model.safetensors").is_file()
    ddp, single = step_one(tmp_path / "ddp"), step_one(tmp_path / "one")
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-4), (ddp, single, one.metrics)
    assert ddp["grad_norm"] == pytest.approx(single["grad_norm"], rel=1e-3), (ddp, single)


def test_qlora_4bit_trains_through_trainer_on_cpu(setup, tmp_path):
    """QLoRA end to end: NF4 base via bitsandbytes' CPU backend, prepare_model_for_kbit_training, Trainer."""
    from arena_core.models.quantization import _bnb_cpu_probe

    if _bnb_cpu_probe("4bit") is not None:
        pytest.skip(f"bitsandbytes has no usable CPU 4-bit backend here: {_bnb_cpu_probe('4bit')}")
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4.x only allows bitsandbytes on CPU with Intel IPEX")
    root, model_dir = setup
    cfg = cfg_for(
        model_dir, "model.quantization=4bit", "train.max_steps=3", "train.fold=-1", "train.save_steps=100"
    )
    result = train(cfg, root / "train.parquet", tmp_path / "qlora")
    assert result.metrics["global_step"] == 3 and np.isfinite(result.metrics["train_loss"])
    assert read_manifest(tmp_path / "qlora")["config"]["model"]["quantization"] == "4bit"
    with pytest.raises(ValueError, match="refusing to merge: the base is loaded in 4bit"):
        train(cfg, root / "train.parquet", tmp_path / "qlora-merge", merge=True)
    assert not (tmp_path / "qlora-merge").exists()  # refused before any work
