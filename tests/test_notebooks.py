"""The Kaggle notebooks: generated from code, committed clean, and REALLY executed.

Fake ``/kaggle`` trees are built in temporary folders, in the old layout (``kaggle/input/<slug>``)
and the new one (``competitions/``, ``datasets/<owner>/``, ``models/<owner>/...``, ``notebooks/``):
the small synthetic demo competition, a real bundle of two tiny runs on two tiny bases trained here
(the training-time bases deleted, so inference must find ``models/base/<identity>/``), a Kaggle
Model mount and a training notebook's output. The committed notebooks run in a Jupyter kernel of
this interpreter (nbclient) with only ``INPUT_ROOT`` and run choices injected, network off.

The install cell's default ``INSTALL="auto"`` skips pip when arena_core is importable (in the
kernel it is); the install itself runs for real, from the bundle's wheels, in a stand-in image (a
fresh virtual environment seeing this interpreter's packages, see ``kaggle_env.py``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from kaggle_env import add_image_layer, fake_dist_info, netguard_dir, offline_env

from arena_core.cli.notebooks import register
from arena_core.config import load_config
from arena_core.data.submission import validate_submission
from arena_core.kaggle.bundle import build_bundle
from arena_core.kaggle.metadata import COMPETITION
from arena_core.kaggle.notebooks import (
    INFER_NOTEBOOK,
    TRAIN_NOTEBOOK,
    check_notebooks,
    config_overrides,
    inject_parameters,
    make_infer_notebook,
    make_train_notebook,
    notebook_parameters,
    notebook_text,
    train_argv,
    write_notebooks,
)
from arena_core.kaggle.wheels import build_arena_core_wheel

ROOT = Path(__file__).resolve().parent.parent
KAGGLE_DIR = ROOT / "kaggle"
TINY_CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
KERNEL = "arena-core-tests"
BNB = "bitsandbytes-0.46.1-py3-none-any.whl"  # a stand-in: a valid wheel with metadata only
TINY = [
    "encoding.max_length=96",
    "encoding.min_part_tokens=8",
    "train.logging_steps=1",
    "train.save_steps=1000",
]


def read_committed(name: str):
    return nbformat.read(KAGGLE_DIR / name, as_version=4)


def cell(nb, cell_id: str):
    return next(c for c in nb.cells if c.get("id") == cell_id)


def fake_wheel(folder: Path, filename: str) -> Path:
    name, version = filename.split("-")[:2]
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / filename, "w") as z:
        dist = f"{name}-{version}.dist-info"
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return folder / filename


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CONFIG_FILE=os.devnull, TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- generated and committed
@pytest.mark.parametrize(
    ("name", "make"), [(INFER_NOTEBOOK, make_infer_notebook), (TRAIN_NOTEBOOK, make_train_notebook)]
)
def test_committed_notebook_equals_the_generator(name, make):
    assert (KAGGLE_DIR / name).read_text(encoding="utf-8") == notebook_text(make()), (
        f"kaggle/{name} is stale: run 'arena notebooks --out kaggle'"
    )


@pytest.mark.parametrize("name", [INFER_NOTEBOOK, TRAIN_NOTEBOOK])
def test_committed_notebook_is_valid_v4_without_outputs(name):
    nb = read_committed(name)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert [c.id for c in nb.cells if "parameters" in c.metadata.get("tags", [])] == ["parameters"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# arena_core")
    # thin: the only cell with control flow is the install cell (it runs before arena_core exists)
    flow = (ast.If, ast.For, ast.While, ast.FunctionDef, ast.Try, ast.With, ast.ClassDef)
    for c in code:
        if c.id != "install":
            assert not [n for n in ast.walk(ast.parse(c.source)) if isinstance(n, flow)], c.id


def test_infer_notebook_defaults_discover_under_kaggle_input():
    params = notebook_parameters(read_committed(INFER_NOTEBOOK))
    assert params == {
        "INPUT_ROOT": "/kaggle/input",
        "COMPETITION_DIR": "",  # found, in either mount layout
        "BUNDLE_DIR": "",
        "RUNS": [],
        "WEIGHTS": [],
        "TTA": "swap",
        "TIME_BUDGET": "4.5h",
        "HIDDEN_ROWS": 25000,
        "PLACEMENT": "auto",
        "ON_MODEL_FAILURE": "fail",
        "SAFETY_NET": "auto",
        "OUT": "/kaggle/working/submission.csv",
        "INSTALL": "auto",
    }
    install = cell(read_committed(INFER_NOTEBOOK), "install").source
    assert '"--no-index", "--no-deps"' in install and "--find-links" not in install  # nothing re-resolved


def test_train_notebook_defaults_are_the_t4_config():
    params = notebook_parameters(read_committed(TRAIN_NOTEBOOK))
    assert params["OUT_DIR"] == "/kaggle/working/gemma2-2b-fold0" and params["CONFIG"] == ""
    assert params["BASE_MODEL_DIR"] == "" and params["INPUT_ROOT"] == "/kaggle/input"
    assert params["MAX_TIME"] == "11h" and params["GPUS"] == "auto" and params["RESUME_FROM"] == ""
    t4 = ROOT / "configs" / "gemma2-2b-qlora-t4.yaml"
    from_overrides = load_config(None, params["OVERRIDES"] + ["model.path=/m"])
    from_file = load_config(t4, ["model.path=/m"])
    assert from_overrides == from_file  # the notebook carries the config exactly
    assert "model.quantization=4bit" in params["OVERRIDES"]


def test_config_overrides_round_trip_every_config():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        overrides = config_overrides(path)
        assert not any(o.startswith("model.path=") for o in overrides)
        assert load_config(None, overrides + ["model.path=/m"]) == load_config(path, ["model.path=/m"]), path


# ----------------------------------------------------------------------------- parameters
def test_inject_parameters_papermill_style():
    nb = make_infer_notebook()
    before = notebook_text(nb)
    out = inject_parameters(nb, {"RUNS": ["a", "b"], "WEIGHTS": [0.7, 0.3], "OUT": Path("/x/sub.csv")})
    assert notebook_text(nb) == before  # the input is not touched
    ids = [c.id for c in out.cells]
    assert ids[ids.index("parameters") + 1] == "injected-parameters"
    ns: dict = {}
    exec(cell(out, "parameters").source + "\n" + cell(out, "injected-parameters").source, ns)
    assert ns["RUNS"] == ["a", "b"] and ns["WEIGHTS"] == [0.7, 0.3] and ns["OUT"] == "/x/sub.csv"
    assert ns["TTA"] == "swap"  # defaults not overridden stay
    again = inject_parameters(out, {"TTA": "none"})
    assert [c.id for c in again.cells].count("injected-parameters") == 1
    assert "TTA = 'none'" in cell(again, "injected-parameters").source
    nbformat.validate(again)
    with pytest.raises(KeyError, match=r"unknown notebook parameter\(s\) \['RUNZ'\]"):
        inject_parameters(nb, {"RUNZ": []})
    with pytest.raises(ValueError, match="not a Python literal"):
        inject_parameters(nb, {"OUT": object()})


# ----------------------------------------------------------------------------- argv helpers
def test_train_argv(tmp_path):
    base = tmp_path / "gemma" / "2"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    argv = train_argv("/comp", "", base, ["lora.r=8", "train.max_steps=5"], "/w/run")
    assert argv == [
        "train",
        "--data-dir",
        "/comp",
        "--out",
        "/w/run",
        "--model",
        str(base),
        "--set",
        "lora.r=8",
        "--set",
        "train.max_steps=5",
    ]
    assert train_argv("/comp", "c.yaml", None, (), "r")[-2:] == ["--config", "c.yaml"]
    with pytest.raises(FileNotFoundError, match=r"BASE_MODEL_DIR .*/gemma/3: no config.json .*holds \['2'\]"):
        train_argv("/comp", "", tmp_path / "gemma" / "3")
    from arena_core.cli.main import build_parser

    args = build_parser().parse_args(argv)
    assert args.set == ["lora.r=8", "train.max_steps=5"] and args.model == str(base)


# ----------------------------------------------------------------------------- the command
def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="arena")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_notebooks_command_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "kaggle"
    assert run_command(["notebooks", "--check", "--out", str(out)]) == 1
    assert run_command(["notebooks", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [INFER_NOTEBOOK, TRAIN_NOTEBOOK]
    assert (out / INFER_NOTEBOOK).read_bytes() == (KAGGLE_DIR / INFER_NOTEBOOK).read_bytes()
    assert run_command(["notebooks", "--check", "--out", str(out)]) == 0
    (out / TRAIN_NOTEBOOK).write_text((out / TRAIN_NOTEBOOK).read_text().replace("lora.r=16", "lora.r=17"))
    assert run_command(["notebooks", "--check", "--out", str(out)]) == 1
    assert "train_notebook.ipynb: differs from the generator" in capsys.readouterr().out
    assert check_notebooks(KAGGLE_DIR) == []
    # without a config the train notebook has no default overrides
    write_notebooks(tmp_path / "bare", train_config=None)
    assert (
        notebook_parameters(nbformat.read(tmp_path / "bare" / TRAIN_NOTEBOOK, as_version=4))["OVERRIDES"]
        == []
    )


# ----------------------------------------------------------------------------- fake /kaggle trees
# One bundle for every tree: two tiny runs on two tiny bases of different configs, each base mounted
# as Kaggle Models does (.../<variation>/1: the same last folder), trained here for a few steps; the
# bases they were trained on are deleted once bundled, so inference must find models/base/<identity>/.
# A third run (a training notebook's output, outside the bundle) has its base only in a models mount.


@pytest.fixture(scope="module")
def bundle_src(tmp_path_factory, tiny_gemma2_dir):
    from arena_core.data.synthetic import make_demo_competition
    from arena_core.models.backbones import make_tiny_gemma2
    from arena_core.training.trainer import train

    root = tmp_path_factory.mktemp("bundle-src")
    comp = make_demo_competition(root / "competition", n_train=48, n_test=24, seed=5)
    (comp / "test_labels.parquet").unlink()  # a real competition folder has no test labels
    base_a = root / "models" / "tiny-a" / "1"
    shutil.copytree(tiny_gemma2_dir, base_a)
    base_b = make_tiny_gemma2(root / "models" / "tiny-b" / "1", vocab_size=600, seed=1)
    for name, base in (("tiny-a", base_a), ("tiny-b", base_b)):
        cfg = load_config(TINY_CONFIG, [f"model.path={base}", *TINY, "train.max_steps=3", "train.fold=-1"])
        train(cfg, comp / "train.parquet", root / name)
    shutil.copytree(root / "tiny-a", root / "tiny-c")  # its base will live only in a models mount
    wheelhouse = root / "wheelhouse"
    build_arena_core_wheel(wheelhouse)
    fake_wheel(wheelhouse, BNB)
    req = root / "requirements-offline.txt"
    req.write_text("bitsandbytes==0.46.1  # stand-in\n", encoding="utf-8")
    report = build_bundle(
        root / "bundle",
        [root / "tiny-a", root / "tiny-b"],
        include_base=[base_a, base_b],
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        requirements=req,
        dataset_id="jdoe/arena-core-bundle",
        title="Arena Core Notebook Test",
        download=False,
        wheel_dir=wheelhouse,
    )
    assert len(report.bases) == 2  # two bases that would both have been "1"
    shutil.rmtree(root / "models")  # the bases the runs were trained on are gone
    return {
        "competition": comp,
        "bundle": report.out_dir,
        "run_c": root / "tiny-c",
        "base_a": tiny_gemma2_dir,
    }


def mount_tree(root: Path, src: dict, layout: str) -> dict:
    """``root/kaggle/{input,working}`` in the old (``input/<slug>``) or new layout."""
    inputs, working = root / "kaggle" / "input", root / "kaggle" / "working"
    working.mkdir(parents=True)
    if layout == "old":
        comp, bundle = inputs / COMPETITION, inputs / "arena-core-bundle"
    else:
        comp, bundle = (
            inputs / "competitions" / COMPETITION,
            inputs / "datasets" / "jdoe" / "arena-core-bundle",
        )
        shutil.copytree(
            src["base_a"], inputs / "models" / "google" / "tiny-gemma" / "transformers" / "tiny-a" / "1"
        )
        shutil.copytree(src["run_c"], inputs / "notebooks" / "jdoe" / "arena-core-train" / "tiny-c")
    shutil.copytree(src["competition"], comp)
    shutil.copytree(src["bundle"], bundle)
    return {"input": inputs, "working": working, "competition": comp, "bundle": bundle}


@pytest.fixture(scope="module")
def guard(tmp_path_factory):
    return netguard_dir(tmp_path_factory.mktemp("netguard"))


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory, guard):
    """A kernel spec for THIS interpreter (not whatever 'python3' the machine has), arena_core importable,
    network off (only loopback: the kernel's own channels)."""
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path_factory.mktemp("jupyter") / "kernels"
    spec = kernels / KERNEL
    spec.mkdir(parents=True)
    pythonpath = os.pathsep.join(p for p in (str(guard), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": pythonpath, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env.update(TRANSFORMERS_OFFLINE="1", PIP_NO_INDEX="1", OMP_NUM_THREADS="1")
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "arena_core tests",
                "language": "python",
                "env": env,
            }
        )
    )
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def execute(nb, cwd: Path, kernel_specs, timeout: int = 600):
    """Run every cell in a fresh kernel (cwd ``cwd``); returns the notebook with outputs and all stream text."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    NotebookClient(
        nb, km=km, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    text = "\n".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )
    return nb, text


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["old", "new"])
def test_infer_notebook_writes_a_valid_submission_in_either_layout(
    bundle_src, kernel_specs, tmp_path, layout
):
    """The committed notebook, nothing but INPUT_ROOT pointed at a fake tree: discovery finds the rest."""
    k = mount_tree(tmp_path, bundle_src, layout)
    out = k["working"] / "submission.csv"
    runs = {"old": [], "new": ["tiny-a", "tiny-b", "tiny-c"]}[layout]  # [] = every run in the bundle
    params = {"INPUT_ROOT": k["input"], "RUNS": runs, "TIME_BUDGET": "10m", "OUT": out, "HIDDEN_ROWS": 25000}
    nb, text = execute(inject_parameters(read_committed(INFER_NOTEBOOK), params), k["working"], kernel_specs)
    test_ids = pd.read_parquet(k["competition"] / "test.parquet")["id"]
    validate_submission(out, test_ids, fmt="wsdm")
    assert f"competition {k['competition']}" in text and f"bundle      {k['bundle']}" in text
    assert "arena_core 0.1.0 from" in text and "stack: python " in text
    assert "[tiny-a] same versions as training" in text  # drift from each bundled run's manifest
    assert "[tiny-a] loaded on cpu" in text and "[tiny-b] loaded on cpu" in text  # two bases, one bundle
    if layout == "new":  # a training output whose base is only the attached Kaggle Model
        assert "[tiny-c] loaded on cpu" in text and "--base-dir" in text
    assert "projection for 25000 rows: " in text
    assert f"{out}: {len(test_ids)} rows" in text
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_failure_policy_fail_or_submit_the_safety_net(bundle_src, tmp_path, capsys):
    """A run whose weights are broken: predict exits 1 after writing the length-heuristic file."""
    from arena_core.cli import main
    from arena_core.kaggle.mounts import discover
    from arena_core.kaggle.steps import infer_argv, run_predict

    k = mount_tree(tmp_path, bundle_src, "new")
    weights = k["bundle"] / "models" / "tiny-a" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(b"\0" * 64)
    out = k["working"] / "submission.csv"
    argv = infer_argv(discover(k["input"]), ["tiny-a"], time_budget="10m", out=out)
    with pytest.raises(
        RuntimeError, match=r"arena predict exited with 1: .*ON_MODEL_FAILURE='fallback' would"
    ):
        run_predict(main, argv, "fail", out)
    assert run_predict(main, argv, "fallback", out) == 1
    printed = capsys.readouterr()
    assert "WARNING: THE MODELS FAILED" in printed.out and "LENGTH-HEURISTIC SAFETY NET" in printed.err
    validate_submission(out, pd.read_parquet(k["competition"] / "test.parquet")["id"], fmt="wsdm")
    with pytest.raises(ValueError, match=r"ON_MODEL_FAILURE='skip': choose one of \('fail', 'fallback'\)"):
        run_predict(main, argv, "skip", out)
    # no test file: exit 2, no valid submission to fall back on: always an error
    bad = [*argv[:2], str(tmp_path), *argv[3:]]
    with pytest.raises(RuntimeError, match=r"arena predict exited with 2"):
        run_predict(main, bad, "fallback", tmp_path / "none.csv")


def notebook_script(nb, params: dict, upto: str | None = None) -> str:
    """The notebook's code cells (parameters injected) as one script, as a bare ``python`` would run them."""
    injected = inject_parameters(nb, params)
    code = []
    for c in injected.cells:
        if c.cell_type == "code":
            code.append(c.source)
            if c.get("id") == upto:
                break
    return "\n\n".join(code) + "\n"


