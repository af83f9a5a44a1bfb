"""Where a benchmark's numbers go: ``RESULT.json`` (everything) and ``RESULT.md`` (the table
docs/benchmarks.md quotes), written side by side and printed, one way for every benchmark."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(out: str | Path, report: dict, markdown: str, where: str = "") -> Path:
    """Write ``report`` as JSON to ``out`` and ``markdown`` beside it (``.md``); print both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    print("\n" + markdown)
    print(f"written: {out} and {out.with_suffix('.md')}" + (f"; {where}" if where else ""))
    return out
