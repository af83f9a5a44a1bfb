"""Ensemble members as ``arena predict`` loads them: where each run's base is, and how the model
sits on the visible GPUs (one replica per GPU, or one model split layer-wise; see
:mod:`~arena_core.inference.placement`).
"""

from __future__ import annotations

from pathlib import Path

from arena_core.inference.ensemble import EnsembleResult, Member, predict_ensemble
from arena_core.inference.placement import (
    GPU_MEMORY_GIB,
    checkpoint_bytes,
    choose_placement,
    split_device_map,
    visible_gpu_bytes,
)
from arena_core.inference.scoring import Scorer
from arena_core.inference.stacking import StackPlan, apply_stack, plan_stack, split_stack_runs

__all__ = [
    "member_names",
    "planned_workers",
    "run_member",
    "score_runs",
    "split_layout",
    "stack_plan",
    "visible_devices",
]


def visible_devices(choice: str | None = None) -> list[str]:
    """``cpu``, or every visible CUDA device (``None``: CUDA when there is one)."""
    import torch

    if choice == "cpu" or (choice is None and not torch.cuda.is_available()):
        return ["cpu"]
    if not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is visible")
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def member_names(models: list[str]) -> list[str]:
    """One name per run directory (its folder name; ``name#i`` for a repeated one)."""
    names = []
    for i, m in enumerate(models):
        base = Path(m).name or f"model{i}"
        names.append(base if base not in names else f"{base}#{i}")
    return names


def run_member(
    run_dir: str,
    name: str,
    devices: list[str],
    weight: float,
    bases=(),
    placement: str = "auto",
    calibrate: bool = True,
) -> Member:
    """A lazily loaded ensemble member: one replica (Scorer) per device, or one model split over the GPUs.

    ``bases``: base checkpoints to match by config.json hash when the run's own base is not where
    its manifest (or bundle) says. ``calibrate``: apply the run's fitted temperature
    (``RUN_DIR/calibration.json``, from ``arena calibrate`` or ``arena cv``) when it has one.
    """
    from arena_core.evaluation.calibration import Calibration
    from arena_core.models.runs import load_run, locate_base, read_run_config

    calibration = Calibration.load(run_dir) if calibrate else None
    if read_run_config(run_dir).model.kind == "features":
        from arena_core.inference.tree_scoring import score_feature_run

        print(f"[{name}] feature run: scored on the CPU")
        return Member(
            name,
            None,
            weight,
            calibration,
            score=lambda frame, cache: score_feature_run(run_dir, frame, cache),
        )

    def load():
        base = locate_base(run_dir, list(bases))
        layout = split_layout(run_dir, name, base, devices, placement)
        if layout is not None:
            run = load_run(run_dir, device=devices[0], base_dir=base, **layout)
            first = next(run.model.parameters()).device
            print(f"[{name}] loaded split over {', '.join(devices)}")
            scorer = Scorer(
                run.model, run.tokenizer.pad_token_id, device=first, dtype=_dtype(run.model), name=name
            )
            return [scorer], run.tokenizer, run.config.encoding
        scorers, tokenizer, encoding = [], None, None
        for dev in devices:
            run = load_run(run_dir, device=dev, base_dir=base, quiet=bool(scorers))
            pad = run.tokenizer.pad_token_id
            scorers.append(Scorer(run.model, pad, device=dev, dtype=_dtype(run.model), name=f"{name}@{dev}"))
            tokenizer, encoding = run.tokenizer, run.config.encoding
        print(f"[{name}] loaded on {', '.join(devices)}")
        return scorers, tokenizer, encoding

    return Member(name, load, weight, calibration)


def stack_plan(run_dirs) -> tuple[list[str], list[str], StackPlan | None]:
    """``(member runs, their names, the stack's plan or None)``: a stack run among ``run_dirs`` is
    matched to the others here, before anything is scored (a mismatch is a usage error)."""
    paths, stack = split_stack_runs(run_dirs)
    names = member_names(paths)
    return paths, names, (plan_stack(stack, paths, names) if stack else None)