@pytest.mark.slow
def test_install_and_predict_in_an_inconsistent_image_without_resolving(
    bundle_src, guard, tmp_path, kaggle_image_python
):
    """The committed notebook run by a stand-in image's Python (network off): its metadata is
    inconsistent (an installed package declares a requirement the image cannot meet, like torch's
    setuptools>=77 pin did), so re-resolving arena_core's tree fails; the install cell never resolves
    and keeps the image's newer bitsandbytes (the real one this interpreter has, >= what transformers
    asks) over the bundle's 0.46.1; the two-base bundle then predicts an ensemble."""
    import importlib.metadata as md

    k = mount_tree(tmp_path / "tree", bundle_src, "new")
    layer = tmp_path / "image-layer"
    fake_dist_info(layer, "tqdm", md.version("tqdm"), ("setuptools>=999",))
    py = str(add_image_layer(kaggle_image_python, layer))
    env = offline_env(guard)
    run = {"capture_output": True, "text": True, "cwd": tmp_path, "env": env, "timeout": 600}

    wheels = k["bundle"] / "wheels"
    fake_wheel(wheels, "carried_extra-1.0.0-py3-none-any.whl")  # a carried wheel the image lacks
    resolve = subprocess.run(
        [py, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "arena_core"], **run
    )
    assert (
        resolve.returncode != 0 and "setuptools>=999" in resolve.stdout + resolve.stderr
    )  # what used to happen
    assert subprocess.run([py, "-c", "import arena_core"], **run).returncode != 0  # not in the image

    out = k["working"] / "submission.csv"
    params = {
        "INPUT_ROOT": k["input"],
        "RUNS": ["tiny-a", "tiny-b"],
        "WEIGHTS": [0.6, 0.4],
        "TIME_BUDGET": "10m",
    }
    script = tmp_path / "infer.py"
    script.write_text(
        notebook_script(read_committed(INFER_NOTEBOOK), {**params, "OUT": out, "HIDDEN_ROWS": 0})
    )
    done = subprocess.run([py, str(script)], **run)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-5000:]
    assert f"bitsandbytes: keep the image's {md.version('bitsandbytes')}" in text
    assert "carried-extra: install the carried 1.0.0 (not in the image)" in text
    assert "required by transformers" in text
    assert "[tiny-a] loaded on cpu" in text and "[tiny-b] loaded on cpu" in text
    validate_submission(out, pd.read_parquet(k["competition"] / "test.parquet")["id"], fmt="wsdm")
    probe = subprocess.run(
        [
            py,
            "-c",
            "import arena_core, importlib.metadata as m; print(arena_core.__file__, m.version('bitsandbytes'), m.version('carried_extra'))",
        ],
        **run,
    )
    where, bnb, extra = probe.stdout.split()
    assert extra == "1.0.0"  # installed with --no-deps into the image
    assert (
        Path(where).resolve().is_relative_to(kaggle_image_python.parent.parent.resolve())
    )  # the bundle's wheel
    assert bnb == md.version("bitsandbytes")  # the image's own, untouched
    # no bundle attached: the install cell says where it looked and what is there
    bad = tmp_path / "bad.py"
    bad.write_text(
        notebook_script(
            read_committed(INFER_NOTEBOOK),
            {"INPUT_ROOT": tmp_path / "no-input", "INSTALL": "always"},
            upto="install",
        )
    )
    missing = subprocess.run([py, str(bad)], **run)
    assert missing.returncode != 0 and "no arena_core wheel under" in missing.stderr


