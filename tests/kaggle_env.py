"""Stand-ins for the Kaggle side of the tests: network off, an image with its own packages, mount trees.

* :func:`netguard_dir`: a folder with a ``sitecustomize.py`` that refuses every connection but
  loopback and Unix sockets (Jupyter's own ZeroMQ channels stay open): put it on ``PYTHONPATH``
  and anything that reaches for the network fails loudly.
* :func:`add_image_layer`: fake distributions (an inconsistent dependency, an old bitsandbytes)
  in front of the stand-in image of conftest's ``kaggle_image_python`` (a fresh venv seeing this
  interpreter's packages but not arena_core).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_GUARD = '''\
"""Network off for this interpreter (test stand-in): only loopback and Unix sockets connect."""
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_LOCAL = ("127.0.0.1", "::1", "localhost")


def _allowed(sock, address):
    return sock.family == getattr(socket, "AF_UNIX", None) or (
        isinstance(address, tuple) and str(address[0]) in _LOCAL
    )


def connect(self, address):
    if not _allowed(self, address):
        raise OSError(f"network is off in this test: connection to {address!r} refused")
    return _connect(self, address)


def connect_ex(self, address):
    if not _allowed(self, address):
        raise OSError(f"network is off in this test: connection to {address!r} refused")
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
'''


def netguard_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_GUARD, encoding="utf-8")
    return folder


def fake_dist_info(layer: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """Metadata of an installed distribution (no code), as an image would carry it."""
    dist = layer / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        *[f"Requires-Dist: {r}" for r in requires],
    ]
    (dist / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (dist / "INSTALLER").write_text("pip\n", encoding="utf-8")
    (dist / "RECORD").write_text("", encoding="utf-8")
    return dist


def add_pth(python: Path, name: str, folder: Path) -> Path:
    """Put ``folder`` on the path of the venv of ``python`` with a ``.pth`` file named ``name``;
    the file goes in that venv's own purelib (asked of the venv, not guessed). Returns ``python``."""
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, name).write_text(f"{folder}\n", encoding="utf-8")
    return python


def add_image_layer(python: Path, layer: Path) -> Path:
    """Put ``layer`` (fake distributions) in front of the stand-in image's packages.

    ``python`` is conftest's ``kaggle_image_python``, whose ``kaggle_image.pth`` lists the image's
    packages; ``site`` reads ``.pth`` files in name order, so ``_image_layer.pth`` comes first and
    the layer's distributions shadow the image's of the same name.
    """
    return add_pth(python, "_image_layer.pth", layer)


def offline_env(guard: Path, **extra: str) -> dict:
    """Environment for a child interpreter: no pip config or index, no hub, network guard on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHONPATH"))}
    env.update(
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(guard),
    )
    env.update(extra)
    return env
