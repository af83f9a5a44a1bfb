"""The offline Kaggle bundle: real wheel build, real layout, real offline install, and one test
per stop that must happen before anything is uploaded (wheel tags and metadata validation on
their own: test_wheels.py, test_kaggle_meta.py).

No network: wheels come from ``wheel_dir`` (the arena_core wheel is built once per session), and
uploads go through a fake runner.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_wheels import BNB, fake_wheel

from arena_core import __version__
from arena_core.kaggle.bases import base_identity
from arena_core.kaggle.bundle import build_bundle
from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.listing import verify_bundle
from arena_core.kaggle.metadata import check_metadata
from arena_core.kaggle.upload import find_kaggle_credentials, upload_bundle
from arena_core.kaggle.wheels import build_arena_core_wheel, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
DATASET_ID = "jdoe/arena-core-bundle"
TITLE = "Arena Core Test Bundle"


# ----------------------------------------------------------------------------- helpers
def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return path


def write_safetensors(path: Path, n_floats: int = 4) -> Path:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}}
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * (4 * n_floats))
    return path


def make_base(root: Path, name: str = "tiny-base") -> Path:
    base = root / name
    write_json(base / "config.json", {"model_type": "gemma2", "hidden_size": 8, "_name_or_path": name})
    write_safetensors(base / "model.safetensors", 16)
    write_json(base / "tokenizer_config.json", {"model_max_length": 128})
    return base


def config_sha(base: Path) -> str:
    return hashlib.sha256((base / "config.json").read_bytes()).hexdigest()


def make_run(
    root: Path,
    name: str = "run-a",
    *,
    base: Path | None = None,
    sha: str | None = "auto",
    bmnp: str | None = None,
    extra_adapter_keys: dict | None = None,
) -> Path:
    """A run directory as the training module writes it (manifest, config, adapter, tokenizer)."""
    run = root / name
    base_name = base.name if base else "tiny-base"
    sha = (config_sha(base) if base else "0" * 64) if sha == "auto" else sha
    write_json(
        run / "manifest.json",
        {
            "format": "arena_core.run/1",
            "base_model": {"name": base_name, "path": f"/models/{base_name}", "config_sha256": sha},
            "versions": {"python": "3.10.14", "torch": "2.5.1", "transformers": "4.47.0", "peft": "0.14.0"},
            "config": {"model": {"path": f"/models/{base_name}"}},
            "metrics": {"log_loss": 0.98, "accuracy": 0.55},
        },
    )
    (run / "config.yaml").write_text("model:\n  path: /models/tiny-base\n", encoding="utf-8")
    write_json(
        run / "adapter" / "adapter_config.json",
        {
            "base_model_name_or_path": bmnp if bmnp is not None else f"/models/{base_name}",
            "peft_type": "LORA",
            "task_type": "SEQ_CLS",
            "r": 4,
            "lora_alpha": 8,
            "target_modules": ["q_proj", "v_proj"],
            **(extra_adapter_keys or {}),
        },
    )
    write_safetensors(run / "adapter" / "adapter_model.safetensors")
    write_json(run / "tokenizer" / "tokenizer_config.json", {"model_max_length": 128})
    write_json(run / "tokenizer" / "tokenizer.json", {"version": "1.0", "model": {"type": "BPE"}})
    (run / "checkpoint-10").mkdir()  # trainer leftovers: must stay behind
    write_safetensors(run / "checkpoint-10" / "optimizer.safetensors")
    return run


def bundle_kwargs(wheels: Path, req: Path, **over):
    kw = dict(
        python="3.10",
        requirements=req,
        dataset_id=DATASET_ID,
        title=TITLE,
        license_name="apache-2.0",
        download=False,
        wheel_dir=wheels,
    )
    kw.update(over)
    return kw


def no_partials(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".partial")]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def arena_wheel(tmp_path_factory) -> Path:
    return build_arena_core_wheel(tmp_path_factory.mktemp("arena_wheel"))


@pytest.fixture
def wheels(tmp_path, arena_wheel) -> Path:
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    (folder / arena_wheel.name).write_bytes(arena_wheel.read_bytes())
    fake_wheel(folder, BNB)
    return folder


@pytest.fixture
def req(tmp_path) -> Path:
    path = tmp_path / "requirements-offline.txt"
    path.write_text("# test pins\nbitsandbytes==0.46.1  # 4-bit loading\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, arena_wheel):
    """One real bundle (adapter run + its base) shared by the layout and install tests."""
    root = tmp_path_factory.mktemp("built")
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / arena_wheel.name).write_bytes(arena_wheel.read_bytes())
    fake_wheel(wheelhouse, BNB)
    req = root / "req.txt"
    req.write_text("bitsandbytes==0.46.1\n", encoding="utf-8")
    base = make_base(root)
    run = make_run(root, "gemma-fold0", base=base, extra_adapter_keys={"lora_bias": False})
    report = build_bundle(root / "bundle", [run], include_base=base, **bundle_kwargs(wheelhouse, req))
    return report, run, base


# ----------------------------------------------------------------------------- the wheel
def test_arena_core_wheel_is_pure_python_with_console_script(arena_wheel):
    tags = parse_wheel_filename(arena_wheel)
    assert (tags.name, tags.version, tags.tag_string) == ("arena-core", __version__, "py3-none-any")
    with zipfile.ZipFile(arena_wheel) as z:
        names = z.namelist()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "arena_core/kaggle/bundle.py" in names and "arena_core/__init__.py" in names
    assert re.search(r"^arena\s*=\s*arena_core\.cli:main", entry_points, re.M)


# ----------------------------------------------------------------------------- layout
def test_bundle_layout_listing_and_metadata(built):
    report, run, base = built
    out = report.out_dir
    assert sorted(p.name for p in (out / "wheels").iterdir()) == sorted(
        [f"arena_core-{__version__}-py3-none-any.whl", BNB]
    )
    model = out / "models" / "gemma-fold0"
    for rel in (
        "manifest.json",
        "config.yaml",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
    ):
        assert (model / rel).is_file(), rel
    assert not (model / "checkpoint-10").exists()
    assert any("checkpoint-10" in n for n in report.notes)
    # the base lands in models/base/<identity>/ and the bundled manifest names that folder, which is
    # where arena_core.models.runs.load_run looks (the source run keeps its own manifest)
    identity = base_identity(base).name
    assert report.bases == [identity] and re.fullmatch(r"gemma2-[0-9a-f]{12}", identity)
    assert (out / "models" / "base" / identity / "config.json").read_bytes() == (
        base / "config.json"
    ).read_bytes()
    bundled = json.loads((model / "manifest.json").read_text())["base_model"]
    assert bundled["name"] == identity and bundled["trained_name"] == "tiny-base"
    assert json.loads((run / "manifest.json").read_text())["base_model"]["name"] == "tiny-base"
    # the carried adapter config is readable by peft 0.14; the source run is untouched
    assert "lora_bias" not in json.loads((model / "adapter" / "adapter_config.json").read_text())
    assert "lora_bias" in json.loads((run / "adapter" / "adapter_config.json").read_text())

    meta = json.loads((out / "dataset-metadata.json").read_text())
    assert (
        meta["id"] == DATASET_ID and meta["title"] == TITLE and meta["licenses"] == [{"name": "apache-2.0"}]
    )
    assert check_metadata(out / "dataset-metadata.json").metadata["id"] == DATASET_ID

    text = (out / "BUNDLE.md").read_text()
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "BUNDLE.md")
    assert len(files) == len(report.files) >= 10
    for f in files:
        rel = f.relative_to(out).as_posix()
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        assert f"| `{rel}` | {f.stat().st_size:,} |" in text and sha in text, rel
    assert "pip install --no-index --no-deps /kaggle/input/arena-core-bundle/wheels/*.whl" in text
    assert verify_bundle(out)["python"] == "3.10"
    assert no_partials(out.parent)


def test_verify_bundle_catches_changed_and_unlisted_files(built, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built[0].out_dir, copy)
    (copy / "models" / "gemma-fold0" / "config.yaml").write_text("model:\n  path: /elsewhere\n")
    (copy / "stray.txt").write_text("x")
    with pytest.raises(BundleError) as err:
        verify_bundle(copy)
    assert "stray.txt: in the folder but not listed" in str(err.value)
    assert "config.yaml" in str(err.value)


# ----------------------------------------------------------------------------- offline install
@pytest.mark.slow
def test_bundle_wheel_installs_offline_in_a_fresh_venv(built, tmp_path, kaggle_image_python):
    """The Kaggle flow: a Python that already has torch/transformers (the test environment's
    packages stand in for the Kaggle image) installs arena_core from the bundle with --no-index."""
    out = built[0].out_dir
    py = kaggle_image_python
    venv = py.parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    pip = [str(py), "-m", "pip", "install", "--no-index", "--find-links", str(out / "wheels")]
    # the wheel itself, even where the host already has arena_core (e.g. an editable dev install)
    install = subprocess.run(
        [*pip, "--no-deps", "--ignore-installed", "arena_core"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    # its dependencies resolve offline from what the "image" already has
    resolve = subprocess.run([*pip, "arena_core"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert resolve.returncode == 0, resolve.stdout + resolve.stderr
    probe = subprocess.run(
        [str(py), "-c", "import arena_core, sys; print(arena_core.__version__); print(arena_core.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert probe.returncode == 0, probe.stderr
    version, where = probe.stdout.split()
    assert version == __version__
    assert Path(where).resolve().is_relative_to(venv.resolve())  # the wheel's copy, not the source tree
    arena = venv / "bin" / "arena"
    assert arena.is_file()
    if (ROOT / "arena_core" / "cli.py").is_file():  # the console script's target module exists
        helped = subprocess.run([str(arena), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert helped.returncode == 0, helped.stderr
        assert "usage: arena" in helped.stdout


# ----------------------------------------------------------------------------- stops before upload
def test_missing_run_directory_is_named(tmp_path, wheels, req):
    out = tmp_path / "out"
    with pytest.raises(BundleError, match=r"run directory not found: .*no-such-run"):
        build_bundle(out, [tmp_path / "no-such-run"], **bundle_kwargs(wheels, req))
    assert not out.exists() and no_partials(tmp_path)


def test_run_without_manifest(tmp_path, wheels, req):
    run = make_run(tmp_path)
    (run / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"run-a: manifest.json is missing"):
        build_bundle(tmp_path / "out", [run], **bundle_kwargs(wheels, req))


def test_run_without_weights_or_tokenizer(tmp_path, wheels, req):
    run = make_run(tmp_path)
    (run / "adapter" / "adapter_model.safetensors").unlink()
    import shutil

    shutil.rmtree(run / "tokenizer")
    with pytest.raises(BundleError) as err:
        build_bundle(tmp_path / "out", [run], **bundle_kwargs(wheels, req))
    assert "holds no weights" in str(err.value) and "tokenizer/ is missing" in str(err.value)


def test_truncated_safetensors_is_refused(tmp_path, wheels, req):
    run = make_run(tmp_path)
    weights = run / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-3])
    with pytest.raises(BundleError, match=r"adapter_model.safetensors: truncated"):
        build_bundle(tmp_path / "out", [run], **bundle_kwargs(wheels, req))


def test_adapter_trained_on_another_base_by_config_hash(tmp_path, wheels, req):
    base = make_base(tmp_path)
    run = make_run(tmp_path, base=base, sha="f" * 64)
    with pytest.raises(
        BundleError, match=r"run 'run-a': adapter was trained on base .* a different base model"
    ):
        build_bundle(tmp_path / "out", [run], include_base=base, **bundle_kwargs(wheels, req))


def test_adapter_trained_on_another_base_by_name(tmp_path, wheels, req):
    base = make_base(tmp_path)
    run = make_run(tmp_path, base=base, sha=None, bmnp="google/gemma-2-9b-it")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["base_model"] = {
        "name": "gemma-2-9b-it",
        "path": "/kaggle/input/gemma-2/transformers/gemma-2-9b-it/2",
    }
    write_json(run / "manifest.json", manifest)
    with pytest.raises(
        BundleError, match=r"base_model_name_or_path='google/gemma-2-9b-it' .* differs from the bundled base"
    ):
        build_bundle(tmp_path / "out", [run], include_base=base, **bundle_kwargs(wheels, req))


def test_adapter_matching_base_by_name_when_no_hash(tmp_path, wheels, req):
    base = make_base(tmp_path / "kaggle" / "gemma" / "tiny-base", name="3")  # Kaggle-style versioned dir
    run = make_run(tmp_path, base=None, sha=None, bmnp="/kaggle/input/gemma/tiny-base/2")
    report = build_bundle(tmp_path / "out", [run], include_base=base, **bundle_kwargs(wheels, req))
    assert report.base == base_identity(base).name  # named by identity, not by the version folder "3"


def test_two_bases_mounted_as_version_folders_are_bundled_by_identity(tmp_path, wheels, req):
    """Kaggle Models mount as .../<variation>/2: two bases used to collide as models/base/2/."""
    big = make_base(tmp_path / "input" / "gemma-2-9b-it", name="2")
    small = make_base(tmp_path / "input" / "gemma-2-2b-it", name="2")
    (small / "config.json").write_text(
        json.dumps({"model_type": "gemma2", "hidden_size": 4})
    )  # another config
    run_big = make_run(tmp_path, "g9b-fold0", base=big)
    run_small = make_run(tmp_path, "g2b-fold0", base=small)
    report = build_bundle(
        tmp_path / "out", [run_big, run_small], include_base=[big, small], **bundle_kwargs(wheels, req)
    )
    names = {base_identity(big).name: big, base_identity(small).name: small}
    assert sorted(report.bases) == sorted(names) and len(names) == 2
    out = report.out_dir
    for run, base in ((run_big, big), (run_small, small)):
        bundled = json.loads((out / "models" / run.name / "manifest.json").read_text())["base_model"]
        assert names[bundled["name"]] == base and bundled["trained_name"] == "2"
        assert (out / "models" / "base" / bundled["name"] / "config.json").read_bytes() == (
            base / "config.json"
        ).read_bytes()
    header = json.loads(
        re.search(r"<!-- arena_core-bundle (\{.*?\}) -->", (out / "BUNDLE.md").read_text())[1]
    )
    assert header["bases"] == {
        base_identity(big).name: ["g9b-fold0"],
        base_identity(small).name: ["g2b-fold0"],
    }
    assert verify_bundle(out)["python"] == "3.10"


def test_sibling_bases_with_one_config_are_told_apart_by_weights(tmp_path, wheels, req):
    base = make_base(tmp_path / "gemma-2-2b", name="1")
    tuned = make_base(tmp_path / "gemma-2-2b-it", name="1")
    write_safetensors(tuned / "model.safetensors", 32)  # same config.json, other weights
    assert base_identity(base).config_sha256 == base_identity(tuned).config_sha256
    assert base_identity(base).name != base_identity(tuned).name
    run = make_run(tmp_path, base=tuned)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["base_model"]["path"] = str(tuned.resolve())  # what training records
    write_json(run / "manifest.json", manifest)
    report = build_bundle(tmp_path / "out", [run], include_base=[base, tuned], **bundle_kwargs(wheels, req))
    assert (
        json.loads((report.out_dir / "models" / "run-a" / "manifest.json").read_text())["base_model"]["name"]
        == base_identity(tuned).name
    )
    assert any("is used by no run" in n for n in report.notes)


def test_bases_that_fit_no_run_or_repeat_are_refused(tmp_path, wheels, req):
    base = make_base(tmp_path / "a", name="2")
    other = make_base(tmp_path / "b", name="2")
    (other / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4}))
    run = make_run(tmp_path, base=base)
    with pytest.raises(BundleError, match=r"the same checkpoint as"):
        build_bundle(tmp_path / "o1", [run], include_base=[base, base], **bundle_kwargs(wheels, req))
    with pytest.raises(
        BundleError, match=r"run 'run-a': adapter was trained on base .* a different base model"
    ):
        build_bundle(tmp_path / "o2", [run], include_base=[other], **bundle_kwargs(wheels, req))
    old = make_run(tmp_path, "old-run", base=base, sha=None)  # a manifest without the hash
    with pytest.raises(BundleError, match=r"run 'old-run': its manifest records no base config.json sha256"):
        build_bundle(tmp_path / "o3", [old], include_base=[base, other], **bundle_kwargs(wheels, req))


def _run_logits(run_dir):
    """Logits of a loaded run on a few fixed rows (and the base directory it was loaded on)."""
    import pandas as pd
    import torch

    from arena_core.encoding.batching import collate
    from arena_core.encoding.encoder import PairEncoder
    from arena_core.models.runs import load_run

    run = load_run(run_dir, quiet=True)
    frame = pd.DataFrame(
        {"id": [1, 2], "prompt": ["q", "which"], "response_a": ["a", "b c"], "response_b": ["d", "e"]}
    )
    enc = PairEncoder(run.tokenizer, run.config.encoding).encode_frame(frame)
    with torch.inference_mode():
        logits = run.model(**collate(enc.input_ids, run.tokenizer.pad_token_id, "right")).logits
    return logits, Path(run.config.model.path)


def test_adapter_on_a_base_with_the_same_config_but_other_weights(tmp_path, wheels, req, tiny_run):
    from arena_core.models.backbones import make_tiny_gemma2

    run, base = tiny_run
    other = make_tiny_gemma2(tmp_path / "other" / base.name, seed=1)  # same config.json
    with pytest.raises(BundleError) as err:
        build_bundle(tmp_path / "out", [run], include_base=other, **bundle_kwargs(wheels, req))
    msg = str(err.value)
    assert "weights" in msg and str(other) in msg and str(base.resolve()) in msg
    assert not (tmp_path / "out").exists()


def test_a_bundle_predicts_with_its_own_base_never_the_training_one(tmp_path, wheels, req, tiny_run):
    import shutil

    import torch
    from test_runs import copy_run

    from arena_core.models.backbones import make_tiny_gemma2

    run, base = copy_run(tiny_run, tmp_path / "trained")
    expected, used = _run_logits(run)
    assert used == base
    build_bundle(tmp_path / "bundle", [run], include_base=base, **bundle_kwargs(wheels, req))
    bundled_run, bundled_base = (
        tmp_path / "bundle" / "models" / "run",
        tmp_path / "bundle" / "models" / "base" / base_identity(base).name,
    )

    # The training-time base still exists but now holds other weights (same config.json): a
    # local test of the bundle must not notice, as on Kaggle it uses the base the bundle carries.
    other = make_tiny_gemma2(tmp_path / "other" / base.name, seed=1)
    shutil.copy2(other / "model.safetensors", base / "model.safetensors")
    got, used = _run_logits(bundled_run)
    assert used == bundled_base and torch.equal(got, expected)

    shutil.rmtree(base)  # and without the training-time base at all
    got, used = _run_logits(bundled_run)
    assert used == bundled_base and torch.equal(got, expected)


def test_wheel_for_another_python_is_refused(tmp_path, wheels, req):
    fake_wheel(wheels, "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl")
    run = make_run(tmp_path)
    with pytest.raises(BundleError, match=r"torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl: built for cp311"):
        build_bundle(tmp_path / "out", [run], **bundle_kwargs(wheels, req))
    assert not (tmp_path / "out").exists() and no_partials(tmp_path)
    # the same wheels are fine for a 3.11 image
    report = build_bundle(tmp_path / "out311", [run], **bundle_kwargs(wheels, req, python="3.11"))
    assert "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl" in report.wheels


def test_pinned_wheel_missing_without_download(tmp_path, wheels, req):
    (wheels / BNB).unlink()
    with pytest.raises(BundleError, match=r"no wheel for bitsandbytes==0.46.1"):
        build_bundle(tmp_path / "out", [make_run(tmp_path)], **bundle_kwargs(wheels, req))


def test_stale_arena_core_wheel_is_refused(tmp_path, req):
    folder = tmp_path / "w"
    fake_wheel(folder, "arena_core-0.0.1-py3-none-any.whl")
    fake_wheel(folder, BNB)
    with pytest.raises(BundleError, match=r"stale arena_core wheel"):
        build_bundle(tmp_path / "out", [make_run(tmp_path)], **bundle_kwargs(folder, req))


@pytest.mark.parametrize(
    ("dataset_id", "message"),
    [
        ("user/slug", r"'user/slug' is a placeholder"),
        ("YOUR_USERNAME/arena-core-bundle", r"is a placeholder"),
        ("arena-core-bundle", r"Dataset must be specified in the form"),
    ],
)
def test_placeholder_or_malformed_id_stops_before_anything_is_written(
    tmp_path, wheels, req, dataset_id, message
):
    out = tmp_path / "out"
    with pytest.raises(BundleError, match=message):
        build_bundle(out, [make_run(tmp_path)], **bundle_kwargs(wheels, req, dataset_id=dataset_id))
    assert not out.exists() and no_partials(tmp_path)


def test_default_dataset_id_is_refused(tmp_path, wheels, req):
    kw = bundle_kwargs(wheels, req)
    del kw["dataset_id"]
    with pytest.raises(BundleError, match=r"placeholder"):
        build_bundle(tmp_path / "out", [make_run(tmp_path)], **kw)


def test_invalid_licence_is_refused(tmp_path, wheels, req):
    with pytest.raises(BundleError, match=r"licence 'MIT' is not a Kaggle dataset licence name"):
        build_bundle(tmp_path / "out", [make_run(tmp_path)], **bundle_kwargs(wheels, req, license_name="MIT"))


def test_bundle_over_the_size_limit(tmp_path, wheels, req):
    out = tmp_path / "out"
    with pytest.raises(BundleError, match=r"over max_size_gb=1e-06; largest parts: wheels/arena_core"):
        build_bundle(out, [make_run(tmp_path)], **bundle_kwargs(wheels, req, max_size_gb=1e-6))
    assert not out.exists() and no_partials(tmp_path)


def test_existing_output_is_not_clobbered(tmp_path, wheels, req):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    run = make_run(tmp_path)
    with pytest.raises(BundleError, match=r"exists and is not empty"):
        build_bundle(out, [run], **bundle_kwargs(wheels, req))
    with pytest.raises(BundleError, match=r"does not look like a bundle"):
        build_bundle(out, [run], **bundle_kwargs(wheels, req, overwrite=True))
    assert (out / "precious.txt").read_text() == "keep me"


# ----------------------------------------------------------------------------- upload
@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    (tmp_path / "home" / ".config" / "kaggle").mkdir(parents=True)  # an empty config dir is no credential


class FakeKaggle:
    def __init__(self, status_rc=0, status_out="ready"):
        self.calls = []
        self.status = (status_rc, status_out)

    def __call__(self, cmd):
        self.calls.append(cmd)
        if "status" in cmd:
            return subprocess.CompletedProcess(cmd, self.status[0], self.status[1], "")
        return subprocess.CompletedProcess(cmd, 0, "Upload successful", "")


def test_upload_without_credentials_says_how_to_provide_them(built, no_credentials):
    fake = FakeKaggle()
    assert find_kaggle_credentials() is None
    with pytest.raises(
        BundleError, match=r"no Kaggle credentials found(.|\n)*KAGGLE_API_TOKEN(.|\n)*kaggle.json"
    ):
        upload_bundle(built[0].out_dir, runner=fake)
    assert fake.calls == []


def test_upload_never_happens_when_checks_fail(built, tmp_path, no_credentials, monkeypatch):
    import shutil

    monkeypatch.setenv("KAGGLE_API_TOKEN", "dummy")
    copy = tmp_path / "copy"
    shutil.copytree(built[0].out_dir, copy)
    meta = json.loads((copy / "dataset-metadata.json").read_text())
    (copy / "dataset-metadata.json").write_text(json.dumps({**meta, "id": "user/slug"}))
    fake = FakeKaggle()
    with pytest.raises(BundleError, match=r"placeholder"):
        upload_bundle(copy, runner=fake)
    assert fake.calls == []


def test_upload_creates_then_versions(built, no_credentials, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "jdoe")
    monkeypatch.setenv("KAGGLE_KEY", "dummy")
    out = built[0].out_dir
    fake = FakeKaggle(status_rc=1, status_out="404 Client Error: Not Found")
    cmd = upload_bundle(out, runner=fake)
    assert cmd[-6:] == ["datasets", "create", "-p", str(out), "--dir-mode", "zip"]
    fake = FakeKaggle(status_rc=0, status_out="ready")
    cmd = upload_bundle(out, "second version", runner=fake, hashes=False)
    assert cmd[-8:] == ["datasets", "version", "-p", str(out), "-m", "second version", "--dir-mode", "zip"]


# ----------------------------------------------------------------------------- the command
def load_command():
    spec = importlib.util.spec_from_file_location("build_dataset", ROOT / "build_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_help():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "build_dataset.py"), "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for flag in (
        "--out",
        "--run",
        "--python",
        "--dataset-id",
        "--title",
        "--license",
        "--base",
        "--max-size-gb",
        "--check",
        "--upload",
        "--no-download",
        "--wheel-dir",
        "--kernel-dir",
        "--kernel-kind",
        "--competition",
        "--machine-shape",
        "--docker-image",
        "--docker-pinning",
        "--model-source",
        "--wheels-only",
    ):
        assert flag in proc.stdout


def test_command_builds_checks_and_writes_kernel_metadata(tmp_path, wheels, req, capsys):
    cmd = load_command()
    run = make_run(tmp_path)
    out = tmp_path / "bundle"
    rc = cmd.main(
        [
            "--out",
            str(out),
            "--run",
            str(run),
            "--python",
            "3.10",
            "--dataset-id",
            DATASET_ID,
            "--title",
            TITLE,
            "--license",
            "apache-2.0",
            "--no-download",
            "--wheel-dir",
            str(wheels),
            "--requirements",
            str(req),
            "--check",
            "--kernel-dir",
            str(tmp_path / "push"),
            "--max-size-gb",
            "1",
        ]
    )
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "check ok" in printed.out
    kernel = json.loads((tmp_path / "push" / "kernel-metadata.json").read_text())
    assert kernel["id"] == "jdoe/arena-core-inference" and kernel["dataset_sources"] == [DATASET_ID]
    assert kernel["enable_internet"] is False and kernel["machine_shape"] == "NvidiaTeslaT4"
    assert kernel["competition_sources"] == ["wsdm-cup-multilingual-chatbot-arena"]

    # the training kernel for LMSYS, with the base from Kaggle Models, on an L4, pinned image
    rc = cmd.main(
        [
            "--out",
            str(out),
            "--kernel-dir",
            str(tmp_path / "train"),
            "--kernel-kind",
            "train",
            "--competition",
            "lmsys",
            "--machine-shape",
            "NvidiaL4",
            "--docker-pinning",
            "original",
            "--model-source",
            "google/gemma-2/transformers/gemma-2-2b-it/2",
        ]
    )
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    train = json.loads((tmp_path / "train" / "kernel-metadata.json").read_text())
    assert train["id"] == "jdoe/arena-core-train" and train["code_file"] == "train_notebook.ipynb"
    assert (tmp_path / "train" / "train_notebook.ipynb").is_file()
    assert train["competition_sources"] == ["lmsys-chatbot-arena"] and train["machine_shape"] == "NvidiaL4"
    assert train["model_sources"] == ["google/gemma-2/transformers/gemma-2-2b-it/2"]
    assert train["docker_image_pinning_type"] == "original" and train["enable_internet"] is False
    # a typo in the accelerator stops before anything is written
    rc = cmd.main(["--out", str(out), "--kernel-dir", str(tmp_path / "bad"), "--machine-shape", "T4x2"])
    assert rc == 2 and "not a Kaggle accelerator id" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "kernel-metadata.json").exists()


def test_command_builds_a_wheels_only_bundle_for_the_training_notebook(tmp_path, wheels, req, capsys):
    cmd = load_command()
    out = tmp_path / "bundle-wheels"
    common = ["--dataset-id", "jdoe/arena-core-wheels", "--no-download", "--wheel-dir", str(wheels)]
    rc = cmd.main(["--out", str(out), "--wheels-only", *common, "--requirements", str(req), "--check"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "check ok" in printed.out and not (out / "models").exists()
    assert sorted(p.name for p in (out / "wheels").iterdir()) == sorted(p.name for p in wheels.iterdir())
    rc = cmd.main(["--out", str(tmp_path / "b2"), "--wheels-only", "--run", str(make_run(tmp_path)), *common])
    assert rc == 2 and "--wheels-only builds a bundle without runs" in capsys.readouterr().err


def test_command_refuses_placeholder_id_and_committed_kernel_metadata(tmp_path, wheels, req, capsys):
    cmd = load_command()
    rc = cmd.main(
        [
            "--out",
            str(tmp_path / "b"),
            "--run",
            str(make_run(tmp_path)),
            "--dataset-id",
            "user/slug",
            "--no-download",
            "--wheel-dir",
            str(wheels),
            "--requirements",
            str(req),
        ]
    )
    assert rc == 2 and "placeholder" in capsys.readouterr().err
    rc = cmd.main(
        ["--out", str(tmp_path / "b"), "--kernel-metadata", str(ROOT / "kaggle" / "kernel-metadata.json")]
    )
    assert rc == 2 and "YOUR_KAGGLE_USERNAME" in capsys.readouterr().err


def test_command_io_failures_are_one_line_naming_the_path(tiny_run, tmp_path, capsys, monkeypatch):
    """Issue 19: --out an existing file, and a full disk while copying, ended in tracebacks."""
    import shutil

    run, _base = tiny_run
    command = load_command()
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    argv = [
        "--run",
        str(run),
        "--dataset-id",
        "jdoe/arena-core-bundle",
        "--no-download",
        "--requirements",
        "",
    ]
    assert command.main(["--out", str(a_file), *argv]) == 2  # a path of the wrong kind: the input
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith(f"build_dataset.py: error: {a_file}")
        and "Traceback" not in err[0]
    )

    def full_disk(src, dst, *args, **kwargs):
        raise shutil.Error([(str(src), str(dst), "[Errno 28] No space left on device")])

    monkeypatch.setattr(shutil, "copytree", full_disk)
    assert command.main(["--out", str(tmp_path / "bundle"), *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "could not copy" in err[0]


def test_a_base_newer_than_the_target_images_transformers_is_refused_before_copying(tiny_run, tmp_path):
    """Issue 19: a --python 3.10 bundle (transformers 4.47) with a Gemma-3 base passed --check and failed at predict."""
    import json as _json
    import shutil

    from arena_core.kaggle.errors import BundleError

    run, base = tiny_run
    gemma3 = tmp_path / "gemma3-like"
    shutil.copytree(base, gemma3)
    cfg = _json.loads((gemma3 / "config.json").read_text())
    (gemma3 / "config.json").write_text(_json.dumps({**cfg, "model_type": "gemma3_text"}))
    kwargs = dict(dataset_id="jdoe/arena-core-bundle", requirements=None, download=False, repo_root=ROOT)
    with pytest.raises(BundleError, match=r"gemma3_text' needs transformers >= 4\.50.*transformers 4\.47"):
        build_bundle(tmp_path / "b310", [], include_base=gemma3, python="3.10", **kwargs)
    assert not (tmp_path / "b310").exists()
    report = build_bundle(
        tmp_path / "b310", [], include_base=gemma3, python="3.10", allow_newer_arch=True, **kwargs
    )
    assert "--allow-newer-arch" in report.summary()
    build_bundle(
        tmp_path / "b311", [], include_base=gemma3, python="3.11", **kwargs
    )  # today's image knows it
