"""Kaggle metadata judged offline by the kaggle package's own validation code, plus our checks
(placeholder ids, licence names, internet off), without credentials or network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.metadata import (
    COMPETITION,
    MACHINE_SHAPES,
    check_metadata,
    competition_slug,
    write_kernel_metadata,
)

ROOT = Path(__file__).resolve().parent.parent
DATASET_ID = "jdoe/arena-core-bundle"
TITLE = "Arena Core Test Bundle"


GOOD_DATASET = {"id": DATASET_ID, "title": TITLE, "licenses": [{"name": "apache-2.0"}]}


def test_kaggle_validation_accepts_generated_dataset_and_kernel_metadata(tmp_path):
    assert check_metadata(dict(GOOD_DATASET)).metadata == GOOD_DATASET
    (tmp_path / "infer_notebook.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    path = write_kernel_metadata(
        tmp_path,
        kernel_id="jdoe/arena-core-inference",
        title="Arena Core Inference",
        dataset_sources=[DATASET_ID],
    )
    meta = json.loads(path.read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["competition_sources"] == [COMPETITION] and meta["code_file"] == "infer_notebook.ipynb"
    result = check_metadata(path, "kernel")
    assert result.warnings == []  # title resolves to the slug: kaggle prints nothing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"id": "arena-core-bundle"},
            r"Dataset must be specified in the form of '\{username\}/\{dataset-slug\}'",
        ),
        ({"id": "user/slug"}, r"'user/slug' is a placeholder"),
        ({"id": "YOUR_USERNAME/arena-core-bundle"}, r"is a placeholder"),
        ({"id": "jdoe/abc"}, r"kaggle: The dataset slug must be between 6 and 50 characters"),
        ({"id": "JDoe/Arena_Bundle"}, r"kaggle: Invalid slug: Arena_Bundle"),
        ({"title": "abc"}, r"kaggle: The dataset title must be between 6 and 50 characters"),
        ({"title": "INSERT_TITLE_HERE"}, r"kaggle: Default title detected"),
        ({"licenses": [{"name": "Apache"}]}, r"licence 'Apache' is not a Kaggle dataset licence name"),
        ({"licenses": [{"name": "Apache-2.0"}]}, r"did you mean 'apache-2.0'"),
        (
            {"licenses": [{"name": "CC0-1.0"}, {"name": "apache-2.0"}]},
            r"kaggle: Please specify exactly one license",
        ),
        ({"subtitle": "too short"}, r"kaggle: Subtitle length must be between 20 and 80"),
    ],
)
def test_kaggle_validation_rejects_bad_dataset_fields(change, message):
    with pytest.raises(BundleError, match=message):
        check_metadata({**GOOD_DATASET, **change})


GOOD_KERNEL = {
    "id": "jdoe/arena-core-inference",
    "title": "Arena Core Inference",
    "code_file": "infer_notebook.ipynb",
    "language": "python",
    "kernel_type": "notebook",
    "enable_gpu": True,
    "enable_internet": False,
    "dataset_sources": [DATASET_ID],
    "competition_sources": [COMPETITION],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"enable_internet": True}, r"enable_internet is true"),
        ({"enable_internet": "true"}, r"enable_internet is true"),
        ({"enable_internet": None}, r"enable_internet is missing"),
        ({"enable_internet": "maybe"}, r"kaggle: Invalid boolean value: maybe"),
        ({"title": "Arc"}, r"kaggle: Title must be at least five characters"),
        ({"id": "jdoe/abc"}, r"kaggle: Kernel slug must be at least five characters"),
        ({"id": "YOUR_KAGGLE_USERNAME/arena-core-inference"}, r"is a placeholder"),
        ({"dataset_sources": ["user/slug"]}, r"dataset source 'user/slug' is a placeholder"),
        ({"dataset_sources": ["no-owner"]}, r"kaggle: Dataset must be specified in the form"),
        ({"language": "julia"}, r"kaggle: A valid language must be specified"),
        ({"kernel_type": "app"}, r"kaggle: A valid kernel type must be specified"),
        ({"code_file": "missing.ipynb"}, r"kaggle: Source file not found"),
    ],
)
def test_kaggle_validation_rejects_bad_kernel_fields(tmp_path, change, message):
    (tmp_path / "infer_notebook.ipynb").write_text(json.dumps({"cells": []}))
    meta = {**GOOD_KERNEL, **change}
    meta = {k: v for k, v in meta.items() if v is not None}
    with pytest.raises(BundleError, match=message):
        check_metadata(meta, "kernel", folder=tmp_path)


def write_notebook(folder: Path, name: str = "infer_notebook.ipynb") -> None:
    (folder / name).write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_kernel_metadata_asks_for_t4x2_and_passes_kaggle_validation(tmp_path):
    write_notebook(tmp_path)
    meta = json.loads(
        write_kernel_metadata(
            tmp_path,
            kernel_id="jdoe/arena-core-inference",
            title="Arena Core Inference",
            dataset_sources=[DATASET_ID],
        ).read_text()
    )
    assert meta["machine_shape"] == "NvidiaTeslaT4" and meta["enable_gpu"] is True
    assert meta["enable_internet"] is False and "docker_image" not in meta
    assert check_metadata(tmp_path, "kernel").warnings == []  # kaggle's kernels_push checks, offline

    pinned = json.loads(
        write_kernel_metadata(
            tmp_path,
            kernel_id="jdoe/arena-core-inference",
            title="Arena Core Inference",
            dataset_sources=[DATASET_ID],
            competition_sources=["lmsys"],
            machine_shape="NvidiaL4",
            docker_image="gcr.io/kaggle-gpu-images/python@sha256:" + "0" * 64,
            docker_image_pinning_type="original",
        ).read_text()
    )
    assert pinned["machine_shape"] == "NvidiaL4" and pinned["docker_image_pinning_type"] == "original"
    assert pinned["docker_image"].startswith("gcr.io/") and pinned["competition_sources"] == [
        "lmsys-chatbot-arena"
    ]
    check_metadata(tmp_path, "kernel")
    # no GPU: no machine_shape is written (a GPU shape on a CPU kernel would contradict it)
    cpu = write_kernel_metadata(
        tmp_path / "cpu",
        kernel_id="jdoe/arena-core-inference",
        title="Arena Core Inference",
        dataset_sources=[DATASET_ID],
        enable_gpu=False,
        validate=False,
    )
    assert "machine_shape" not in json.loads(cpu.read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"machine_shape": "T4x2"},
            r"machine_shape 'T4x2' is not a Kaggle accelerator id; known: NvidiaTeslaT4",
        ),
        ({"machine_shape": "nvidiateslat4"}, r"did you mean 'NvidiaTeslaT4'"),
        ({"machine_shape": "TpuV6E8"}, r"is a TPU: arena_core runs on CUDA GPUs"),
        ({"machine_shape": "NvidiaTeslaT4", "enable_gpu": False}, r"asks for a GPU but enable_gpu is false"),
        (
            {"docker_image_pinning_type": "newest"},
            r"kaggle: If specified, the docker_image_pinning_type must be",
        ),
    ],
)
def test_kernel_hardware_fields_are_checked(tmp_path, change, message):
    write_notebook(tmp_path)
    with pytest.raises(BundleError, match=message):
        check_metadata({**GOOD_KERNEL, **change}, "kernel", folder=tmp_path)


def test_competition_aliases():
    assert competition_slug("wsdm") == COMPETITION
    assert competition_slug("LMSYS") == "lmsys-chatbot-arena"
    assert competition_slug("some-other-arena") == "some-other-arena"
    assert "NvidiaTeslaT4" in MACHINE_SHAPES and "NvidiaTeslaP100" in MACHINE_SHAPES


def test_committed_kernel_metadata_is_offline_and_refused_until_the_user_sets_an_id(tmp_path):
    path = ROOT / "kaggle" / "kernel-metadata.json"
    meta = json.loads(path.read_text())
    assert meta["enable_internet"] is False  # explicitly present and false
    assert meta["enable_gpu"] is True and meta["code_file"] == "infer_notebook.ipynb"
    assert meta["competition_sources"] == [COMPETITION]
    assert meta["machine_shape"] == "NvidiaTeslaT4"  # GPU T4 x2, never a P100 by default
    with pytest.raises(BundleError, match=r"'YOUR_KAGGLE_USERNAME/arena-core-inference' is a placeholder"):
        check_metadata(path, "kernel")
    # with the user's name in place, only kaggle's own checks remain, and they pass
    (tmp_path / "infer_notebook.ipynb").write_text(json.dumps({"cells": []}))
    mine = {**meta, "id": "jdoe/arena-core-inference", "dataset_sources": [DATASET_ID]}
    assert check_metadata(mine, "kernel", folder=tmp_path).metadata["id"] == "jdoe/arena-core-inference"


def test_importing_the_validation_code_does_not_authenticate(tmp_path):
    code = (
        "import sys; from arena_core.kaggle.bundle import check_metadata; "
        f"check_metadata({GOOD_DATASET!r}); print('kaggle' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"  # kaggle/__init__ (which authenticates) never ran
    assert "Authentication" not in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- a kernel for the bundle
def _build_dataset_main(argv: list[str]) -> int:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dataset", ROOT / "build_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"competition_sources": []},
            r"competition_sources is empty: the notebook would find no competition data",
        ),
        (
            {"dataset_sources": []},
            r"dataset_sources \[\] does not include the bundle 'jdoe/arena-core-bundle'",
        ),
        (
            {"dataset_sources": ["jdoe/some-other-data"]},
            r"does not include the bundle 'jdoe/arena-core-bundle': the notebook would find no arena_core wheel",
        ),
    ],
)
def test_kernel_metadata_must_attach_a_competition_and_the_bundle(tmp_path, capsys, change, message):
    """Kaggle accepts both; the pushed notebook then finds no test file, or no wheel to install."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "dataset-metadata.json").write_text(json.dumps(GOOD_DATASET))  # the built bundle's id
    push = tmp_path / "push"
    push.mkdir()
    write_notebook(push)
    path = write_kernel_metadata(
        push,
        kernel_id="jdoe/arena-core-inference",
        title="Arena Core Inference",
        dataset_sources=[DATASET_ID],
    )
    argv = ["--out", str(bundle), "--kernel-metadata", str(path)]
    assert _build_dataset_main(argv) == 0
    assert f"attaches {DATASET_ID}" in capsys.readouterr().out

    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert _build_dataset_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"build_dataset.py: error: {path}: ")
    assert re.search(message, err[0])
    # no built bundle at --out and no --dataset-id: nothing to check the sources against
    assert _build_dataset_main(["--out", str(tmp_path / "none"), "--kernel-metadata", str(path)]) == 2
    assert "--kernel-metadata needs the built bundle at --out" in capsys.readouterr().err