@pytest.mark.slow
def test_train_notebook_stops_before_its_cap_and_the_next_session_resumes(bundle_src, kernel_specs, tmp_path):
    """Session 1 stops at the time cap with a checkpoint; session 2 attaches that output (read-only,
    as Kaggle mounts it) and continues from it. GPUS='auto' on a machine without GPU: one process."""
    params = {
        "CONFIG": TINY_CONFIG,
        "OVERRIDES": [*TINY, "train.max_steps=40", "train.eval_steps=1000", "train.fold=-1"],
        "MAX_TIME": "30s",  # under the callback's 60 s minimum margin: stop after the first step
    }
    one = mount_tree(tmp_path / "s1", bundle_src, "new")
    run1 = one["working"] / "gemma2-tiny"
    nb = inject_parameters(
        read_committed(TRAIN_NOTEBOOK), {**params, "INPUT_ROOT": one["input"], "OUT_DIR": run1}
    )
    _, text = execute(nb, one["working"], kernel_specs)
    assert "no GPU: CPU; running: -m arena_core.cli train" in text
    assert "train.max_time: stopping at step 1" in text
    first = json.loads((run1 / "manifest.json").read_text())["metrics"]
    assert first["global_step"] == 1 and first["stopped_by"] == "max_time"
    assert (run1 / "adapter" / "adapter_model.safetensors").is_file()  # a usable run directory already
    assert (run1 / "checkpoints" / "checkpoint-1").is_dir()

    two = mount_tree(tmp_path / "s2", bundle_src, "new")
    attached = two["input"] / "notebooks" / "jdoe" / "arena-core-train" / "gemma2-tiny"
    shutil.copytree(run1, attached)
    for p in [attached, *attached.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    run2 = two["working"] / "gemma2-tiny"
    nb = inject_parameters(
        read_committed(TRAIN_NOTEBOOK),
        {**params, "INPUT_ROOT": two["input"], "OUT_DIR": run2, "RESUME_FROM": "gemma2-tiny"},
    )
    _, text = execute(nb, two["working"], kernel_specs)
    assert "resuming from " in text and "checkpoint-1" in text
    second = json.loads((run2 / "manifest.json").read_text())["metrics"]
    assert second["global_step"] == 2 and second["stopped_by"] == "max_time"  # went on from step 1
    steps = [json.loads(line)["step"] for line in (run2 / "train_log.jsonl").read_text().splitlines()]
    assert 1 in steps and 2 in steps  # the loss curve continues across sessions
    for p in [attached, *attached.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
