"""The output directory of a training run: writable, one writer, and written whole.

* :func:`check_output_dir` -- ``--out`` is a directory we can write (not a file, not read-only),
  checked before any model is loaded.
* :class:`OutputLock` -- one training process per ``--out``: a lock file holding the writer's pid,
  locked with ``flock`` (the kernel drops it when the process dies, so a lock left by a dead
  process is taken over, with a message saying so).
* :func:`save_final` -- adapter/ (or merged/) and tokenizer/ are written beside the old ones and
  swapped in, so a failed write loses nothing and leaves no ``.tmp`` behind.

Every problem is a :class:`TrainError` whose one-line message names the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from arena_core.config import RunConfig
from arena_core.data.atomic_write import pid_alive

LOCK_NAME = ".arena-train.lock"


@dataclass
class TrainResult:
    """What ``arena train`` returns: the run directory it wrote and the metrics in its manifest."""

    run_dir: Path
    metrics: dict
    n_train: int
    n_eval: int
    warnings: list[str] = field(default_factory=list)  # e.g. "ends worse than chance"


class TrainError(RuntimeError):
    """Training cannot start or could not finish; the message names the file and what to do.

    ``exit_code`` follows the command line's rule: 2 (the default) when the input or the call must
    change (another --out, --resume, the same config), 1 when the run failed while writing.
    """

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------- writing
def write_text_atomic(path: Path, text: str) -> None:
    """Write via ``PATH.tmp`` + rename, so a reader never sees half a file and no .tmp is left."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output_dir(out: Path) -> None:
    """``out`` must be a directory this process can write into, or creatable as one.

    Probes with a file that is removed at once, in ``out`` or in its nearest existing parent, so a
    run that stops later for another reason (bad data) leaves no empty folder behind.
    """
    out = Path(out)
    probe = None
    try:
        if out.exists() and not out.is_dir():
            raise TrainError(f"{out}: exists and is not a directory; choose another --out")
        where = out
        while not where.exists() and where != where.parent:
            where = where.parent
        if not where.is_dir():
            raise TrainError(f"{where}: is not a directory, so {out} cannot be created; choose another --out")
        probe = where / f".arena-write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
    except OSError as exc:
        raise TrainError(
            f"{out}: cannot write the run directory there ({exc.strerror or exc})", exit_code=1
        ) from exc
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- lock
class OutputLock:
    """Exclusive ownership of ``out`` for one training process (a context manager)."""

    def __init__(self, out: Path, verbose: bool = True):
        self.path = Path(out) / LOCK_NAME
        self.verbose = verbose
        self._fd: int | None = None

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> OutputLock:
        import fcntl

        for _ in range(5):  # retry when the file was replaced between open and lock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                held = self._holder()
                who = f"pid {held.get('pid', '?')} on {held.get('host', '?')}"
                raise TrainError(
                    f"{self.path}: another training process ({who}) is writing to {self.path.parent}; "
                    "wait for it to finish or choose another --out"
                ) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:
                os.close(fd)
                continue
            held = self._holder()
            pid = held.get("pid")
            if pid and pid != os.getpid() and self.verbose:
                state = "no longer running" if not pid_alive(int(pid)) else "not holding it"
                print(f"{self.path}: taking over the lock left by pid {pid} ({state})")
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode(), 0)
            self._fd = fd
            return self
        raise TrainError(f"{self.path}: could not be locked (it keeps being replaced)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ----------------------------------------------------------------------------- final outputs
def reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def is_write_error(exc: BaseException) -> bool:
    """OSError, safetensors' error, or torch.save's 'file write failed' RuntimeError."""
    if isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError":
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in ("write", "space", "file"))


FINAL_PARTS = ("adapter", "merged", "tokenizer")


def save_final(out: Path, model, tokenizer, cfg: RunConfig, merge: bool) -> None:
    """Write adapter/ (or merged/) and tokenizer/ next to the old ones, then swap them in.

    A failed write leaves the previous outputs as they were and no ``.tmp`` folder behind.
    """
    from arena_core.models.lora import merge_adapter
    from arena_core.models.portable import make_adapter_portable, make_tokenizer_portable

    staged = {part: out / f".{part}.tmp" for part in FINAL_PARTS}
    part = None  # the output being written, for the error message
    try:
        for tmp in staged.values():
            shutil.rmtree(tmp, ignore_errors=True)
        if cfg.lora.enabled:
            part = "adapter"
            model.save_pretrained(staged[part])
            make_adapter_portable(staged[part])
            if merge:
                part = "merged"
                merge_adapter(model, cfg.model.quantization).save_pretrained(staged[part])
        else:
            part = "merged"
            model.save_pretrained(staged[part])
        part = "tokenizer"
        tokenizer.save_pretrained(staged[part])
        make_tokenizer_portable(staged[part])
        part = None
        for name, tmp in staged.items():
            shutil.rmtree(out / name, ignore_errors=True)
            if tmp.is_dir():
                os.replace(tmp, out / name)
    except Exception as exc:
        if part is not None and is_write_error(exc):
            raise TrainError(
                f"{out / part}: could not be written ({reason(exc)}); the checkpoints are intact: free "
                "space and run again with --resume to write it",
                exit_code=1,
            ) from exc
        raise
    finally:
        for tmp in staged.values():
            shutil.rmtree(tmp, ignore_errors=True)
