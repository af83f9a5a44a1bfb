"""Soft labels: reading teacher files, joining them to the training rows, swapping them with A/B."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from arena_core.data.errors import DataError
from arena_core.training.distill import attach_soft_labels, read_soft_labels, swap_soft
from arena_core.training.frames import training_frame


def test_swap_maps_teacher_probabilities_to_the_swapped_order():
    two = np.array([[0.9, 0.1], [0.3, 0.7]])
    assert swap_soft(two).tolist() == [[0.1, 0.9], [0.7, 0.3]]
    three = np.array([[0.6, 0.1, 0.3]])
    assert swap_soft(three).tolist() == [[0.1, 0.6, 0.3]]  # the tie stays a tie
    assert np.array_equal(swap_soft(swap_soft(three)), three)


def test_read_oof_and_save_probs_files(tmp_path):
    oof = pd.DataFrame(
        {"id": ["a", "b"], "p_a": [0.8, 0.2], "p_b": [0.2, 0.8], "fold": [0, 1], "label": [0, 1]}
    )
    oof.to_parquet(tmp_path / "oof.parquet")
    assert read_soft_labels(tmp_path / "oof.parquet").columns.tolist() == ["id", "p_a", "p_b"]
    long = pd.DataFrame(
        {
            "id": ["a", "b", "a", "b", "a", "b"],
            "model": ["m1", "m1", "m2", "m2", "ensemble", "ensemble"],
            "p_a": [0.8, 0.2, 0.6, 0.4, 0.7, 0.3],
            "p_b": [0.2, 0.8, 0.4, 0.6, 0.3, 0.7],
        }
    )
    long.to_parquet(tmp_path / "ens.parquet")
    assert read_soft_labels(tmp_path / "ens.parquet")["p_a"].tolist() == [0.7, 0.3]
    long[long["model"] == "m2"].to_parquet(tmp_path / "one.parquet")
    assert read_soft_labels(tmp_path / "one.parquet")["p_a"].tolist() == [0.6, 0.4]
    long[long["model"] != "ensemble"].to_parquet(tmp_path / "two.parquet")
    with pytest.raises(DataError, match=r"two.parquet: holds several models \['m1', 'm2'\]"):
        read_soft_labels(tmp_path / "two.parquet")
    oof.assign(p_b=[0.5, 0.8]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet: 1 row\(s\) are not probabilities .* ids 'a'"):
        read_soft_labels(tmp_path / "bad.parquet")


def frame(labels):
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(labels))],
            "prompt": "p",
            "response_a": "a",
            "response_b": "b",
            "label": pd.array(labels, dtype="Int64"),
            "language": "en",
        }
    )


def test_attach_two_and_three_classes_and_refusals():
    soft3 = pd.DataFrame({"id": ["r0", "r1"], "p_a": [0.6, 0.2], "p_b": [0.2, 0.2], "p_tie": [0.2, 0.6]})
    got = attach_soft_labels(frame([0, None, 1]), soft3.assign(id=["r0", "r1"]), 2, "t.parquet")
    # a 2-class student: p_tie dropped, the rest renormalised; r2 has a winner and no soft label
    np.testing.assert_allclose(got[["soft_a", "soft_b"]].to_numpy()[:2], [[0.75, 0.25], [0.5, 0.5]])
    assert np.isnan(got["soft_a"].iloc[2])
    three = attach_soft_labels(frame([0, 2]), soft3, 3, "t.parquet")
    np.testing.assert_allclose(three[["soft_a", "soft_b", "soft_tie"]], [[0.6, 0.2, 0.2], [0.2, 0.2, 0.6]])
    with pytest.raises(DataError, match="has no p_tie column; a 3-class model"):
        attach_soft_labels(frame([0]), soft3.drop(columns="p_tie"), 3, "t.parquet")
    with pytest.raises(
        DataError, match=r"1 training row\(s\) have neither a winner nor a soft label, ids 'r2'"
    ):
        attach_soft_labels(frame([0, 1, None]), soft3, 2, "t.parquet")
    with pytest.raises(DataError, match="none of its ids matches a training row"):
        attach_soft_labels(frame([0]), soft3.assign(id=["x", "y"]), 2, "t.parquet")


def test_training_frame_keeps_unlabelled_rows_that_have_soft_labels(tmp_path):
    rows = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "prompt": ["p1", "p2", "p3", "p4"],
            "response_a": ["a"] * 4,
            "response_b": ["b"] * 4,
            "winner": ["model_a", "tie", "model_b", "model_a"],
            "language": ["en"] * 4,
        }
    )
    rows.to_parquet(tmp_path / "train.parquet")
    rows.drop(columns="winner").assign(id=[5, 6, 7, 8], prompt=["q1", "q2", "q3", "q4"]).to_parquet(
        tmp_path / "extra.parquet"
    )
    soft = pd.DataFrame(
        {"id": [1, 5, 6, 7, 8], "p_a": [0.9, 0.3, 0.5, 0.6, 0.1], "p_b": [0.1, 0.7, 0.5, 0.4, 0.9]}
    )
    soft.to_parquet(tmp_path / "soft.parquet")
    got = training_frame(
        [tmp_path / "train.parquet", tmp_path / "extra.parquet"], 2, soft_labels=tmp_path / "soft.parquet"
    )
    assert got["id"].tolist() == [1, 3, 4, 5, 6, 7, 8]  # the tie (id 2) dropped for 2 classes
    assert got["label"].isna().sum() == 4
    assert got["soft_b"].tolist()[3:] == [0.7, 0.5, 0.4, 0.9]


# ----------------------------------------------------------------------------- the loss


def test_distill_loss_per_row_terms():
    import torch
    import torch.nn.functional as F

    from arena_core.training.loss import DistillLoss, distill_loss_sum

    torch.manual_seed(0)
    z = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    teacher = torch.softmax(torch.randn(4, 3), -1)
    hard = torch.tensor([1.0, 1.0, 0.0, 1.0])  # row 2: pseudo-labelled, no winner
    soft = torch.tensor([1.0, 1.0, 1.0, 0.0])  # row 3: a winner and no soft label
    a, t = 0.3, 2.0
    ce = F.cross_entropy(z, y, reduction="none")
    q = torch.softmax(torch.log(teacher) / t, -1)
    kl = t * t * (q * (q.log() - torch.log_softmax(z / t, -1))).sum(-1)
    expect = a * ce[0] + (1 - a) * kl[0] + a * ce[1] + (1 - a) * kl[1] + kl[2] + ce[3]
    got = distill_loss_sum(z, y, hard, teacher, soft, a, t)
    torch.testing.assert_close(got, expect)
    # alpha = 1 with every row hard: plain summed cross-entropy; a one-hot teacher at T = 1: KL == CE
    ones = torch.ones(4)
    torch.testing.assert_close(distill_loss_sum(z, y, ones, teacher, ones, 1.0, t), ce.sum())
    one_hot = F.one_hot(y, 3).float()
    torch.testing.assert_close(distill_loss_sum(z, y, ones, one_hot, ones, 0.0, 1.0), ce.sum())
    # divided once by the rows of the accumulated step, like PairLoss
    loss = DistillLoss(a, t)(
        {"logits": z}, y, num_items_in_batch=8, hard_mask=hard, soft_labels=teacher, soft_mask=soft
    )
    torch.testing.assert_close(loss, expect / 8)
    # a batch without soft keys (the evaluation set): hard labels alone
    torch.testing.assert_close(DistillLoss(a, t)({"logits": z}, y), ce.mean())


def test_dataset_swaps_soft_labels_with_the_responses():
    from types import SimpleNamespace

    from arena_core.training.dataset import PairCollator, PairDataset

    enc = SimpleNamespace(
        input_ids=[np.array([1, 10]), np.array([1, 20]), np.array([1, 30])],
        input_ids_swapped=[np.array([1, 11]), np.array([1, 21]), np.array([1, 31])],
    )
    labels = np.array([0, -1, 2])  # row 1 has no winner; row 2 is a tie
    soft = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [np.nan, np.nan, np.nan]])
    ds = PairDataset(enc, labels, "both", soft=soft)
    items = [ds[i] for i in range(len(ds))]
    assert [it["input_ids"][1] for it in items] == [10, 11, 20, 21, 30, 31]
    assert items[0]["soft_labels"] == [0.7, 0.2, 0.1] and items[0]["labels"] == 0
    assert items[1]["soft_labels"] == [0.2, 0.7, 0.1] and items[1]["labels"] == 1  # B first: swapped
    assert items[2]["hard_mask"] == 0.0 and items[2]["labels"] == 1  # placeholder: the teacher's pick
    assert items[3]["soft_labels"] == [0.6, 0.1, 0.3] and items[3]["labels"] == 0
    assert items[4]["soft_mask"] == 0.0 and items[4]["hard_mask"] == 1.0 and items[5]["labels"] == 2
    batch = PairCollator(0)(items)
    assert batch["soft_labels"].shape == (6, 3) and batch["hard_mask"].tolist() == [1, 1, 0, 0, 1, 1]


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def teacher_setup(tmp_path_factory):
    from test_train import toy_rows

    from arena_core.models.backbones import make_tiny_gemma2

    root = tmp_path_factory.mktemp("distill")
    model_dir = make_tiny_gemma2(root / "tiny")
    toy_rows(24, 0).to_parquet(root / "train.parquet")
    extra = toy_rows(12, 1).drop(columns="winner")  # pseudo-labelled pairs: no winner
    extra.to_parquet(root / "extra.parquet")
    # the teacher: confident, right on the labelled rows, leaning on the extra ones
    rows = pd.concat([toy_rows(24, 0), toy_rows(12, 1)], ignore_index=True)
    p_a = np.where(rows["winner"] == "model_a", 0.9, 0.15)
    teacher = pd.DataFrame({"id": rows["id"], "p_a": p_a, "p_b": 1 - p_a})
    teacher.to_parquet(root / "teacher.parquet")
    return root, model_dir, teacher


def test_student_trains_on_soft_labels_end_to_end_with_swapped_targets(teacher_setup, monkeypatch, capsys):
    """arena train --soft-labels: unlabelled rows train, and every batch the loss sees carries the
    teacher's probabilities for that row in the order it was shown (swapped for B first)."""
    from arena_core.cli import main
    from arena_core.encoding.encoder import PairEncoder
    from arena_core.models.runs import load_run, read_manifest
    from arena_core.training import loss as loss_mod

    root, model_dir, teacher = teacher_setup
    seen = []
    real = loss_mod.distill_loss_sum

    def spy(logits, labels, hard_mask, soft_labels, soft_mask, alpha, temperature):
        seen.append((soft_labels.data_ptr(), hard_mask.clone(), soft_labels.clone(), soft_mask.clone()))
        return real(logits, labels, hard_mask, soft_labels, soft_mask, alpha, temperature)

    monkeypatch.setattr(loss_mod, "distill_loss_sum", spy)
    shown = {}  # the collated batches, by their soft_labels tensor (the loss gets that very tensor)
    from arena_core.training import dataset as ds_mod

    real_collate = ds_mod.PairCollator.__call__

    def collate_spy(self, features):
        out = real_collate(self, features)
        shown[out["soft_labels"].data_ptr()] = [tuple(int(t) for t in f["input_ids"]) for f in features]
        return out

    monkeypatch.setattr(ds_mod.PairCollator, "__call__", collate_spy)
    out = root / "student"
    argv = ["train", "--config", os.path.join(os.path.dirname(__file__), "..", "configs", "tiny-cpu.yaml")]
    argv += [
        "--model",
        str(model_dir),
        "--train",
        str(root / "train.parquet"),
        "--train",
        str(root / "extra.parquet"),
    ]
    argv += ["--soft-labels", str(root / "teacher.parquet"), "--out", str(out)]
    for kv in ("encoding.max_length=96", "encoding.min_part_tokens=8", "train.max_steps=4", "train.fold=-1"):
        argv += ["--set", kv]
    argv += [
        "--set",
        "train.distill_alpha=0.5",
        "--set",
        "train.distill_temperature=2",
        "--set",
        "train.save_steps=100",
    ]
    assert main(argv) == 0
    assert "soft labels for 36 of 36 training rows (12 without a winner)" in capsys.readouterr().out
    manifest = read_manifest(out)
    assert manifest["metrics"]["train_rows"] == 36 and manifest["soft_labels"].endswith("teacher.parquet")
    assert np.isfinite(manifest["metrics"]["train_loss"])

    # map every sequence the loss saw back to (row, order) and check its soft label
    run = load_run(out)
    frame = pd.concat([pd.read_parquet(root / "train.parquet"), pd.read_parquet(root / "extra.parquet")])
    frame = frame.assign(label=pd.NA).reset_index(drop=True)
    enc = PairEncoder(run.tokenizer, run.config.encoding).encode_frame(
        frame.rename(columns={"winner": "w"})[
            ["id", "prompt", "response_a", "response_b", "language", "label"]
        ]
    )
    probs = teacher.set_index("id").loc[frame["id"], ["p_a", "p_b"]].to_numpy()
    where = {}
    for i in range(len(frame)):
        where[tuple(int(t) for t in enc.input_ids[i])] = (i, False)
        where[tuple(int(t) for t in enc.input_ids_swapped[i])] = (i, True)
    assert len(seen) == 4
    checked = swapped = unlabelled = 0
    for ptr, hard, soft, soft_mask in seen:
        for j, ids in enumerate(shown[ptr]):
            i, is_swapped = where[ids]
            want = probs[i][::-1] if is_swapped else probs[i]
            np.testing.assert_allclose(soft[j].numpy(), want, rtol=1e-6)
            assert soft_mask[j] == 1
            assert hard[j] == (1.0 if i < 24 else 0.0)
            checked, swapped, unlabelled = checked + 1, swapped + is_swapped, unlabelled + (i >= 24)
    assert checked == 4 * 8 and swapped and unlabelled


