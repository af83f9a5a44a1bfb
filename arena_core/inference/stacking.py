"""Applying a stack run (``arena stack``) after its members, inside ``arena predict``.

The stack names its inputs by recipe (see :func:`~arena_core.models.runs.recipe_identity`); each
``--model`` run is matched to the input it stands for: the cv's fold runs, its merged folds or a run
on every row. Several runs matching one input (the k fold runs) are averaged first, as the fold
ensemble the input's out-of-fold rows approximate. Every input needs a run and every run an input,
else a clear error before anything is scored. Members are scored without their fitted temperatures,
as the out-of-fold probabilities the stacker learned from were.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["StackPlan", "apply_stack", "plan_stack", "split_stack_runs"]


class StackMatchError(ValueError):
    """The ``--model`` runs do not stand for the stack's inputs one to one; names both sides."""


@dataclass
class StackPlan:
    run_dir: Path
    groups: dict[str, list[str]]  # stack input name -> member names standing for it
    uses_features: bool


def _kind(run_dir: Path) -> str:
    from arena_core.models.runs import read_run_config

    return read_run_config(run_dir).model.kind


def split_stack_runs(run_dirs) -> tuple[list[str], str | None]:
    """``(member runs, stack run or None)``; at most one stack run."""
    stacks = [str(r) for r in run_dirs if _kind(Path(r)) == "stack"]
    if len(stacks) > 1:
        raise StackMatchError(f"at most one stack run per prediction, got {stacks}")
    members = [str(r) for r in run_dirs if str(r) not in stacks]
    if stacks and not members:
        raise StackMatchError(
            f"{stacks[0]} is a stack run: it scores after its members; pass them too (--model RUN ... --model {stacks[0]})"
        )
    return members, (stacks[0] if stacks else None)


def plan_stack(stack_dir: str | Path, member_dirs: list[str], member_names: list[str]) -> StackPlan:
    """Which members stand for which stack input; refuses any input or member left over."""
    from arena_core.models.runs import read_manifest, recipe_identity

    stack_dir = Path(stack_dir)
    manifest = read_manifest(stack_dir)
    inputs = manifest.get("stack_inputs") or []
    if not inputs:
        raise StackMatchError(
            f"{stack_dir}/manifest.json: no stack_inputs; is it a run written by 'arena stack'?"
        )
    ids = {name: recipe_identity(read_manifest(d)) for name, d in zip(member_names, member_dirs)}
    groups = {i["name"]: [m for m, ident in ids.items() if ident == i["identity"]] for i in inputs}
    unmatched_inputs = [n for n, ms in groups.items() if not ms]
    used = {m for ms in groups.values() for m in ms}
    unmatched_members = [m for m in member_names if m not in used]
    if unmatched_inputs or unmatched_members:
        raise StackMatchError(
            f"{stack_dir}: the --model runs do not match its inputs. Inputs without a run: {unmatched_inputs or 'none'} "
            f"(each needs a run trained with that cv's config on the same data: its fold runs, merged_folds, or "
            f"'arena train' with the same config and files); runs no input asked for: {unmatched_members or 'none'}. "
            f"Inputs: {[i['name'] + ' (' + i.get('cv_dir', '?') + ')' for i in inputs]}"
        )
    return StackPlan(stack_dir, groups, bool(manifest.get("stack_uses_features", True)))


def apply_stack(plan: StackPlan, result, frame: pd.DataFrame, cache: dict | None = None):
    """``result`` (an EnsembleResult) with the stacker's probabilities on every row all its members
    scored; other rows keep the ensemble's combination (fallback included). Returns ``result``."""
    from arena_core.encoding.features import stack_features
    from arena_core.inference.tree_scoring import cached_features, check_feature_set
    from arena_core.models.booster import load_booster, predict_both_orders

    fitted = load_booster(plan.run_dir)
    probs, scored = {}, np.ones(len(frame), dtype=bool)
    for name, members in plan.groups.items():
        parts = [result.members[m] for m in members if m in result.members]
        if len(parts) != len(members):  # a member skipped for time: no stacker anywhere
            result.log.append(f"[stack] {name}: a member was not run; the ensemble's combination stands")
            return result
        probs[name] = np.mean([p.probs for p in parts], axis=0)
        for p in parts:
            scored &= p.path != "fallback"
    pair = cached_features(frame, cache) if plan.uses_features else None
    matrix = stack_features(probs, pair)
    check_feature_set(fitted, matrix.names, plan.run_dir)
    stacked = predict_both_orders(fitted, matrix.values[scored])[0] if scored.any() else None
    if stacked is not None:
        result.probs[scored] = stacked
    result.coverage["stacked"] = int(scored.sum())
    result.log.append(
        f"[stack] {plan.run_dir.name}: {int(scored.sum())} of {len(frame)} rows stacked over "
        + ", ".join(f"{n} ({len(m)} run{'s' if len(m) > 1 else ''})" for n, m in plan.groups.items())
    )
    return result
