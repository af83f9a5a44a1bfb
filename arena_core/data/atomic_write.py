"""A file written whole or not at all, so a crash or a full disk never leaves half a submission.

:func:`write_atomically` writes a temporary file in the target's own directory (so the final
:func:`os.replace` is a rename on one file system), flushes and fsyncs it, lets the caller check it,
and only then moves it over the target. Any failure removes the temporary file and leaves a previous
file at the target untouched. Temporary names carry the writer's pid, so the next writer can sweep
those a killed process (SIGKILL, power loss) left behind. :func:`check_writable` fails in seconds
before hours of work whose result could not be written.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TextIO

__all__ = [
    "SubmissionWriteError",
    "check_writable",
    "pid_alive",
    "replace_atomically",
    "write_atomically",
    "write_parquet_atomically",
]


class SubmissionWriteError(OSError):
    """The submission could not be written (read-only place, disk full, a directory in the way).

    The message names the file and says that any previous file there is unchanged.
    """


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _tmp_prefix(path: Path, pid: int | None = None) -> str:
    return f".{path.name}.{os.getpid() if pid is None else pid}."


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (owned by anyone): stale lock and temp files are told apart by it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def _sweep_stale_tmp(path: Path) -> list[Path]:
    """Remove temporary files a killed writer (SIGKILL, power loss) left beside ``path``.

    Temporary names carry the writer's pid, so only files of processes that no longer run go.
    """
    removed = []
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[^/]*\.tmp")
    with suppress(OSError):
        for entry in path.parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
                with suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Fail now, in seconds, when ``path`` cannot be written later (a directory, a read-only place).

    Used before hours of scoring; makes the missing parent folders, writes and removes a probe file.
    """
    path = Path(path)
    if path.is_dir():
        raise SubmissionWriteError(f"{path}: {what} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise SubmissionWriteError(f"{path}: {what} cannot be written there: {_why(exc)}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise SubmissionWriteError(f"{path}: {what} exists and is read-only")
    return path


def write_atomically(
    path: Path,
    write: Callable[[TextIO], None],
    check: Callable[[str], None],
    what: str = "submission",
) -> Path:
    """Write ``path`` through a checked temporary file beside it; returns ``path``.

    ``write(f)`` fills the temporary text file (UTF-8, ``\\n`` line ends left alone); ``check(name)``
    reads it back by name and raises to refuse it. An ``OSError`` becomes a one-line
    :class:`SubmissionWriteError` naming ``path`` and the ``what``; anything else (a refusal, an
    interrupt) passes through. Either way no temporary file is left and ``path`` keeps its old bytes.
    """

    def fill(name: str) -> None:
        with open(name, "w", newline="", encoding="utf-8") as f:
            write(f)

    return replace_atomically(path, fill, check, what)


def replace_atomically(
    path: str | os.PathLike,
    fill: Callable[[str], None],
    check: Callable[[str], None] | None = None,
    what: str = "file",
) -> Path:
    """:func:`write_atomically` for any writer that takes a file name (``frame.to_parquet``, a
    model's ``save``): ``fill(name)`` writes the temporary file, which is fsynced, checked and moved
    over ``path`` only when whole. A full disk leaves the previous file readable."""
    path = Path(path)
    kept = "the previous file is unchanged" if path.exists() else "nothing was written"
    cannot = f"{path}: cannot write the {what} there"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_tmp(path)
    except OSError as exc:
        raise SubmissionWriteError(f"{cannot}: {_why(exc)}; {kept}") from None
    tmp_name = None  # set inside the try, so an interrupt right after mkstemp still removes the file
    try:
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
            os.close(fd)
        except OSError as exc:
            raise SubmissionWriteError(f"{cannot}: {_why(exc)}; {kept}") from None
        fill(tmp_name)
        with open(tmp_name, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)
        if check is not None:
            check(tmp_name)
        os.replace(tmp_name, path)
    except BaseException as exc:
        if tmp_name is not None:
            with suppress(OSError):
                os.unlink(tmp_name)
        if isinstance(exc, OSError) and not isinstance(exc, SubmissionWriteError):
            raise SubmissionWriteError(f"{path}: writing the {what} failed: {_why(exc)}; {kept}") from None
        raise
    _fsync_dir(path.parent)
    return path


def write_parquet_atomically(frame, path: str | os.PathLike, what: str = "predictions file") -> Path:
    """``frame.to_parquet(path, index=False)``, whole or not at all."""
    return replace_atomically(path, lambda name: frame.to_parquet(name, index=False), None, what)
