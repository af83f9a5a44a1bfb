"""Stand-ins for the Kaggle side of the tests: network off, an image with its own packages, mount trees.

* :func:`netguard_dir`: a folder with a ``sitecustomize.py`` that refuses every connection but
  loopback and Unix sockets (Jupyter's own ZeroMQ channels stay open): put it on ``PYTHONPATH``
  and anything that reaches for the network fails loudly.
* :func:`stand_in_image`: a fresh virtual environment that sees THIS interpreter's packages
  (torch, transformers, ...: the "image") but not arena_core, never the system Python's, plus an
  optional layer in front of them holding fake distributions (an inconsistent dependency, an old
  bitsandbytes).
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
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


def stand_in_image(root: Path, layer: Path | None = None) -> Path:
    """A fresh venv standing in for the Kaggle image; returns its python.

    As the offline-install tests do (conftest ``kaggle_image_python``): every package of THIS
    interpreter except arena_core is linked into ``root/image-site-packages``, which a ``.pth``
    file puts on the venv's path (``--system-site-packages`` would expose the base interpreter's,
    on a fresh machine only pip). ``layer`` goes in front of it, for fake distributions.
    """
    image = root / "image-site-packages"
    image.mkdir(parents=True)
    dirs = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    for site_dir in [Path(d) for d in dict.fromkeys(dirs) if Path(d).is_dir()]:
        for entry in site_dir.iterdir():
            own = "arena_core" in entry.name.lower().replace("-", "_")
            if not own and not (image / entry.name).exists():
                (image / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = ([str(layer)] if layer is not None else []) + [str(image)]
    Path(purelib, "kaggle_image.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return py


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
