"""What the inference notebook calls after the install: the ``arena predict`` arguments from the
discovered mounts, and the failure policy the user chose.

The failure policy exists because ``arena predict`` writes the safety-net submission FIRST (a
feature run from the bundle when there is one, else the length heuristic):
when the models fail (exit 1) a valid ``submission.csv`` is already on disk. ``fail`` (the default)
fails the notebook anyway, so a broken model never turns into a quiet heuristic score;
``fallback`` submits the safety-net file, with a warning nobody can miss in the log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from arena_core.kaggle.mounts import Mounts

__all__ = ["FAILURE_POLICIES", "infer_argv", "resolve_runs", "run_predict"]

FAILURE_POLICIES = ("fail", "fallback")


def resolve_runs(mounts: Mounts, runs: Sequence[str | Path] = ()) -> list[Path]:
    """Run folders for ``RUNS``: names of the bundle's runs, of runs found elsewhere, or paths.

    Empty: every run in the bundle (or every run found when there is no bundle).
    """
    in_bundle = [r for r in mounts.runs if mounts.bundle is not None and mounts.bundle in r.parents]
    if not runs:
        chosen = in_bundle or list(mounts.runs)
        if not chosen:
            raise FileNotFoundError(
                f"no run found (manifest.json + adapter/, merged/ or booster/) under {mounts.root}"
                + (f" or in the bundle {mounts.bundle}" if mounts.bundle else "")
                + "; attach a bundle built with --run, or a training notebook's output"
            )
        return chosen
    out = []
    for r in runs:
        path = Path(r)
        if path.is_absolute() or path.exists():
            if not (path / "manifest.json").is_file():
                raise FileNotFoundError(f"RUNS: {path} is not a run directory (no manifest.json)")
            out.append(path)
            continue
        hits = [p for p in in_bundle if p.name == str(r)] or [
            p for p in mounts.runs if p.name == str(r) or p.as_posix().endswith("/" + str(r))
        ]
        if len(hits) != 1:
            known = [p.name for p in in_bundle] + [str(p) for p in mounts.runs if p not in in_bundle]
            what = "not found" if not hits else f"ambiguous ({', '.join(map(str, hits))})"
            raise FileNotFoundError(f"RUNS: {r!r} {what}; runs found: {known}")
        out.append(hits[0])
    return out


def infer_argv(
    mounts: Mounts,
    runs: Sequence[str | Path] = (),
    weights: Sequence[float] | str | Path = (),
    *,
    tta: str | None = "swap",
    time_budget: str | None = "4.5h",
    out: str | Path = "submission.csv",
    hidden_rows: int | None = None,
    placement: str | None = None,
    safety_net: str = "auto",
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``arena predict`` arguments for the discovered competition folder and runs.

    Base checkpoints found outside the bundle (a Kaggle Model attached to the notebook) are passed
    as ``--base-dir``: a run whose own base is not where its manifest says is matched to one of
    them by config.json hash. ``hidden_rows``: also project the time for the hidden rerun's size.
    ``weights``: one per run, empty for equal weights, or the weights file ``arena ensemble`` wrote
    (a path, or a name inside the bundle). ``safety_net``: ``auto`` (the first feature run among the
    runs, else the length heuristic), ``length``, or a feature run's name or path.
    """
    if mounts.competition is None:
        raise FileNotFoundError(f"no competition folder under {mounts.root}: attach the competition")
    paths = resolve_runs(mounts, runs)
    if isinstance(weights, (str, Path)):
        weight_args = [str(_weights_file(mounts, weights))] if str(weights) else []
    else:
        weight_args = [repr(float(w)) for w in weights]
        if weight_args and len(weight_args) != len(paths):
            raise ValueError(
                f"WEIGHTS has {len(weight_args)} value(s) for {len(paths)} run(s) {[p.name for p in paths]}"
            )
    argv = ["predict", "--data-dir", str(mounts.competition)]
    for p in paths:
        argv += ["--model", str(p)]
    if weight_args:
        argv += ["--weights", *weight_args]
    if tta:
        argv += ["--tta", str(tta)]
    if time_budget:
        argv += ["--time-budget", str(time_budget)]
    for base in mounts.bases:
        if mounts.bundle is None or mounts.bundle not in base.parents:
            argv += ["--base-dir", str(base)]
    if hidden_rows:
        argv += ["--project-rows", str(int(hidden_rows))]
    if placement:
        argv += ["--placement", str(placement)]
    if safety_net and safety_net != "auto":
        net = safety_net if safety_net == "length" else str(resolve_runs(mounts, [safety_net])[0])
        argv += ["--safety-net", net]
    return [*argv, "--out", str(out), *extra]


def _weights_file(mounts: Mounts, weights: str | Path) -> Path:
    """A weights file as given when it exists (or is absolute), else by that name inside the bundle."""
    path = Path(weights)
    if path.is_absolute() or path.exists() or mounts.bundle is None:
        return path
    return mounts.bundle / path


_BANNER = "!" * 100


def run_predict(
    main: Callable[[list[str]], int],
    argv: list[str],
    on_failure: str = "fail",
    out: str | Path = "submission.csv",
) -> int:
    """Run ``main(argv)`` (``arena_core.cli.main``: the notebook passes it, the kaggle wing sits below
    the CLI) and apply the failure policy; returns the exit code when the notebook may go on.

    Exit 1 means the models failed after the safety-net file was written: ``fail`` raises,
    ``fallback`` prints a loud warning and keeps that file. Any other non-zero exit (no test
    file, bad arguments: no valid submission exists) always raises.
    """
    if on_failure not in FAILURE_POLICIES:
        raise ValueError(f"ON_MODEL_FAILURE={on_failure!r}: choose one of {FAILURE_POLICIES}")
    rc = int(main(argv) or 0)
    if rc == 0:
        return rc
    if rc == 1 and on_failure == "fallback" and Path(out).is_file():
        warning = (
            f"\n{_BANNER}\nWARNING: THE MODELS FAILED (arena predict exited 1; the error is above).\n"
            f"{out} holds the safety net, not the models' predictions: the bundle's feature run when it carries\n"
            "one, else the LENGTH-HEURISTIC SAFETY NET (the lines above say which). ON_MODEL_FAILURE='fallback'\n"
            "submits it anyway: expect a worse score. Fix the error, or set ON_MODEL_FAILURE='fail'.\n"
            f"{_BANNER}\n"
        )
        print(warning)
        print(warning, file=sys.stderr)
        return rc
    hint = (
        " (ON_MODEL_FAILURE='fallback' would submit the safety-net file it left)"
        if rc == 1 and Path(out).is_file()
        else ""
    )
    raise RuntimeError(f"arena predict exited with {rc}: see the messages above{hint}")
