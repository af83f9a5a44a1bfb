"""Silence the model libraries' messages a user cannot act on; ``arena -v`` shows them again.

Each entry is one known message, matched by its own words, so anything new still shows. They come
from the libraries this wing imports (peft, bitsandbytes, transformers) and repeat on every
command: bitsandbytes looking for an optional CPU kernel on the hub (there is no network here and
the fallback is fine), peft reading a property transformers 5 deprecated, torch's own deprecation of
TorchScript inside a tokenizer library. ``ARENA_VERBOSE=1`` (set by ``arena -v``, inherited by the
processes a command starts) leaves everything as the libraries wrote it.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

__all__ = ["KNOWN_NOISE", "VERBOSE_ENV", "quiet_library_noise"]

VERBOSE_ENV = "ARENA_VERBOSE"

#: (kind, where, the start of the message): kind "log" with a logger name, or a warning category with
#: the package whose code issues the warning.
KNOWN_NOISE: tuple[tuple[str, str, str], ...] = (
    ("log", "bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
    ("FutureWarning", "transformers", "`is_gradient_checkpointing` is deprecated"),
    ("DeprecationWarning", "torch", "`torch.jit.script_method` is deprecated"),
)

_installed = False


class _DropKnown(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_library_noise() -> bool:
    """Install the filters; returns False when ``ARENA_VERBOSE`` asks for everything.

    Safe to call again: the logging filters go in once per process, the warning filters are put
    back in front (``warnings`` drops an identical older entry), in case a ``catch_warnings`` block
    or a test runner reset them.
    """
    global _installed
    if os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0"):
        return False
    for kind, where, prefix in KNOWN_NOISE:
        if kind == "log":
            if not _installed:
                logging.getLogger(where).addFilter(_DropKnown(prefix))
            continue
        category = {"FutureWarning": FutureWarning, "DeprecationWarning": DeprecationWarning}[kind]
        # message and module are regexes matched at the start of the text and the module's name.
        warnings.filterwarnings(
            "ignore", message=re.escape(prefix), category=category, module=rf"{re.escape(where)}(\.|$)"
        )
    _installed = True
    return True
