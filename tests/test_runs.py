"""A run is tied to its base by config.json *and* a fingerprint of the base weights; a run whose
weight files are missing or cut off says which file, and which run, before anything is loaded."""

from __future__ import annotations

import json
import shutil

import pytest

from arena_core.models.adapters import average_adapters
from arena_core.models.backbones import make_tiny_gemma2
from arena_core.models.errors import ModelLoadError
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


# --------------------------------------------------------------------------- broken weight files


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_run_without_its_adapter_weights_names_the_file_and_the_run(tiny_run, tmp_path):
    run, _ = copy_run(tiny_run, tmp_path)
    weights = run / "adapter" / "adapter_model.safetensors"
    weights.unlink()
    with pytest.raises(ModelLoadError) as err:
        load_run(run)
    msg = str(err.value)
    assert msg.startswith(f"{weights}: missing")
    assert f"run folder {run}" in msg and "retrain" in msg
    assert "Repo id" not in msg


def test_a_truncated_adapter_weights_file_is_named_as_truncated(tiny_run, tmp_path):
    run, _ = copy_run(tiny_run, tmp_path)
    weights = run / "adapter" / "adapter_model.safetensors"
    _truncate(weights)
    with pytest.raises(ModelLoadError) as err:
        load_run(run)
    msg = str(err.value)
    assert msg.startswith(f"{weights}: truncated or corrupt")
    assert f"run folder {run}" in msg and "copy that run folder again" in msg


def test_an_adapter_weights_file_safetensors_cannot_parse_names_the_run(tiny_run, tmp_path):
    """Whole by its sizes, but a header safetensors refuses: its own error, which names no file, is reworded."""
    run, _ = copy_run(tiny_run, tmp_path)
    header = json.dumps({"x": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (run / "adapter" / "adapter_model.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + bytes(4)
    )
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as err:
        load_run(run)
    assert str(run / "adapter") in str(err.value) and f"run folder {run}" in str(err.value)


def test_a_merged_run_with_a_truncated_or_missing_weights_file_is_named(tiny_run, tmp_path):
    """A full-model run (merged/: config.json + model.safetensors, head included) is checked the same way."""
    run, base = copy_run(tiny_run, tmp_path)
    shutil.rmtree(run / "adapter")
    shutil.copytree(base, run / "merged")  # a whole checkpoint, as save_final writes one
    weights = run / "merged" / "model.safetensors"
    _truncate(weights)
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as err:
        load_run(run)
    assert str(err.value).startswith(f"{weights}:") and f"run folder {run}" in str(err.value)
    weights.unlink()
    with pytest.raises(ModelLoadError, match="no model weights") as err:
        load_run(run)
    assert str(run / "merged") in str(err.value) and f"run folder {run}" in str(err.value)


def test_averaging_a_fold_with_a_truncated_adapter_names_the_file(tiny_run, tmp_path):
    run, _ = copy_run(tiny_run, tmp_path)
    other = tmp_path / "fold1"
    shutil.copytree(run / "adapter", other)
    _truncate(other / "adapter_model.safetensors")
    with pytest.raises(ModelLoadError, match=r"adapter_model\.safetensors: truncated or corrupt"):
        average_adapters([run / "adapter", other], tmp_path / "out")