@pytest.mark.parametrize("quantization", ["none", "4bit"])
def test_three_class_student_lora_and_qlora(teacher_setup, tmp_path, quantization):
    from test_train import cfg_for

    from arena_core.models.quantization import _bnb_cpu_probe
    from arena_core.training.trainer import train

    if quantization == "4bit":
        import transformers

        if _bnb_cpu_probe("4bit") is not None or int(transformers.__version__.split(".")[0]) < 5:
            pytest.skip("no usable bitsandbytes 4-bit CPU backend here")
    root, model_dir, teacher = teacher_setup
    t3 = teacher.assign(p_a=teacher["p_a"] * 0.8, p_b=teacher["p_b"] * 0.8, p_tie=0.2)
    t3.to_parquet(tmp_path / "teacher3.parquet")
    cfg = cfg_for(
        model_dir,
        "model.num_labels=3",
        f"model.quantization={quantization}",
        "train.max_steps=2",
        "train.fold=-1",
        "train.save_steps=100",
        "train.distill_alpha=0.2",
    )
    result = train(
        cfg,
        [root / "train.parquet", root / "extra.parquet"],
        tmp_path / "s3",
        soft_labels=tmp_path / "teacher3.parquet",
    )
    assert result.metrics["global_step"] == 2 and np.isfinite(result.metrics["train_loss"])
    assert result.n_train == 36


