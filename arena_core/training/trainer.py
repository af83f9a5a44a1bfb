"""LoRA / QLoRA preference fine-tuning on Hugging Face ``Trainer``.

We lean on ``Trainer`` for the loop, schedules, checkpoints, resume, DDP and mixed precision;
what is ours is the data (the shared :class:`PairEncoder`, swap augmentation), the metrics, a
guard that stops on a non-finite loss, and the run directory that later stages consume.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.config import RunConfig, save_config
from arena_core.data.competition import assign_folds, load_competition_file
from arena_core.encoding.encoder import PairEncoder


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and learning rate."""


def swap_label(label: int) -> int:
    return {0: 1, 1: 0}.get(int(label), int(label))


class PairDataset:
    """Encoded rows as ``{"input_ids", "labels"}`` items, with swap augmentation.

    ``both`` puts every pair in both orders (labels swapped for the reversed copy);
    ``random`` picks one order per pair with a fixed seed; ``none`` keeps the original order.
    """

    def __init__(self, encoded, labels, swap: str = "none", seed: int = 0):
        labels = np.asarray(labels, dtype=np.int64)
        items = []
        rng = np.random.default_rng(seed)
        for i, lab in enumerate(labels):
            fwd = (encoded.input_ids[i], int(lab))
            rev = (encoded.input_ids_swapped[i], swap_label(lab))
            if swap == "both":
                items += [fwd, rev]
            elif swap == "random":
                items.append(rev if rng.integers(2) else fwd)
            elif swap == "none":
                items.append(fwd)
            else:
                raise ValueError(f"train.swap_augmentation={swap!r}; choose both, random or none")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        ids, lab = self.items[i]
        return {"input_ids": ids, "labels": lab}


class PairCollator:
    """Right-pads a list of items with :func:`arena_core.encoding.batching.collate`."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int = 8):
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        import torch

        from arena_core.encoding.batching import _round_up, collate

        width = _round_up(max(len(f["input_ids"]) for f in features), self.multiple)
        out = collate([f["input_ids"] for f in features], self.pad_id, "right", padded_length=width)
        out["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return out


def compute_metrics(eval_pred) -> dict:
    from arena_core.evaluation.metrics import accuracy, log_loss

    logits, labels = eval_pred
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return {"accuracy": accuracy(labels, probs), "log_loss": log_loss(labels, probs)}


def _finite_loss_callback():
    from transformers import TrainerCallback

    class StopOnNonFiniteLoss(TrainerCallback):
        """Stops the run the moment a logged loss is NaN or infinite."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            loss = logs.get("loss", logs.get("train_loss"))
            if loss is not None and not math.isfinite(float(loss)):
                lr = logs.get("learning_rate")
                raise TrainingDiverged(
                    f"loss became {loss} at step {state.global_step} (last learning rate {lr}); "
                    "lower train.learning_rate, check the data, or use fp32/bf16 instead of fp16"
                )

    return StopOnNonFiniteLoss()