def score_runs(
    run_dirs,
    frame,
    cfg=None,
    *,
    tta: str | None = None,
    weights=None,
    devices: list[str] | None = None,
    calibrate: bool = True,
    deadline: float | None = None,
    fallback_probs=None,
    progress: bool = False,
    bases=(),
    placement: str = "auto",
) -> EnsembleResult:
    """Score ``frame`` with one run or an ensemble of runs, as ``arena predict`` does (also ``arena
    cv``'s out-of-fold rows, ``arena calibrate``'s labelled rows, the notebook API's ``predict``);
    ``deadline`` / ``fallback_probs`` as in :func:`predict_ensemble`.

    A stack run among ``run_dirs`` (``arena stack``) is applied after the others, which must be the
    runs standing for its inputs (see :mod:`~arena_core.inference.stacking`); its members are then
    scored without their temperatures and ``weights`` do not apply."""
    paths, names, plan = stack_plan(run_dirs)
    if plan is not None and weights is not None:
        raise ValueError(
            f"--weights do not apply with the stack run {plan.run_dir}: it weighs its members itself"
        )
    weights = list(weights) if weights is not None else [1.0] * len(paths)
    if len(weights) != len(paths):
        raise ValueError(f"{len(weights)} weight(s) for {len(paths)} run(s) {names}")
    devices = list(devices or visible_devices())
    members = [
        run_member(r, n, devices, w, bases, placement, calibrate=calibrate and plan is None)
        for r, n, w in zip(paths, names, weights)
    ]
    cache: dict = {}
    result = predict_ensemble(
        members,
        frame,
        cfg,
        tta=tta,
        deadline=deadline,
        fallback_probs=fallback_probs,
        progress=progress,
        encode_cache=cache,
    )
    return apply_stack(plan, result, frame, cache) if plan is not None else result


def _dtype(model):
    params = model.parameters() if hasattr(model, "parameters") else iter(())
    first = next(params, None)
    return first.dtype if first is not None else None


def split_layout(run_dir: str, name: str, base, devices: list[str], requested: str) -> dict | None:
    """``load_run`` keywords for a layer-wise split when memory (or the user) asks for one, else None."""
    if devices == ["cpu"] or (requested == "replicas" and len(devices) > 1):
        return None
    from arena_core.models.runs import read_run_config

    cfg = read_run_config(run_dir)
    weights = Path(base) if base is not None else Path(run_dir) / "merged"
    size = checkpoint_bytes(weights, 2, cfg.model.quantization)
    plan = choose_placement(size, visible_gpu_bytes(), requested)
    print(f"[{name}] placement {plan.kind}: {plan.reason}")
    if plan.kind != "split":
        return None
    if cfg.model.quantization != "none":  # transformers sizes quantised layers itself
        return {"device_map": "auto", "max_memory": plan.max_memory}
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(weights), local_files_only=True)
    config.num_labels = int(cfg.model.num_labels)
    return {"device_map": split_device_map(config, plan.max_memory)}


def planned_workers(run_dir: str, quantization: str, kind: str, gpus: int, requested: str = "auto") -> int:
    """Engine workers on a planning target: one per GPU (replicas), or one when the model is split."""
    if kind == "cpu" or gpus < 2:
        return gpus
    from arena_core.models.runs import RunError, locate_base

    try:
        base = locate_base(run_dir)
    except RunError as exc:
        print(f"placement: cannot size the model here ({exc}); assuming one replica per GPU")
        return gpus
    if kind not in GPU_MEMORY_GIB:
        print(
            f"placement: no memory figure for {kind!r} (known: {', '.join(GPU_MEMORY_GIB)}); one replica per GPU"
        )
        return gpus
    weights = base if base is not None else Path(run_dir) / "merged"
    plan = choose_placement(
        checkpoint_bytes(weights, 2, quantization), [int(GPU_MEMORY_GIB[kind] * 2**30)] * gpus, requested
    )
    print(f"placement {plan.kind}: {plan.reason}")
    return plan.workers
