"""The safety net of ``arena predict``: what the submission holds before (and wherever) the models do not.

It is written first, fills the rows the models do not reach by the deadline or score as non-finite,
and stays as the submission when the models fail (the notebook's ``ON_MODEL_FAILURE="fallback"``).
A feature run learns real preferences in seconds on the CPU, so where one is given it is the net;
the length heuristic ("the longer answer wins") stays the last resort when there is none or it fails.
For LMSYS a 3-class feature run gives the tie column itself; otherwise the tie rate does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

__all__ = ["lmsys_tie_rate", "safety_net"]


def _chosen_run(choice: str, runs) -> Path | None:
    """The feature run to use: ``auto`` = the first feature run among ``runs``; a path = that run."""
    if choice == "length":
        return None
    if choice == "auto":
        return next((info.run_dir for info in runs if info.config.model.kind == "features"), None)
    from arena_core.models.runs import read_run_config

    path = Path(choice)
    if read_run_config(path).model.kind != "features":
        raise ValueError(
            f"--safety-net {choice}: not a feature run (model.kind: features); or use auto / length"
        )
    return path


def safety_net(frame: pd.DataFrame, runs, choice: str = "auto", tie_rate: float | None = None):
    """``(probabilities id, p_a, p_b[, p_tie], description)`` for every row of ``frame``.

    ``runs``: the checked runs of the prediction (``ensemble.check_runs``); ``tie_rate``: the LMSYS
    tie probability for a net without a tie class (None for WSDM).
    """
    from arena_core.data.submission import add_tie_column
    from arena_core.evaluation.length import length_baseline

    run = _chosen_run(choice, runs)
    if run is not None:
        from arena_core.inference.tree_scoring import score_feature_run

        try:
            probs = score_feature_run(run, frame).frame()
            if tie_rate is not None and "p_tie" not in probs.columns:
                probs = add_tie_column(probs, tie_rate)
            if tie_rate is None and "p_tie" in probs.columns:  # WSDM scores A vs B only
                two = probs[["p_a", "p_b"]]
                probs[["p_a", "p_b"]] = two.div(two.sum(axis=1), axis=0)
                probs = probs.drop(columns="p_tie")
            return probs, f"the feature run {run} (both A/B orders)"
        except Exception as exc:  # noqa: BLE001 - the net must never be what fails
            print(
                f"warning: the safety-net feature run {run} failed ({type(exc).__name__}: {exc}); "
                "falling back to the length heuristic",
                file=sys.stderr,
            )
    probs = length_baseline(frame, with_tie=tie_rate is not None, tie_prob=tie_rate or 0.0)
    return probs, "the length heuristic (longer response wins)"


def lmsys_tie_rate(runs, fmt: str) -> float | None:
    """The tie probability for rows without a modelled tie (LMSYS only), announced when a 2-class model needs it."""
    from arena_core.inference.fallback import choose_tie_rate

    if fmt != "lmsys":
        return None
    rate, source = choose_tie_rate({i.manifest_path: i.manifest for i in runs})
    if runs[0].num_labels == 2:
        print(
            f"warning: the model(s) predict 2 classes but the lmsys format scores ties: winner_tie = {rate:.3f} "
            f"for every row ({source}) and p_a, p_b scaled by {1 - rate:.3f}; train with model.num_labels=3 "
            "to model ties"
        )
    else:
        print(f"safety net and fallback rows: tie probability {rate:.3f} ({source})")
    return rate
