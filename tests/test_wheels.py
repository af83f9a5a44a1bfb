"""Wheels for the offline Kaggle image: tags judged against the target Python and platform,
and the requirements file read as exact pins. No network, no pip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from arena_core.kaggle.errors import BundleError
from arena_core.kaggle.wheels import (
    check_wheels,
    expand_platforms,
    parse_wheel_filename,
    read_requirements,
    wheel_mismatch,
)

ROOT = Path(__file__).resolve().parent.parent
BNB = "bitsandbytes-0.46.1-py3-none-manylinux_2_24_x86_64.whl"


def fake_wheel(folder: Path, filename: str) -> Path:
    """A structurally valid wheel (a zip with dist-info) under ``filename``."""
    folder.mkdir(parents=True, exist_ok=True)
    w = parse_wheel_filename(filename)
    dist = f"{filename.split('-')[0]}-{w.version}.dist-info"
    with zipfile.ZipFile(folder / filename, "w") as z:
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {w.name}\nVersion: {w.version}\n")
        z.writestr(f"{dist}/WHEEL", f"Wheel-Version: 1.0\nTag: {w.tag_string}\n")
    return folder / filename


# ----------------------------------------------------------------------------- wheel tags
@pytest.mark.parametrize(
    ("filename", "python", "fits"),
    [
        ("arena_core-0.1.0-py3-none-any.whl", "3.10", True),
        ("bitsandbytes-0.46.1-py3-none-manylinux_2_24_x86_64.whl", "3.10", True),
        ("torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl", "3.10", True),
        ("torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl", "3.10", False),
        ("torch-2.5.1-cp310-cp310-manylinux1_x86_64.whl", "3.11", False),
        ("cryptography-43.0.0-cp39-abi3-manylinux_2_28_x86_64.whl", "3.12", True),
        ("pkg-1.0-cp312-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "3.10", False),
        ("pkg-1.0-cp310-cp310-win_amd64.whl", "3.10", False),
        ("pkg-1.0-cp310-cp310-macosx_11_0_arm64.whl", "3.10", False),
        ("pkg-1.0-cp310-cp310-manylinux_2_39_x86_64.whl", "3.10", False),  # newer glibc than the image
        ("pkg-1.0-cp310-cp310-musllinux_1_1_x86_64.whl", "3.10", False),
        ("six-1.16.0-py2.py3-none-any.whl", "3.12", True),
    ],
)
def test_wheel_tags_against_target(filename, python, fits):
    assert (wheel_mismatch(filename, python) is None) is fits


def test_manylinux2014_alone_would_refuse_bitsandbytes():
    assert "manylinux_2_24" in wheel_mismatch(BNB, "3.10", "manylinux2014_x86_64")
    plats = expand_platforms("manylinux_2_35_x86_64")
    assert (
        plats[0] == "manylinux_2_35_x86_64"
        and "manylinux2014_x86_64" in plats
        and "manylinux1_x86_64" in plats
    )


def test_check_wheels_names_every_misfit(tmp_path):
    bad = fake_wheel(tmp_path, "torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl")
    broken = tmp_path / "numpy-2.0.0-cp310-cp310-manylinux_2_17_x86_64.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(BundleError) as err:
        check_wheels([bad, broken], "3.10")
    assert "torch-2.5.1-cp311" in str(err.value) and "cp310" in str(err.value)
    assert "not a valid zip" in str(err.value)


def test_requirements_file_pins_bitsandbytes_exactly():
    pins = dict(read_requirements(ROOT / "requirements-offline.txt"))
    assert pins["bitsandbytes"] == "0.46.1"
    for line in (ROOT / "requirements-offline.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line and "#" in line, f"pin without exact version or reason: {line}"


def test_requirements_must_be_exact_pins(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("bitsandbytes>=0.45\n")
    with pytest.raises(BundleError, match=r"r.txt:1: 'bitsandbytes>=0.45' is not an exact pin"):
        read_requirements(path)