def _progress_log_callback(log_path: Path):
    from transformers import TrainerCallback

    class LogToFile(TrainerCallback):
        """Appends every logged loss / eval metric as a JSON line next to the run."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                import json

                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return LogToFile()


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
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=t.seed,
        group_by_length=t.group_by_length,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        fp16=bool(use_cuda and dtype == torch.float16),
        bf16=bool(use_cuda and dtype == torch.bfloat16),
        use_cpu=not use_cuda,
        disable_tqdm=False,
    )
    if has_eval:
        kwargs.update(
            eval_steps=t.eval_steps,
            load_best_model_at_end=True,
            metric_for_best_model="log_loss",
            greater_is_better=False,
        )
    params = inspect.signature(TrainingArguments.__init__).parameters
    # transformers renamed evaluation_strategy -> eval_strategy (4.41); support both spellings.
    strategy_key = "eval_strategy" if "eval_strategy" in params else "evaluation_strategy"
    kwargs[strategy_key] = "steps" if has_eval else "no"
    if world > 1 and not use_cuda:
        kwargs["ddp_backend"] = "gloo"
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in params})


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    n_train: int
    n_eval: int


def _split(frame: pd.DataFrame, cfg: RunConfig, eval_frame: pd.DataFrame | None):
    if eval_frame is not None:
        return frame, eval_frame
    if cfg.train.fold < 0:
        return frame, frame.iloc[:0]
    folds = assign_folds(frame, cfg.train.n_folds, cfg.train.seed)
    return frame[folds != cfg.train.fold].reset_index(drop=True), frame[folds == cfg.train.fold].reset_index(
        drop=True
    )


def _labelled(path, num_labels: int, verbose: bool) -> pd.DataFrame:
    frame = load_competition_file(path, verbose=verbose).frame
    if frame["label"].isna().any():
        raise ValueError(f"{path}: has rows without a winner; training needs a labelled file")
    if num_labels == 2:
        ties = int((frame["label"] == 2).sum())
        if ties:
            print(
                f"{path}: dropping {ties} tie rows (model.num_labels=2; set model.num_labels=3 to model ties)"
            )
            frame = frame[frame["label"] != 2].reset_index(drop=True)
    return frame


def train(
    cfg: RunConfig,
    train_file: str | Path,
    out_dir: str | Path,
    *,
    eval_file: str | Path | None = None,
    resume: bool = False,
    merge: bool = False,
    extra_callbacks: list | None = None,
) -> TrainResult:
    """Fine-tune ``cfg.model`` on ``train_file`` and write a run directory to ``out_dir``."""
    import torch
    from transformers import Trainer, set_seed

    from arena_core.models.loading import count_parameters, load_classifier, merge_adapter, resolve_dtype
    from arena_core.models.runs import (
        data_fingerprint,
        make_adapter_portable,
        make_tokenizer_portable,
        write_manifest,
    )

    if merge and cfg.model.quantization != "none":
        # Checked before hours of training, not after: merged weights need a full-precision base.
        raise ValueError(
            f"refusing to merge: the base is loaded in {cfg.model.quantization}; merging LoRA into quantised "
            "weights loses precision. Train without --merge, or with model.quantization=none"
        )
    out = Path(out_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    verbose = rank == 0
    set_seed(cfg.train.seed)
    frame = _labelled(train_file, cfg.model.num_labels, verbose)
    eval_frame = _labelled(eval_file, cfg.model.num_labels, verbose) if eval_file else None
    train_frame, eval_frame = _split(frame, cfg, eval_frame)
    if len(train_frame) == 0:
        raise ValueError(f"{train_file}: no training rows left after the split")

    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if use_cuda else torch.device("cpu")
    model, tokenizer = load_classifier(
        cfg.model, cfg.lora if cfg.lora.enabled else None, device=device, for_training=True
    )
    trainable, total = count_parameters(model)
    if verbose:
        print(
            f"model: {cfg.model.path} | trainable {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)"
        )

    encoder = PairEncoder(tokenizer, cfg.encoding)
    enc_train = encoder.encode_frame(train_frame, progress=verbose)
    if verbose:
        print("train " + enc_train.summary())
    train_ds = PairDataset(
        enc_train, train_frame["label"].to_numpy(dtype=np.int64), cfg.train.swap_augmentation, cfg.train.seed
    )
    eval_ds = None
    if len(eval_frame):
        enc_eval = encoder.encode_frame(eval_frame)
        eval_ds = PairDataset(enc_eval, eval_frame["label"].to_numpy(dtype=np.int64), "none")

    dtype = resolve_dtype(cfg.model.dtype, device)
    args = _training_arguments(cfg, out, eval_ds is not None, len(train_ds), world, use_cuda, dtype)
    out.mkdir(parents=True, exist_ok=True)
    callbacks = [
        _finite_loss_callback(),
        _progress_log_callback(out / "train_log.jsonl"),
        *(extra_callbacks or []),
    ]
    trainer_kwargs = dict(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=PairCollator(tokenizer.pad_token_id),
        compute_metrics=compute_metrics if eval_ds is not None else None,
        callbacks=callbacks,
    )
    trainer = Trainer(**trainer_kwargs)
    has_checkpoint = any((out / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=bool(resume and has_checkpoint))
    metrics = {"train_rows": len(train_frame), "eval_rows": len(eval_frame), "train_items": len(train_ds)}
    if eval_ds is not None:
        ev = trainer.evaluate()
        metrics.update(
            {k.removeprefix("eval_"): float(v) for k, v in ev.items() if isinstance(v, (int, float))}
        )
    metrics["train_loss"] = next(
        (float(h["train_loss"]) for h in reversed(trainer.state.log_history) if "train_loss" in h), None
    )
    metrics["global_step"] = trainer.state.global_step

    if trainer.is_world_process_zero():
        for sub in ("adapter", "merged", "tokenizer"):
            shutil.rmtree(out / sub, ignore_errors=True)
        final = trainer.model
        if cfg.lora.enabled:
            final.save_pretrained(out / "adapter")
            make_adapter_portable(out / "adapter")
            if merge:
                merge_adapter(final, cfg.model.quantization).save_pretrained(out / "merged")
        else:
            final.save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "tokenizer")
        make_tokenizer_portable(out / "tokenizer")
        save_config(cfg, out / "config.yaml")
        write_manifest(
            out,
            cfg,
            base_path=cfg.model.path,
            fingerprint=data_fingerprint(frame),
            metrics=metrics,
            extra={"train_file": str(train_file), "eval_file": str(eval_file) if eval_file else None},
        )
        if verbose:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
            print(f"run written to {out}: {shown}")
    return TrainResult(out, metrics, len(train_frame), len(eval_frame))
