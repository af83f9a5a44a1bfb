"""The Kaggle notebooks: generated from code, committed clean, and REALLY executed.

A fake ``/kaggle`` tree is built in a temporary folder: ``kaggle/input/<competition>`` (the small
synthetic demo competition) and ``kaggle/input/arena-core-bundle`` (a real bundle built around a
tiny Gemma-2 run trained here for a few steps, its base bundled and the training-time copy
deleted, so inference must find ``models/base/<name>/`` as on Kaggle). The committed notebooks
run in a Jupyter kernel of this interpreter (nbclient) with their parameters injected.

The install cell's default ``INSTALL="auto"`` skips pip when arena_core is importable (here it
is); the install itself runs for real, from the bundle's wheels, in a throwaway virtual
environment (``test_install_cell_installs_offline_into_a_fresh_venv``).
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

from arena_core.cli.notebooks import register
from arena_core.config import load_config
from arena_core.data.submission import validate_submission
from arena_core.kaggle.bundle import build_bundle
from arena_core.kaggle.metadata import COMPETITION
from arena_core.kaggle.notebooks import (
    INFER_NOTEBOOK,
    TRAIN_NOTEBOOK,
    bundle_runs,
    check_notebooks,
    config_overrides,
    inject_parameters,
    make_infer_notebook,
    make_train_notebook,
    notebook_parameters,
    notebook_text,
    predict_argv,
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


def test_infer_notebook_defaults_point_at_kaggle():
    params = notebook_parameters(read_committed(INFER_NOTEBOOK))
    assert params == {
        "COMPETITION_DIR": f"/kaggle/input/{COMPETITION}",
        "BUNDLE_DIR": "/kaggle/input/arena-core-bundle",
        "RUNS": [],
        "WEIGHTS": [],
        "TTA": "swap",
        "TIME_BUDGET": "4.5h",
        "OUT": "/kaggle/working/submission.csv",
        "INSTALL": "auto",
    }
    install = cell(read_committed(INFER_NOTEBOOK), "install").source
    assert '"--no-index"' in install and '"--find-links"' in install


def test_train_notebook_defaults_are_the_t4_config():
    params = notebook_parameters(read_committed(TRAIN_NOTEBOOK))
    assert params["OUT_DIR"] == "/kaggle/working/run" and params["CONFIG"] == ""
    assert params["BASE_MODEL_DIR"].startswith("/kaggle/input/gemma-2/")
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
def make_fake_bundle(root: Path, runs=("run-b", "run-a")) -> Path:
    for r in runs:
        (root / "models" / r).mkdir(parents=True)
        (root / "models" / r / "manifest.json").write_text("{}")
    (root / "models" / "base" / "tiny").mkdir(parents=True)
    (root / "models" / "stray").mkdir()  # no manifest: not a run
    return root


def test_predict_argv(tmp_path):
    bundle = make_fake_bundle(tmp_path / "bundle")
    assert bundle_runs(bundle) == ["run-a", "run-b"]
    argv = predict_argv("/comp", bundle, out="/w/s.csv")
    assert argv == [
        "predict",
        "--data-dir",
        "/comp",
        "--model",
        str(bundle / "models" / "run-a"),
        "--model",
        str(bundle / "models" / "run-b"),
        "--tta",
        "swap",
        "--time-budget",
        "4.5h",
        "--out",
        "/w/s.csv",
    ]
    argv = predict_argv("/comp", bundle, ["run-b"], [2], tta="", time_budget=None)
    assert argv == [
        "predict",
        "--data-dir",
        "/comp",
        "--model",
        str(bundle / "models" / "run-b"),
        "--weights",
        "2.0",
        "--out",
        "submission.csv",
    ]
    with pytest.raises(
        FileNotFoundError, match=r"run\(s\) not found: .*run-c.*the bundle holds \['run-a', 'run-b'\]"
    ):
        predict_argv("/comp", bundle, ["run-c"])
    with pytest.raises(ValueError, match=r"WEIGHTS has 1 value\(s\) for 2 run\(s\)"):
        predict_argv("/comp", bundle, [], [1.0])
    with pytest.raises(FileNotFoundError, match="holds no run"):
        predict_argv("/comp", make_fake_bundle(tmp_path / "empty", runs=()))
    with pytest.raises(FileNotFoundError, match="is .* an arena_core bundle"):
        predict_argv("/comp", tmp_path / "nowhere")


def test_predict_argv_parses_with_the_predict_command(tmp_path):
    from arena_core.cli import predict as predict_cli

    parser = argparse.ArgumentParser()
    predict_cli.register(parser.add_subparsers(dest="command"))
    bundle = make_fake_bundle(tmp_path / "bundle")
    args = parser.parse_args(
        predict_argv("/comp", bundle, [], [0.25, 0.75], tta="uncertain", time_budget="1h")
    )
    assert args.model == [str(bundle / "models" / "run-a"), str(bundle / "models" / "run-b")]
    assert args.weights == [0.25, 0.75] and args.tta == "uncertain" and args.time_budget == "1h"


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


# ----------------------------------------------------------------------------- the fake /kaggle tree
@pytest.fixture(scope="module")
def kaggle_tree(tmp_path_factory, tiny_gemma2_dir):
    """``kaggle/input/{competition, arena-core-bundle}`` and ``kaggle/working``, as on Kaggle."""
    from arena_core.data.synthetic import make_demo_competition
    from arena_core.training.trainer import train

    root = tmp_path_factory.mktemp("fake-kaggle")
    inputs, working = root / "kaggle" / "input", root / "kaggle" / "working"
    working.mkdir(parents=True)
    comp = make_demo_competition(inputs / COMPETITION, n_train=48, n_test=24, seed=5)
    (comp / "test_labels.parquet").unlink()  # a real competition folder has no test labels

    scratch = root / "scratch"
    base = scratch / "tiny-gemma2"  # a copy of the session's tiny model, deleted once bundled
    shutil.copytree(tiny_gemma2_dir, base)
    cfg = load_config(TINY_CONFIG, [f"model.path={base}", *TINY, "train.max_steps=3", "train.fold=-1"])
    train(cfg, comp / "train.parquet", scratch / "tiny-run")
    wheelhouse = scratch / "wheelhouse"
    build_arena_core_wheel(wheelhouse)
    fake_wheel(wheelhouse, BNB)
    req = scratch / "requirements-offline.txt"
    req.write_text("bitsandbytes==0.46.1  # stand-in\n", encoding="utf-8")
    report = build_bundle(
        inputs / "arena-core-bundle",
        [scratch / "tiny-run"],
        include_base=base,
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        requirements=req,
        dataset_id="jdoe/arena-core-bundle",
        title="Arena Core Notebook Test",
        download=False,
        wheel_dir=wheelhouse,
    )
    shutil.rmtree(scratch)  # the base the run was trained on is gone: only the bundled copy remains
    return {
        "root": root,
        "competition": comp,
        "bundle": report.out_dir,
        "base": report.base,
        "working": working,
    }


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory):
    """A kernel spec for THIS interpreter (not whatever 'python3' the machine has), arena_core importable."""
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path_factory.mktemp("jupyter") / "kernels"
    spec = kernels / KERNEL
    spec.mkdir(parents=True)
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "arena_core tests",
                "language": "python",
                "env": {"PYTHONPATH": pythonpath, "TOKENIZERS_PARALLELISM": "false"},
            }
        )
    )
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def execute(nb, cwd: Path, kernel_specs, timeout: int = 300):
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
def test_infer_notebook_executes_and_writes_a_valid_submission(kaggle_tree, kernel_specs):
    k = kaggle_tree
    out = k["working"] / "submission.csv"
    nb = inject_parameters(
        read_committed(INFER_NOTEBOOK),
        {
            "COMPETITION_DIR": k["competition"],
            "BUNDLE_DIR": k["bundle"],
            "RUNS": ["tiny-run"],
            "WEIGHTS": [1.0],
            "TIME_BUDGET": "10m",
            "OUT": out,
        },
    )
    nb, text = execute(nb, k["working"], kernel_specs)
    test_ids = pd.read_parquet(k["competition"] / "test.parquet")["id"]
    validate_submission(out, test_ids, fmt="wsdm")
    assert len(pd.read_csv(out)) == len(test_ids)
    assert "arena_core 0.1.0 from" in text  # INSTALL="auto" found arena_core and skipped pip
    assert "[tiny-run] loaded on cpu" in text  # the model ran (from the bundled base), not only the fallback
    assert f"{out}: {len(test_ids)} rows" in text
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_train_notebook_executes_and_writes_a_run(kaggle_tree, kernel_specs):
    k = kaggle_tree
    run = k["working"] / "run"
    nb = inject_parameters(
        read_committed(TRAIN_NOTEBOOK),
        {
            "COMPETITION_DIR": k["competition"],
            "BUNDLE_DIR": k["bundle"],
            "CONFIG": TINY_CONFIG,
            "BASE_MODEL_DIR": k["bundle"] / "models" / "base" / k["base"],
            "OVERRIDES": [*TINY, "train.max_steps=2", "train.eval_steps=2"],
            "OUT_DIR": run,
        },
    )
    _, text = execute(nb, k["working"], kernel_specs)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["metrics"]["global_step"] == 2 and "accuracy" in manifest["metrics"]  # fold 0 held out
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert '"metrics"' in text and '"global_step": 2' in text


@pytest.mark.slow
def test_install_cell_installs_offline_into_a_fresh_venv(kaggle_tree, tmp_path, kaggle_image_python):
    """The install cell as committed, run by a fresh venv's Python (the test environment's packages
    stand in for the Kaggle image): arena_core and the pinned wheel come from the bundle, with --no-index."""
    nb = read_committed(INFER_NOTEBOOK)

    def script(**params) -> Path:
        injected = inject_parameters(nb, params)
        ids = ("parameters", "injected-parameters", "install")
        path = tmp_path / f"install-{len(list(tmp_path.glob('install-*')))}.py"
        path.write_text("\n\n".join(cell(injected, i).source for i in ids), encoding="utf-8")
        return path

    py = str(kaggle_image_python)
    venv = kaggle_image_python.parent.parent
    env = clean_env()
    env.pop("PYTHONPATH", None)

    def run(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [py, str(path)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
        )

    bad = run(script(BUNDLE_DIR=str(tmp_path / "no-bundle"), INSTALL="always"))
    assert bad.returncode != 0 and "no arena_core wheel in" in bad.stderr
    wrong = run(script(INSTALL="sometimes"))
    assert wrong.returncode != 0 and "INSTALL='sometimes'" in wrong.stderr

    done = run(script(BUNDLE_DIR=str(kaggle_tree["bundle"]), INSTALL="always"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    probe = subprocess.run(
        [
            py,
            "-c",
            "import arena_core, importlib.metadata as m; print(arena_core.__file__); print(m.version('bitsandbytes'))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert probe.returncode == 0, probe.stderr
    where, bnb = probe.stdout.split()
    assert Path(where).resolve().is_relative_to(venv.resolve())  # the bundle's wheel, not the source tree
    assert bnb == "0.46.1"  # the pinned wheel from the bundle
    assert f"arena_core 0.1.0 from {where}" in done.stdout
