"""``arena demo --quick`` end to end (the tiny Gemma-2 stands in for Gemma-3): a leak-free synthetic
competition, both kinds of run, their ensemble against the length baseline, a bundle; and a second
demo over an interrupted one starts its own run over instead of stopping."""

from __future__ import annotations

import json

import pandas as pd

from arena_core.cli import main


def test_quick_demo_end_to_end_and_again_over_an_interrupted_run(tmp_path, capsys):
    out = tmp_path / "demo_out"
    assert main(["demo", "--quick", "--no-download", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    test = pd.read_parquet(out / "competition" / "test.parquet")
    sub = pd.read_csv(out / "submission.csv")
    assert sorted(sub["id"]) == sorted(test["id"])
    from arena_core.data.competition import load_competition_file
    from arena_core.data.sources import find_leakage

    comp = out / "competition"
    leak = find_leakage(
        load_competition_file(comp / "train.parquet").frame,
        load_competition_file(comp / "test.parquet").frame,
    )
    assert leak.total == 0 and leak.summary() in printed  # the demo ran the same check, and printed it
    for name in ("demo-lora:", "demo-features:", "ensemble:"):
        line = next(x for x in printed.splitlines() if x.strip().startswith(name))
        assert "length" in line and "+/-" in line and "->" in line
    assert (out / "bundle" / "models" / "demo-features" / "booster" / "model.txt").is_file()
    # The bundle's id is a placeholder: the upload line rebuilds it under the user's own name.
    upload = next(x for x in printed.splitlines() if "--upload" in x)
    assert "--dataset-id YOUR_KAGGLE_NAME/" in upload and f"--out {out / 'bundle'}" in upload
    manifest = json.loads((out / "runs" / "demo-features" / "manifest.json").read_text())
    assert manifest["kind"] == "features" and manifest["metrics"]["accuracy"] > 0.8

    # an interrupted demo leaves an unfinished run: the next demo starts it over, without asking
    ckpt = out / "runs" / "demo-lora" / "checkpoints"
    (ckpt / "checkpoint-3").mkdir(parents=True)
    (ckpt / "arena_run.json").write_text(json.dumps({"status": "training", "config": {}}))
    (out / "runs" / "demo-lora" / "manifest.json").unlink()
    assert main(["demo", "--quick", "--no-download", "--out", str(out)]) == 0
    assert "the demo starts its own run over" in capsys.readouterr().out
    assert (out / "runs" / "demo-lora" / "manifest.json").is_file()
