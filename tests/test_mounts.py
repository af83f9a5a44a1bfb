"""Mount discovery over fake ``/kaggle/input`` trees of the old and the new layouts (no network, no Kaggle)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arena_core.kaggle.mounts import MountError, discover, scan

WSDM = "wsdm-cup-multilingual-chatbot-arena"
LMSYS = "lmsys-chatbot-arena"


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def competition(folder: Path, test: str = "test.parquet") -> Path:
    touch(folder / test)
    touch(folder / "sample_submission.csv", "id,winner\n")
    touch(folder / "train.parquet")
    return folder


def checkpoint(folder: Path) -> Path:
    touch(folder / "config.json", json.dumps({"model_type": "gemma2"}))
    touch(folder / "model.safetensors")
    return folder


def run(folder: Path) -> Path:
    touch(folder / "manifest.json", "{}")
    touch(folder / "adapter" / "adapter_config.json", "{}")
    touch(folder / "tokenizer" / "tokenizer.json", "{}")
    touch(folder / "checkpoints" / "checkpoint-8" / "config.json", "{}")  # never a base of its own
    return folder


def bundle(folder: Path, runs=("gemma2-2b-fold0",)) -> Path:
    touch(folder / "BUNDLE.md")
    touch(folder / "wheels" / "arena_core-0.1.0-py3-none-any.whl")
    for r in runs:
        run(folder / "models" / r)
    checkpoint(folder / "models" / "base" / "gemma2-0123456789ab")
    return folder


def old_layout(root: Path) -> dict:
    """/kaggle/input/<slug>/ for everything, models as <model>/<framework>/<variation>/<version>/."""
    return {
        "competition": competition(root / WSDM),
        "bundle": bundle(root / "arena-core-bundle"),
        "model": checkpoint(root / "gemma-2" / "transformers" / "gemma-2-2b-it" / "2"),
    }


def new_layout(root: Path) -> dict:
    """competitions/<slug>/, datasets/<owner>/<slug>/, models/<owner>/<model>/<fw>/<variation>/<version>/."""
    return {
        "competition": competition(root / "competitions" / WSDM),
        "bundle": bundle(root / "datasets" / "jdoe" / "arena-core-bundle"),
        "model": checkpoint(root / "models" / "google" / "gemma-2" / "transformers" / "gemma-2-2b-it" / "2"),
        "output": run(root / "notebooks" / "jdoe" / "arena-core-train" / "gemma2-2b-fold1"),
    }


@pytest.mark.parametrize("layout", [old_layout, new_layout])
def test_discover_finds_everything_in_either_layout(tmp_path, layout):
    root = tmp_path / "input"
    tree = layout(root)
    m = discover(root)
    assert m.competition == tree["competition"] and m.bundle == tree["bundle"]
    in_bundle = tree["bundle"] / "models" / "gemma2-2b-fold0"
    assert m.runs[0] == in_bundle  # the bundle's runs come first
    if "output" in tree:
        assert m.runs == [in_bundle, tree["output"]]
    assert sorted(m.bases) == sorted(
        [tree["model"], tree["bundle"] / "models" / "base" / "gemma2-0123456789ab"]
    )
    # nothing inside a run (its checkpoints/, adapter/) counts as a base
    assert not any("checkpoint-8" in str(b) for b in m.bases)
    assert f"competition {tree['competition']}" in m.summary()


def test_missing_competition_lists_what_was_found(tmp_path):
    root = tmp_path / "input"
    bundle(root / "datasets" / "jdoe" / "arena-core-bundle")
    with pytest.raises(MountError) as err:
        discover(root)
    text = str(err.value)
    assert text.startswith(f"no competition folder under {root}: attach the competition")
    assert f"bundles (wheels/arena_core-*.whl): {root}/datasets/jdoe/arena-core-bundle" in text
    assert f"{root} holds: datasets" in text
    # a training notebook that does not need the bundle, an inference one that does
    with pytest.raises(MountError, match="no bundle under"):
        discover(tmp_path / "empty-input", need_competition=False)
    assert discover(tmp_path / "empty-input", need_competition=False, need_bundle=False).bundle is None


def test_ambiguous_finds_name_every_candidate_and_a_parameter_picks(tmp_path):
    root = tmp_path / "input"
    wsdm = competition(root / "competitions" / WSDM)
    lmsys = competition(root / "competitions" / LMSYS, test="test.csv")
    mine = bundle(root / "datasets" / "jdoe" / "arena-core-bundle")
    other = bundle(root / "datasets" / "jdoe" / "arena-core-bundle-9b")
    with pytest.raises(MountError) as err:
        discover(root)
    assert f"2 competition folders under {root}: {lmsys}, {wsdm}; name one (COMPETITION_DIR" in str(err.value)
    with pytest.raises(
        MountError, match=r"2 bundles under .*arena-core-bundle, .*arena-core-bundle-9b; name one"
    ):
        discover(root, competition=LMSYS)
    m = discover(root, competition=LMSYS, bundle="jdoe/arena-core-bundle")
    assert m.competition == lmsys and m.bundle == mine
    m = discover(root, competition=str(wsdm), bundle=str(other))  # folders are taken as they are
    assert m.competition == wsdm and m.bundle == other
    assert m.runs[0].parent.parent == other
    with pytest.raises(MountError, match=r"bundle .*arena-core-bundle/models' is not one; found under"):
        discover(root, competition=LMSYS, bundle=str(mine / "models"))
    with pytest.raises(MountError, match=r"competition folder 'no-such-arena' does not exist and names none"):
        discover(root, competition="no-such-arena", bundle=str(mine))


def test_a_bundle_given_outside_the_root_still_brings_its_runs(tmp_path):
    root = tmp_path / "input"
    comp = competition(root / WSDM)
    elsewhere = bundle(tmp_path / "somewhere" / "my-bundle", runs=("a", "b"))
    m = discover(root, bundle=elsewhere)
    assert m.competition == comp and m.bundle == elsewhere
    assert [r.name for r in m.runs] == ["a", "b"]


def test_scan_survives_symlink_loops_and_stops_at_its_depth(tmp_path):
    root = tmp_path / "input"
    comp = competition(root / WSDM)
    os.symlink(root, root / WSDM / "loop")
    deep = root / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "h"
    competition(deep)
    found = scan(root)
    assert found.competitions == [comp]  # the loop is walked once; 8 levels down is past the limit
    assert scan(tmp_path / "nowhere").competitions == []
