"""Placement on several GPUs (replicas vs one model split layer-wise) and planning at the hidden size.

The choice and the layer-to-GPU map are computed here, on CPU; loading a split model onto real
GPUs (transformers' ``device_map``) cannot run without them.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from arena_core.inference.placement import (
    checkpoint_bytes,
    choose_placement,
    split_device_map,
    split_max_memory,
)
from arena_core.inference.runtime_plan import plan_runtime, project_run, resample_lengths

GIB = 2**30


def test_choice_follows_memory():
    t4 = [int(14.7 * GIB)] * 2
    g2_2b, g2_9b = int(5.2 * GIB), int(18.5 * GIB)  # fp16 weights
    assert choose_placement(g2_2b, t4).kind == "replicas" and choose_placement(g2_2b, t4).workers == 2
    split = choose_placement(g2_9b, t4)
    assert split.kind == "split" and split.workers == 1 and split.fits
    assert split.max_memory == split_max_memory(t4) == {0: int(t4[0] * 0.75), 1: int(t4[1] * 0.75)}
    assert "too big for one GPU" in split.reason
    # a 9B in fp16 on one A100 stays whole; 4 GPUs' worth of model does not fit two T4s even split
    assert choose_placement(g2_9b, [int(39.4 * GIB)]).kind == "replicas"
    over = choose_placement(int(40 * GIB), t4)
    assert over.kind == "split" and not over.fits and "does NOT fit even split" in over.reason
    # asked for: honoured, with the memory verdict in the reason
    forced = choose_placement(g2_9b, t4, "replicas")
    assert forced.kind == "replicas" and not forced.fits and "try --placement split" in forced.reason
    assert choose_placement(g2_2b, t4, "split").kind == "split"
    assert choose_placement(g2_9b, t4[:1], "split").kind == "replicas"  # one GPU cannot split
    assert choose_placement(g2_2b, []).kind == "cpu"
    with pytest.raises(ValueError, match="placement must be one of"):
        choose_placement(1, t4, "pipeline")


def test_checkpoint_bytes_from_safetensors_headers(tmp_path):
    header = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [1000, 10], "data_offsets": [0, 40000]},
            "b": {"dtype": "BF16", "shape": [10], "data_offsets": [40000, 40020]},
        }
    ).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 40020)
    assert checkpoint_bytes(tmp_path, 2) == 10010 * 2  # fp16 at run time, whatever the stored dtype
    assert checkpoint_bytes(tmp_path, 4) == 10010 * 4
    assert checkpoint_bytes(tmp_path, 2, "4bit") == int(10010 * 0.55)


def test_split_device_map_keeps_layers_whole_and_balances(tiny_gemma2_dir):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_gemma2_dir)
    cfg.num_labels = 2
    size = checkpoint_bytes(tiny_gemma2_dir, 2)
    dmap = split_device_map(cfg, {0: size, 1: size})
    assert set(dmap.values()) == {0, 1}
    assert dmap["model.embed_tokens"] == 0 and dmap["score"] == 1
    assert dmap["model.layers.0"] == 0 and dmap["model.layers.1"] == 1  # whole decoder layers, in order
    assert not any(k.startswith("model.layers.0.") for k in dmap)
    # three GPUs: still in forward order, never going back to an earlier GPU
    order = list(split_device_map(cfg, {0: size, 1: size, 2: size}).values())
    assert order == sorted(order) and set(order) == {0, 1, 2}
    # the map covers every weight of the model that transformers will load
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(cfg)
    for name, _ in model.named_parameters():
        assert any(name == k or name.startswith(k + ".") for k in dmap), name
    with pytest.raises(ValueError, match=r"does not fit the GPUs' caps"):
        split_device_map(cfg, {0: size // 4, 1: size // 4})


def test_plan_at_the_hidden_size():
    public = np.array([300, 800, 1500])
    hidden = resample_lengths(public, 25000)
    assert len(hidden) == 25000 and set(np.unique(hidden)) <= set(public)
    assert np.array_equal(hidden, resample_lengths(public, 25000))  # seeded
    plan = plan_runtime(hidden, rows_per_s=2.0, gpus=2, tta="swap")
    assert plan.rows == 25000 and plan.seconds_max == pytest.approx(12500.0)
    assert "does not fit" not in plan.summary(4.5 * 3600)
    small = plan_runtime(public, rows_per_s=2.0, gpus=2, tta="swap")
    assert small.seconds_max < 2  # what the 3 public rows alone would have promised
    text = project_run(3, 25000, scoring_s=6.0, other_s=60.0, budget_s=4.5 * 3600)
    assert text.startswith("projection for 25000 rows: 13.91 h (50060 s) = 60 s loading and start-up")
    assert "at the 0.50 rows/s measured in this run on 3 row(s)" in text and "does NOT fit" in text
    with pytest.raises(ValueError):
        resample_lengths([], 10)


@pytest.fixture(scope="module")
def merged_run(tmp_path_factory, tiny_gemma2_dir):
    import warnings

    from arena_core.config import EncodingConfig, ModelConfig, RunConfig
    from arena_core.models.loading import load_classifier
    from arena_core.models.runs import write_manifest

    root = tmp_path_factory.mktemp("plan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = load_classifier(
            ModelConfig(path=str(tiny_gemma2_dir), dtype="fp32"), None, device="cpu", for_training=False
        )
    run = root / "run"
    model.save_pretrained(run / "merged")
    tok.save_pretrained(run / "merged")
    tok.save_pretrained(run / "tokenizer")
    cfg = RunConfig(encoding=EncodingConfig(max_length=96, min_part_tokens=8))
    cfg.model.dtype = "fp32"
    write_manifest(run, cfg, base_path=run / "merged", fingerprint="x", metrics={})
    test = root / "comp" / "test.parquet"
    test.parent.mkdir()
    pd.DataFrame(
        {
            "id": [1, 2, 3],
            "prompt": ["hi", "what is 2+2", "name a city"],
            "response_a": ["hello there", "4", "Paris " * 20],
            "response_b": ["hey", "four, obviously", "Madrid"],
        }
    ).to_parquet(test)
    (root / "comp" / "sample_submission.csv").write_text("id,winner\n1,model_a\n2,model_a\n3,model_a\n")
    return run, test


def arena(argv):
    from arena_core.cli.predict import register

    parser = argparse.ArgumentParser(prog="arena")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_plan_rows_projects_the_hidden_size_and_names_its_throughput(merged_run, capsys):
    run, test = merged_run
    rc = arena(
        [
            "plan",
            "--test",
            str(test),
            "--model",
            str(run),
            "--gpu",
            "t4x2",
            "--rows",
            "25000",
            "--rows-per-s",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert (
        f"projecting 25000 rows: token lengths drawn (seeded, with replacement) from the 3 row(s) of {test}"
        in out
    )
    assert "rows 25000, " in out
    assert "assumed throughput: 2 rows/s per worker, as stated with --rows-per-s; 2 worker(s)" in out
    assert "placement replicas: 2 replica(s): one GPU holds it" in out
    assert "one pass (no TTA): 1.74 h (6250 s)" in out and "both orders (swap TTA): 3.47 h (12500 s)" in out
    # the probe: measured here, and said so
    rc = arena(
        ["plan", "--test", str(test), "--model", str(run), "--gpu", "cpu", "--device", "cpu", "--rows", "500"]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "rows 500, " in out
    assert "tokens/s per worker, measured by a " in out and "-batch probe on cpu" in out


def test_predict_projects_its_time_for_the_hidden_rows(merged_run, tmp_path, capsys):
    run, test = merged_run
    out = tmp_path / "submission.csv"
    rc = arena(
        [
            "predict", "--test", str(test), "--model", str(run), "--out", str(out), "--device", "cpu",
            "--no-progress", "--time-budget", "4.5h", "--project-rows", "25000",
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    assert "projection for 25000 rows: " in text and "rows/s measured in this run on 3 row(s)" in text
    assert "budget 4.50 h: " in text
