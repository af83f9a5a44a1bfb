"""The inference notebook's install step stops on a model the image's transformers does not know
(a Gemma-3 base on the competition-era transformers 4.47), naming its model_type and the version it
needs, before anything loads; the same table (``kaggle.bases.MIN_TRANSFORMERS``) the build uses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from kaggle_env import add_image_layer, fake_dist_info, netguard_dir, offline_env
from test_bundle import arena_wheel, bundle_kwargs, make_run, req, wheels, write_json, write_safetensors  # noqa: F401

from arena_core.kaggle.bundle import build_bundle
from arena_core.kaggle.install import check_architectures, model_configs, prepare
from arena_core.kaggle.metadata import COMPETITION
from arena_core.kaggle.mounts import discover

ROOT = Path(__file__).resolve().parent.parent


def gemma3_base(root: Path) -> Path:
    base = root / "gemma3-tiny"
    write_json(base / "config.json", {"model_type": "gemma3_text", "hidden_size": 8})
    write_safetensors(base / "model.safetensors", 16)
    write_json(base / "tokenizer_config.json", {"model_max_length": 128})
    return base


def kaggle_tree(tmp_path: Path, wheels: Path, req: Path) -> Path:  # noqa: F811
    """``kaggle/input`` (new layout): the competition, a bundle of one adapter run on a Gemma-3 base
    (built for today's image), and a training notebook's merged Qwen-3 run outside the bundle."""
    src = tmp_path / "src"
    base = gemma3_base(src)
    run = make_run(src, "g3-fold0", base=base)
    bundle = build_bundle(
        src / "bundle", [run], include_base=base, **bundle_kwargs(wheels, req, python="3.11")
    )
    inputs = tmp_path / "kaggle" / "input"
    shutil.copytree(bundle.out_dir, inputs / "datasets" / "jdoe" / "arena-core-bundle")
    comp = inputs / "competitions" / COMPETITION
    comp.mkdir(parents=True)
    (comp / "test.parquet").write_bytes(b"")
    (comp / "sample_submission.csv").write_text("id,winner\n")
    merged = inputs / "notebooks" / "jdoe" / "arena-core-train" / "q3-merged"
    write_json(merged / "manifest.json", {"format": "arena_core.run/1"})
    write_json(merged / "merged" / "config.json", {"model_type": "qwen3"})
    return inputs


def configs_base(mounts) -> str:
    """The folder name of the bundle's one base (models/base/<identity>/)."""
    return next((mounts.bundle / "models" / "base").iterdir()).name


def test_a_model_newer_than_the_installed_transformers_stops_before_loading(tmp_path, wheels, req):  # noqa: F811
    inputs = kaggle_tree(tmp_path, wheels, req)
    mounts = discover(inputs)
    configs = model_configs(mounts, [])  # [] = the bundle's runs: the adapter's bundled base
    assert list(configs) == [
        f"run g3-fold0 (base {mounts.bundle / 'models' / 'base' / configs_base(mounts)})"
    ]

    with pytest.raises(RuntimeError) as err:
        check_architectures(mounts, [], transformers="4.47.0")
    msg = str(err.value)
    assert msg.startswith("transformers 4.47.0 in this image cannot load run g3-fold0 (base ")
    assert "model_type 'gemma3_text' needs transformers >= 4.50" in msg
    assert "image with transformers >= 4.50" in msg
    check_architectures(mounts, [], transformers="4.50.0")  # knows Gemma-3

    with pytest.raises(
        RuntimeError, match=r"run q3-merged \(merged/\): model_type 'qwen3' needs transformers >= 4\.51"
    ):
        check_architectures(mounts, ["g3-fold0", "q3-merged"], transformers="4.50.0")
    check_architectures(mounts, ["g3-fold0"], transformers="4.50.0")  # only the runs RUNS names count

    # this interpreter's transformers knows both: prepare() goes on and returns the mounts
    assert prepare(inputs, install=False, runs=["g3-fold0", "q3-merged"]).bundle == mounts.bundle


@pytest.mark.slow
def test_the_inference_notebook_install_cell_stops_on_an_old_transformers(
    tmp_path,
    wheels,  # noqa: F811
    req,  # noqa: F811
    kaggle_image_python,
):
    """The committed notebook up to its install cell, in a stand-in image whose transformers is 4.47."""
    from test_notebooks import notebook_script, read_committed

    from arena_core.kaggle.notebooks import INFER_NOTEBOOK

    inputs = kaggle_tree(tmp_path, wheels, req)
    layer = tmp_path / "image-layer"
    fake_dist_info(layer, "transformers", "4.47.0")
    py = str(add_image_layer(kaggle_image_python, layer))
    env = offline_env(netguard_dir(tmp_path / "guard"))
    script = tmp_path / "install.py"
    script.write_text(notebook_script(read_committed(INFER_NOTEBOOK), {"INPUT_ROOT": inputs}, upto="install"))
    done = subprocess.run(
        [py, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert done.returncode != 0, done.stdout[-3000:]
    assert "transformers 4.47.0" in done.stdout  # the stack line printed before the stop
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: transformers 4.47.0 in this image cannot load run g3-fold0"), last
    assert "model_type 'gemma3_text' needs transformers >= 4.50" in last