def test_one_hot_soft_labels_reproduce_hard_label_training(teacher_setup, tmp_path):
    """alpha = 0, T = 1 and one-hot teacher probabilities: the KL term IS the cross-entropy, so the
    student's first step equals a hard-label run's (same normalisation over the accumulated step)."""
    import json

    from test_train import ONE_STEP, cfg_for

    from arena_core.training.trainer import train

    root, model_dir, _ = teacher_setup
    rows = pd.read_parquet(root / "train.parquet")
    hot = (rows["winner"] == "model_a").astype(float)
    pd.DataFrame({"id": rows["id"], "p_a": hot, "p_b": 1 - hot}).to_parquet(tmp_path / "hot.parquet")
    sets = [*ONE_STEP, "train.per_device_batch_size=4", "train.gradient_accumulation_steps=2"]
    hard = train(cfg_for(model_dir, *sets), root / "train.parquet", tmp_path / "hard")
    soft = train(
        cfg_for(model_dir, *sets, "train.distill_alpha=0", "train.distill_temperature=1"),
        root / "train.parquet",
        tmp_path / "soft",
        soft_labels=tmp_path / "hot.parquet",
    )

    def first(run):
        log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
        return next(x for x in log if "grad_norm" in x)

    a, b = first(tmp_path / "hard"), first(tmp_path / "soft")
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["grad_norm"] == pytest.approx(
        a["grad_norm"], rel=1e-4
    )
    assert hard.metrics["global_step"] == soft.metrics["global_step"] == 1


