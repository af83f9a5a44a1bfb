"""arena_core: pairwise preference models for the Chatbot Arena Kaggle competitions.

The notebook API (:mod:`arena_core.api`: ``load``, ``train``, ``predict``, ``evaluate``,
``write_submission``, ...) is reachable from here, e.g. ``arena_core.load(path)``; it is imported
on first use, so ``import arena_core`` stays cheap.
"""

__version__ = "0.1.0"

_API = (
    "baseline",
    "encode",
    "evaluate",
    "load",
    "predict",
    "run_config",
    "train",
    "write_submission",
)


def __getattr__(name: str):
    if name in _API:
        from arena_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'arena_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
