"""``train.report_to``: which experiment trackers Trainer logs to, checked before the model loads.

Trainer itself rejects an unknown name, or a tracker whose package is missing, only once the
model has loaded (minutes for a large base); these checks say the same before anything loads.
The default "none" needs no import at all, so offline runs pay nothing.
"""

from __future__ import annotations

# Trainer logs to every tracker it finds installed for "all"; the rest are integration names.
SPECIAL = ("none", "all")
# Not reported by transformers' availability list even when installed (azure_ml hides behind
# mlflow, flyte has its own check), so never called missing.
UNLISTED = ("azure_ml", "flyte")


def report_targets(value) -> list[str]:
    """``train.report_to`` as a list of names: "none" -> [], "a,b" or ["a", "b"] -> ["a", "b"]."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    return [] if names == ["none"] else names


def report_to_problems(value) -> list[str]:
    """What is wrong with ``train.report_to`` (empty when nothing), each naming the key."""
    names = report_targets(value)
    if not names:
        return []
    shown = f"train.report_to={value!r}"
    for special in SPECIAL:
        if special in names and len(names) > 1:
            return [f"{shown}: {special!r} stands alone, not in a list with other names"]
    if names == ["all"]:
        return []
    from transformers.integrations import integration_utils as hf

    known = sorted(hf.INTEGRATION_TO_CALLBACK)
    unknown = [n for n in names if n not in known]
    if unknown:
        return [f"{shown}: unknown {', '.join(unknown)}; choose none, all, or any of {', '.join(known)}"]
    found = set(hf.get_available_reporting_integrations())
    missing = [n for n in names if n not in found and n not in UNLISTED]
    if missing:
        return [f"{shown}: {', '.join(missing)} not installed here; pip install it, or train.report_to=none"]
    return []