@pytest.mark.slow
def test_two_process_ddp_student_matches_one_process(teacher_setup, tmp_path):
    """torchrun, 2 CPU processes, soft labels and pseudo-labelled rows: the first step's loss and
    gradient norm equal one process's over the same rows."""
    import json
    import subprocess
    import sys

    from test_train import CONFIG, ONE_STEP, cfg_for, free_port

    from arena_core.training.trainer import train

    root, model_dir, teacher = teacher_setup
    sets = [*ONE_STEP, "train.distill_alpha=0.5", "train.distill_temperature=2"]
    # 8 rows, one step of 8 either way: 4 with a winner, 4 pseudo-labelled
    files = [tmp_path / "four.parquet", tmp_path / "four_extra.parquet"]
    pd.read_parquet(root / "train.parquet").head(4).to_parquet(files[0])
    pd.read_parquet(root / "extra.parquet").head(4).to_parquet(files[1])
    soft = root / "teacher.parquet"
    train(
        cfg_for(model_dir, *sets, "train.per_device_batch_size=8"), files, tmp_path / "one", soft_labels=soft
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    ]
    cmd += [
        "-m",
        "arena_core.cli",
        "train",
        "--config",
        CONFIG,
        "--model",
        str(model_dir),
        "--out",
        str(tmp_path / "ddp"),
    ]
    cmd += ["--train", str(files[0]), "--train", str(files[1]), "--soft-labels", str(soft)]
    more = [*sets, "train.per_device_batch_size=2", "train.gradient_accumulation_steps=2"]
    for s in [*more, "encoding.max_length=96", "encoding.min_part_tokens=8"]:
        cmd += ["--set", s]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    def first(run):
        log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
        return next(x for x in log if "grad_norm" in x)

    ddp, single = first(tmp_path / "ddp"), first(tmp_path / "one")
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-4), (ddp, single)
    assert ddp["grad_norm"] == pytest.approx(single["grad_norm"], rel=1e-3), (ddp, single)


