"""Shared pytest fixtures. Keep each fixture small, documented and session-scoped when it is costly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from arena_core.models.noise import KNOWN_NOISE, quiet_library_noise


def pytest_configure(config: pytest.Config) -> None:
    """The package's filters for library noise, in every test's warning context (fixtures included)."""
    quiet_library_noise()  # the logging filters, for the whole session
    for kind, where, prefix in KNOWN_NOISE:
        if kind != "log":  # pytest escapes nothing here: the message is a regex, ':' separates fields
            message = re.escape(prefix).replace(":", ".")
            config.addinivalue_line("filterwarnings", f"ignore:{message}:{kind}:{re.escape(where)}")


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Gemma-2 checkpoint (Gemma2ForCausalLM weights + fast BPE tokenizer), written once.

    Load it with ``AutoModelForSequenceClassification`` / ``arena_core.models.loading.load_classifier``;
    the ``score`` head is freshly initialised on load. Treat the directory as read-only.
    """
    from arena_core.models.backbones import make_tiny_gemma2

    return make_tiny_gemma2(tmp_path_factory.mktemp("tiny-gemma2") / "model")


def _site_dirs() -> list[Path]:
    """Where the running interpreter's installed packages live (its own, system ones, user ones)."""
    import site

    dirs = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [Path(d) for d in dict.fromkeys(dirs) if Path(d).is_dir()]


@pytest.fixture
def kaggle_image_python(tmp_path: Path) -> Path:
    """The Python of a fresh venv standing in for the Kaggle image, for the offline-install tests.

    The image has torch, transformers, peft, pip ... but not arena_core. We mirror what this test
    run really has: every package of the running interpreter, linked one by one into a folder
    outside the venv (a ``.pth`` file puts it on the venv's path), except arena_core's own files.
    ``--system-site-packages`` would instead expose the *base* interpreter's packages, which on a
    fresh machine is only pip. The folder lies outside the venv, so pip installs into the venv and
    never touches the linked packages.
    """
    import subprocess
    import sys

    from kaggle_env import add_pth

    image = tmp_path / "image-site-packages"
    image.mkdir()
    for site_dir in _site_dirs():
        for entry in site_dir.iterdir():
            own = "arena_core" in entry.name.lower().replace("-", "_")
            if not own and not (image / entry.name).exists():
                (image / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return add_pth(venv / "bin" / "python", "kaggle_image.pth", image)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_gemma2_dir: Path) -> tuple[Path, Path]:
    """``(run_dir, base_dir)``: a LoRA run trained for two steps on a copy of the tiny Gemma-2.

    A few seconds on CPU. Treat both as read-only: copy them (and point the copied manifest's
    ``base_model.path`` at the copied base) to change anything.
    """
    import shutil

    import pandas as pd

    from arena_core.config import load_config
    from arena_core.training.trainer import train

    root = tmp_path_factory.mktemp("tiny-run")
    base = root / "tiny-base"
    shutil.copytree(tiny_gemma2_dir, base)
    words = ["great clear answer", "wrong rude answer"]
    pd.DataFrame(
        {
            "id": [f"t{i}" for i in range(16)],
            "prompt": ["which is better"] * 16,
            "response_a": [words[i % 2] for i in range(16)],
            "response_b": [words[1 - i % 2] for i in range(16)],
            "winner": ["model_a" if i % 2 == 0 else "model_b" for i in range(16)],
        }
    ).to_parquet(root / "train.parquet")
    cfg = load_config(
        Path(__file__).parent.parent / "configs" / "tiny-cpu.yaml",
        [
            f"model.path={base}",
            "encoding.max_length=96",
            "encoding.min_part_tokens=8",
            "train.max_steps=2",
            "train.fold=-1",
            "lora.r=4",
        ],
    )
    train(cfg, root / "train.parquet", root / "run")
    return root / "run", base
