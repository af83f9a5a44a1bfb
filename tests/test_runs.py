"""A run is tied to its base by config.json *and* a fingerprint of the base weights."""

from __future__ import annotations

import json
import shutil

import pytest

from arena_core.models.backbones import make_tiny_gemma2
from arena_core.models.runs import RunError, file_sha256, load_run, read_manifest, weights_fingerprint


def copy_run(tiny_run, dest):
    """The session's run and base copied under ``dest``, the manifest pointing at the copied base."""
    run, base = tiny_run
    run_copy, base_copy = dest / "runs" / "run", dest / "bases" / base.name
    shutil.copytree(run, run_copy)
    shutil.copytree(base, base_copy)
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["base_model"]["path"] = str(base_copy.resolve())
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    return run_copy, base_copy


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory, tiny_gemma2_dir):
    """The tiny Gemma-2 again with another seed: the same config.json, different weights."""
    other = make_tiny_gemma2(tmp_path_factory.mktemp("other") / "tiny-base", seed=1)
    assert file_sha256(other / "config.json") == file_sha256(tiny_gemma2_dir / "config.json")
    return other


def test_manifest_records_a_stable_weights_fingerprint(tiny_run, tmp_path, other_weights):
    run, base = tiny_run
    recorded = read_manifest(run)["base_model"]["weights_fingerprint"]
    assert recorded.startswith("sha256:") and recorded == weights_fingerprint(base)
    shutil.copytree(base, tmp_path / "copy")
    assert weights_fingerprint(tmp_path / "copy") == recorded  # a copy is the same base
    assert weights_fingerprint(other_weights) != recorded  # same config, other weights


def test_load_run_refuses_a_base_with_the_same_config_but_other_weights(tiny_run, other_weights):
    run, base = tiny_run
    with pytest.raises(RunError) as err:
        load_run(run, base_dir=other_weights)
    msg = str(err.value)
    assert str(other_weights) in msg and str(base.resolve()) in msg and "weights" in msg


def test_a_run_without_a_fingerprint_still_loads_with_a_note(tiny_run, tmp_path, capsys):
    run, _ = copy_run(tiny_run, tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["base_model"]["weights_fingerprint"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_run(run)
    assert loaded.model is not None
    assert "predates base weight fingerprints" in capsys.readouterr().out