def test_init_from_continues_the_previous_stage(teacher_setup, tmp_path):
    """train.init_from: stage 2 starts from stage 1's adapter (LMSYS-style stages), same base only."""
    import torch
    from safetensors.torch import load_file
    from test_train import cfg_for

    from arena_core.models.backbones import make_tiny_gemma2
    from arena_core.models.runs import RunError
    from arena_core.training.trainer import train

    root, model_dir, _ = teacher_setup
    steps = ["train.max_steps=3", "train.fold=-1", "train.save_steps=100"]
    train(cfg_for(model_dir, *steps), root / "train.parquet", tmp_path / "stage1")
    stage2 = cfg_for(
        model_dir,
        *steps,
        f"train.init_from={tmp_path / 'stage1'}",
        "train.learning_rate=1e-9",
        "train.warmup_ratio=0",
    )
    train(stage2, root / "extra.parquet", tmp_path / "stage2", soft_labels=root / "teacher.parquet")
    w1 = load_file(tmp_path / "stage1" / "adapter" / "adapter_model.safetensors")
    w2 = load_file(tmp_path / "stage2" / "adapter" / "adapter_model.safetensors")
    b = next(k for k in w1 if "lora_B" in k)
    assert w1[b].abs().max() > 1e-4  # stage 1 moved B away from its zero init ...
    torch.testing.assert_close(w2[b], w1[b], rtol=0, atol=1e-6)  # ... and stage 2 started there
    other = make_tiny_gemma2(tmp_path / "other", vocab_size=384)
    with pytest.raises(RunError, match="a different base model"):
        train(
            cfg_for(other, *steps, f"train.init_from={tmp_path / 'stage1'}"),
            root / "train.parquet",
            tmp_path / "x",
        )
