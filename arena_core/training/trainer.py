"""LoRA / QLoRA preference fine-tuning on Hugging Face ``Trainer``.

We lean on ``Trainer`` for the loop, schedules, checkpoints, resume, DDP and mixed precision;
what is ours is the data (the shared :class:`PairEncoder`, swap augmentation), the metrics, a
guard that stops on a non-finite loss, and the run directory that later stages consume.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import time
from pathlib import Path

import numpy as np

from arena_core.config import ConfigError, RunConfig
from arena_core.data.progress import progress_enabled
from arena_core.encoding.encoder import PairEncoder
from arena_core.training.dataset import PairCollator, PairDataset
from arena_core.training.distill import soft_fingerprint, soft_targets
from arena_core.training.final_eval import EvalScores, chance_warnings, final_eval
from arena_core.training.finished import restore_finished, train_loss
from arena_core.training.frames import as_file_list, split_rows, training_frame
from arena_core.training.hooks import (
    TrainingDiverged,
    all_finite,
    close_progress_bars,
    guard_callback,
    pair_trainer,
    progress_log_callback,
    trainable_parameters,
)
from arena_core.training.loss import DistillLoss, PairLoss
from arena_core.training.outdir import (
    OutputLock,
    TrainError,
    TrainResult,
    check_output_dir,
    is_write_error,
    reason,
    save_final,
    write_text_atomic,
)
from arena_core.training.processes import single_process_problem, visible_gpus
from arena_core.training.reporting import report_targets, report_to_problems
from arena_core.training.resume import (
    CHECKPOINTS,
    StartPlan,
    list_checkpoints,
    newest_complete,
    plan_start,
    remove_partial_checkpoint,
    run_record,
    write_record,
)
from arena_core.training.time_cap import max_time_s, time_cap_callback

__all__ = ["PairCollator", "PairDataset", "TrainingDiverged", "train", "validate_train_config"]


def _training_arguments(
    cfg: RunConfig, out: Path, has_eval: bool, n_train: int, world: int, use_cuda: bool, dtype
):
    import torch
    from transformers import TrainingArguments

    t = cfg.train
    steps_per_epoch = max(
        1, math.ceil(n_train / (t.per_device_batch_size * t.gradient_accumulation_steps * world))
    )
    total = t.max_steps if t.max_steps > 0 else math.ceil(steps_per_epoch * t.epochs)
    optim = t.optimizer
    if optim == "auto":
        optim = "adamw_torch"
        if use_cuda:
            try:
                import bitsandbytes  # noqa: F401

                optim = "paged_adamw_8bit"
            except ImportError:
                pass
    kwargs = dict(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=int(math.ceil(t.warmup_ratio * total)),
        lr_scheduler_type=t.lr_scheduler,
        per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_batch_size * 2,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        optim=optim,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        # Trainer's default replaces a NaN/inf loss by the running mean in its logs, which would
        # hide divergence from our guard; we want to see it and stop.
        logging_nan_inf_filter=False,
        # Each process divides its loss by its own rows (equal on every process); DDP then averages
        # the gradients. 5.x would otherwise gather the count and expect the loss scaled by the world.
        average_tokens_across_devices=False,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=t.seed,
        group_by_length=t.group_by_length,
        report_to=report_targets(t.report_to) or "none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        fp16=bool(use_cuda and dtype == torch.float16),
        bf16=bool(use_cuda and dtype == torch.bfloat16),
        use_cpu=not use_cuda,
        disable_tqdm=not progress_enabled(),  # a terminal gets the bar; a log gets one line per log step
    )
    if has_eval:
        kwargs["eval_steps"] = t.eval_steps
        if t.select_best:
            kwargs.update(
                load_best_model_at_end=True, metric_for_best_model="log_loss", greater_is_better=False
            )
    params = inspect.signature(TrainingArguments.__init__).parameters
    # transformers renamed evaluation_strategy -> eval_strategy (4.41); support both spellings.
    strategy_key = "eval_strategy" if "eval_strategy" in params else "evaluation_strategy"
    kwargs[strategy_key] = "steps" if has_eval else "no"
    if world > 1 and not use_cuda:
        kwargs["ddp_backend"] = "gloo"
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in params})


SWAP_MODES = ("both", "random", "none")
RUN_KINDS = ("transformer", "features")  # 'stack' runs are written by 'arena stack'


def validate_train_config(cfg: RunConfig, merge: bool = False) -> None:
    """The training settings that can be judged without data or model; ConfigError names the key."""
    t = cfg.train
    problems = []
    if t.swap_augmentation not in SWAP_MODES:
        problems.append(f"train.swap_augmentation={t.swap_augmentation!r}: choose {', '.join(SWAP_MODES)}")
    for key in ("per_device_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
        if getattr(t, key) < 1:
            problems.append(f"train.{key}={getattr(t, key)}: must be at least 1")
    if cfg.model.kind == "transformer" and t.select_best and t.fold >= 0 and t.eval_steps >= 1:
        if t.save_steps % t.eval_steps:
            # Trainer's load_best_model_at_end needs it, and says so only after the model has loaded
            problems.append(
                f"train.save_steps={t.save_steps} must be a multiple of train.eval_steps={t.eval_steps} when "
                "train.select_best=true (the best checkpoint is chosen at an eval); e.g. --set "
                f"train.save_steps={t.eval_steps * max(1, round(t.save_steps / t.eval_steps))}, or train.select_best=false"
            )
    if not (math.isfinite(t.learning_rate) and t.learning_rate > 0):
        problems.append(f"train.learning_rate={t.learning_rate}: must be a positive number")
    if t.max_steps <= 0 and not t.epochs > 0:
        problems.append(f"train.epochs={t.epochs} with train.max_steps={t.max_steps}: nothing to train")
    if not 0.0 <= t.distill_alpha <= 1.0:
        problems.append(f"train.distill_alpha={t.distill_alpha}: must lie in [0, 1]")
    if not t.distill_temperature > 0:
        problems.append(f"train.distill_temperature={t.distill_temperature}: must be > 0")
    if t.fold >= 0 and not (t.n_folds >= 2 and t.fold < t.n_folds):
        problems.append(f"train.fold={t.fold}: must be -1 or below train.n_folds={t.n_folds} (at least 2)")
    if cfg.model.kind not in RUN_KINDS:
        problems.append(f"model.kind={cfg.model.kind!r}: 'arena train' trains {' or '.join(RUN_KINDS)}")
    problems += report_to_problems(t.report_to) if cfg.model.kind == "transformer" else []
    if cfg.model.num_labels not in (2, 3):
        problems.append(f"model.num_labels={cfg.model.num_labels}: must be 2 (A/B) or 3 (A/B/tie)")
    try:
        max_time_s(cfg)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("config: " + "; ".join(problems))
    if merge and cfg.model.quantization != "none":
        # Checked before hours of training, not after: merged weights need a full-precision base.
        raise ConfigError(
            f"refusing to merge: the base is loaded in {cfg.model.quantization}; merging LoRA into quantised "
            "weights loses precision. Train without --merge, or with model.quantization=none"
        )


def train(
    cfg: RunConfig,
    train_file: str | Path | list,
    out_dir: str | Path,
    *,
    eval_file: str | Path | None = None,
    soft_labels: str | Path | None = None,
    resume: bool = False,
    resume_anyway: bool = False,
    merge: bool = False,
    extra_callbacks: list | None = None,
) -> TrainResult:
    """Fine-tune ``cfg.model`` on ``train_file`` (one file or several, see
    :func:`~arena_core.data.sources.load_sources`) and write a run directory to ``out_dir``.

    Everything that can be checked without the model is checked first: the config, the data, the
    output directory (writable, not another process's), and with ``resume`` that the checkpoints
    there belong to this config and data (``resume_anyway`` skips that check) and which one is
    the newest complete one. ``soft_labels``: a teacher's probabilities per row id (see
    :mod:`~arena_core.training.distill`), trained on with ``train.distill_alpha`` and
    ``train.distill_temperature``. Failures are :class:`TrainError` / ``ConfigError`` / ``DataError``
    messages that name the file.
    """
    from arena_core.models.runs import data_fingerprint, file_sha256, weights_fingerprint

    validate_train_config(cfg, merge)
    if cfg.model.kind == "features":
        from arena_core.training.feature_run import train_feature_run

        return train_feature_run(
            cfg, train_file, out_dir, eval_file=eval_file, soft_labels=soft_labels, merge=merge
        )
    problem = single_process_problem(int(os.environ.get("WORLD_SIZE", "1")), visible_gpus())
    if problem:
        raise TrainError(problem)
    out = Path(out_dir)
    rank = int(os.environ.get("RANK", "0"))
    verbose = rank == 0
    if rank == 0:
        check_output_dir(out)
    train_files = as_file_list(train_file)
    frame = training_frame(train_files, cfg.model.num_labels, verbose, soft_labels=soft_labels)
    label_counts = frame.attrs.get("winner_counts", {})
    given_eval = training_frame(eval_file, cfg.model.num_labels, verbose) if eval_file else None
    train_frame, eval_frame = split_rows(frame, cfg, given_eval)
    shown = " + ".join(map(str, train_files))
    if len(train_frame) == 0:
        raise ValueError(f"{shown}: no training rows left after the split")
    record = run_record(
        cfg,
        data_fingerprint(frame),
        data_fingerprint(given_eval) if given_eval is not None else None,
        train_file=shown,
        eval_file=str(eval_file) if eval_file else None,
        train_labels=label_counts,
        base_config_sha256=file_sha256(Path(cfg.model.path) / "config.json"),
        base_weights_fingerprint=weights_fingerprint(cfg.model.path)
        if Path(cfg.model.path).is_dir()
        else None,
        **(
            {"soft_labels": str(soft_labels), "soft_fingerprint": soft_fingerprint(frame)}
            if soft_labels
            else {}
        ),
    )
    if rank != 0:  # one writer: rank 0 checks, locks and records; the others follow its checkpoint
        plan = StartPlan(
            checkpoint=newest_complete(list_checkpoints(out / CHECKPOINTS))[0] if resume else None
        )
        return _train_loaded(cfg, out, train_frame, eval_frame, record, plan, merge, extra_callbacks)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainError(f"{out}: cannot be created ({exc.strerror or exc})", exit_code=1) from exc
    with OutputLock(out, verbose=verbose):
        plan = plan_start(out, record, resume=resume, resume_anyway=resume_anyway)
        for note in plan.notes:
            print(note)
        if plan.checkpoint is not None:
            record["resumed_from"] = plan.checkpoint.name
        if resume_anyway and plan.checkpoint is not None:
            record["resumed_anyway_over"] = plan.overridden
        write_record(out, record)
        return _train_loaded(cfg, out, train_frame, eval_frame, record, plan, merge, extra_callbacks)


def _train_loaded(cfg, out, train_frame, eval_frame, record, plan, merge, extra_callbacks) -> TrainResult:
    """The part that needs the model: load, train, evaluate, save."""
    import torch
    from transformers import set_seed

    from arena_core.models.capabilities import fit_max_length
    from arena_core.models.loading import count_parameters, load_classifier
    from arena_core.models.precision import resolve_dtype
    from arena_core.models.runs import adapter_to_continue, write_manifest

    started = time.monotonic()  # train.max_time counts from here: loading, encoding and training
    world = int(os.environ.get("WORLD_SIZE", "1"))
    verbose = int(os.environ.get("RANK", "0")) == 0
    set_seed(cfg.train.seed)
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if use_cuda else torch.device("cpu")
    model, tokenizer = load_classifier(
        cfg.model,
        cfg.lora if cfg.lora.enabled else None,
        device=device,
        for_training=True,
        adapter_dir=adapter_to_continue(cfg.train.init_from, cfg.model.path) if cfg.train.init_from else None,
    )
    n_trainable, total = count_parameters(model)
    if verbose:
        print(
            f"model: {cfg.model.path} | trainable {n_trainable:,} of {total:,} parameters ({100 * n_trainable / total:.2f}%)"
        )

    # The effective length is what config.yaml and the manifest record, so prediction encodes alike.
    max_length = fit_max_length(cfg.encoding.max_length, model)
    cfg = dataclasses.replace(cfg, encoding=dataclasses.replace(cfg.encoding, max_length=max_length))
    encoder = PairEncoder(tokenizer, cfg.encoding)
    enc_train = encoder.encode_frame(train_frame, progress=verbose)
    if verbose:
        print("train " + enc_train.summary())
    soft = soft_targets(train_frame)
    labels = train_frame["label"].fillna(-1).to_numpy(dtype=np.int64)
    train_ds = PairDataset(enc_train, labels, cfg.train.swap_augmentation, cfg.train.seed, soft=soft)
    eval_ds = None
    if len(eval_frame):
        enc_eval = encoder.encode_frame(eval_frame)
        eval_ds = PairDataset(enc_eval, eval_frame["label"].to_numpy(dtype=np.int64), "none")

    dtype = resolve_dtype(cfg.model.dtype, device)
    args = _training_arguments(cfg, out, eval_ds is not None, len(train_ds), world, use_cuda, dtype)
    guard = guard_callback(out / CHECKPOINTS)
    callbacks = [guard, progress_log_callback(out / "train_log.jsonl"), *(extra_callbacks or [])]
    cap = time_cap_callback(max_time_s(cfg), start=started) if cfg.train.max_time else None
    if cap is not None:
        callbacks.append(cap)
    trainer = pair_trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=PairCollator(tokenizer.pad_token_id),
        compute_metrics=EvalScores() if eval_ds is not None else None,  # keeps logits for final_eval
        callbacks=callbacks,
        pair_loss=PairLoss()
        if soft is None
        else DistillLoss(cfg.train.distill_alpha, cfg.train.distill_temperature),
        guard=guard,
    )
    try:  # a checkpoint at the last step (the final write failed) is written out, not trained on
        finished = plan.checkpoint is not None and restore_finished(trainer, plan.checkpoint, verbose)
        if not finished:
            trainer.train(resume_from_checkpoint=str(plan.checkpoint) if plan.checkpoint else None)
    except BaseException as exc:
        close_progress_bars(trainer)  # so the error starts on a line of its own
        if isinstance(exc, TrainError) or not isinstance(exc, Exception):
            raise
        if guard.writing is None or not is_write_error(exc):
            raise
        removed = verbose and remove_partial_checkpoint(guard.writing)
        raise TrainError(
            f"{guard.writing}: could not be written ({reason(exc)})"
            + ("; removed the partial checkpoint" if removed else "")
            + "; free space (or fix permissions) and continue with --resume",
            exit_code=1,
        ) from exc
    metrics = {"train_rows": len(train_frame), "eval_rows": len(eval_frame), "train_items": len(train_ds)}
    run_warnings = []
    if eval_ds is not None:  # the eval fold once more: only the swapped order, for the flip rate
        metrics.update(final_eval(trainer, eval_ds, enc_eval, eval_frame["label"].to_numpy(dtype=np.int64)))
        run_warnings = chance_warnings(metrics, cfg.model.num_labels)
    metrics["train_loss"] = train_loss(trainer.state.log_history, finished and out / "train_log.jsonl")
    metrics["global_step"] = trainer.state.global_step
    status = "complete"
    if cap is not None and cap.time_cap.stopped_at is not None:
        # A usable run directory, and unfinished: a fresh run into this folder is refused, --resume goes on.
        metrics["stopped_by"] = status = "max_time"
    if not all_finite(trainable_parameters(trainer.model)):
        raise TrainingDiverged(
            f"weights became NaN or infinite by step {trainer.state.global_step}; {out}/adapter was not written"
        )

    if trainer.is_world_process_zero():
        save_final(out, trainer.model, tokenizer, cfg, merge)
        write_text_atomic(out / "config.yaml", _config_yaml(cfg))
        keys = ("train_file", "eval_file", "eval_fingerprint", "train_labels", "soft_labels")
        keys += ("soft_fingerprint", "resumed_from", "resumed_anyway_over")
        extra = {k: record[k] for k in keys if k in record}
        write_manifest(
            out,
            cfg,
            base_path=cfg.model.path,
            fingerprint=record["data_fingerprint"],
            metrics=metrics,
            extra={"status": status, "warnings": run_warnings, **extra},
        )
        write_record(out, {**record, "status": status})
        if verbose:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
            print(f"run written to {out}: {shown}")
            for line in run_warnings:
                print(line, flush=True)  # the last line of the run's output
    return TrainResult(out, metrics, len(train_frame), len(eval_frame), run_warnings)


def _config_yaml(cfg: RunConfig) -> str:
    import yaml

    from arena_core.config import config_to_dict

    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
