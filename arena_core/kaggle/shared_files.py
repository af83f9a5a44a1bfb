"""Each file carried once: a run's ``tokenizer/`` that is its bundled base's own tokenizer stays behind.

Training saves the tokenizer it loaded from the base into ``RUN_DIR/tokenizer/``, so a bundle with
the base beside the run would carry the same ``tokenizer.json`` twice (32 MB for Gemma-3's 262k
vocabulary). A run without ``tokenizer/`` loads its base's (``models.runs.load_run`` reads
``RUN_DIR/tokenizer`` when there is one, else the base folder), so the bundle leaves the run's copy
out when both load the same tokenizer: every file of the run's copy equals the base's file of that
name (JSON compared without the keys transformers writes about how it was loaded), and the base has
no tokenizer file the run's copy lacks.
"""

from __future__ import annotations

import json
from pathlib import Path

from arena_core.kaggle.run_checks import RunInfo, tree_size

__all__ = ["LOADER_KEYS", "TOKENIZER_FILES", "drop_shared_tokenizers", "tokenizer_differences"]

# Written into tokenizer_config.json by transformers 5 about the load itself (where from, offline or
# not), not about the tokenizer: a base saved after a download and its run's copy differ only here.
LOADER_KEYS = frozenset({"is_local", "local_files_only", "name_or_path", "_commit_hash", "cache_dir"})
# What AutoTokenizer may read from a folder: a base holding one of these that the run's copy lacks
# could load differently from the base folder.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "additional_chat_templates",
)


def _content(path: Path):
    """A file's meaning for the comparison: JSON without the loader keys, anything else its bytes."""
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            value = json.loads(data)
        except ValueError:
            return data
        return {k: v for k, v in value.items() if k not in LOADER_KEYS} if isinstance(value, dict) else value
    return data


def tokenizer_differences(run_tokenizer: Path, base: Path) -> list[str]:
    """Why ``run_tokenizer`` (a run's ``tokenizer/``) may load differently from ``base``; empty when it cannot."""
    out = []
    mine = sorted(p for p in run_tokenizer.rglob("*") if p.is_file())
    for path in mine:
        rel = path.relative_to(run_tokenizer)
        theirs = base / rel
        if not theirs.is_file():
            out.append(f"{rel.as_posix()}: not in the base")
        elif _content(path) != _content(theirs):
            out.append(f"{rel.as_posix()}: differs from the base's")
    names = {p.relative_to(run_tokenizer).parts[0] for p in mine}
    out += [f"{n}: in the base only" for n in TOKENIZER_FILES if (base / n).exists() and n not in names]
    return out


def drop_shared_tokenizers(infos: list[RunInfo], base_dirs: dict[str, tuple[str, Path]]) -> list[str]:
    """Leave out the ``tokenizer/`` of each run whose bundled base holds the same tokenizer; returns notes.

    ``base_dirs`` maps a run's name to ``(folder name under models/base/, source folder)`` of its
    base. Changes ``info.items``, ``info.nbytes`` and ``info.tokenizer_from`` of the runs it drops from.
    """
    notes = []
    for info in infos:
        if info.kind != "adapter" or info.name not in base_dirs or "tokenizer" not in info.items:
            continue
        name, base = base_dirs[info.name]
        tok = info.source / "tokenizer"
        diffs = tokenizer_differences(tok, base)
        if diffs:
            shared = (tok / "tokenizer.json").is_file() and (base / "tokenizer.json").is_file()
            if shared and not any(d.startswith("tokenizer.json:") for d in diffs):
                notes.append(
                    f"run {info.name!r}: tokenizer/ carried although its tokenizer.json is the base's "
                    f"({'; '.join(diffs[:3])})"
                )
            continue
        saved = tree_size(tok)
        info.items.remove("tokenizer")
        info.nbytes -= saved
        info.tokenizer_from = f"models/base/{name}/"
        notes.append(
            f"run {info.name!r}: tokenizer/ not carried, the same as its base's in models/base/{name}/ "
            f"(which loads for a run without one); {saved / 2**20:.1f} MiB saved"
        )
    return notes
