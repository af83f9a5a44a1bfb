"""Inference engine vs a faithful seed-style loop, same model, same rows, same process.

Seed-style (what the public competition notebooks did): a torch ``DataLoader`` whose
``__getitem__`` tokenizes one row (``padding="max_length"`` to a fixed length, truncation), a fixed
batch size, rows in file order, one pass. Engine: ``PairEncoder`` tokenizes every row once, in
batch; ``predict_probs`` sorts by length and cuts token-budget batches; no ``DataLoader``.

    python benchmarks/bench_inference.py                         # tiny Gemma-2, synthetic rows
    python benchmarks/bench_inference.py --data ../shared/data/real_pref_dev.parquet
                                                                 # + Gemma-3 270M on real rows

Prints a Markdown table (ratios are what to compare; absolute seconds depend on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena_core.config import EncodingConfig, ModelConfig, PredictConfig  # noqa: E402
from arena_core.encoding.encoder import (
    PROMPT_HEADER,
    QUESTION_SUFFIX,
    RESPONSE_A_HEADER,
    RESPONSE_B_HEADER,
    PairEncoder,
)  # noqa: E402
from arena_core.inference.engine import predict_probs  # noqa: E402
from arena_core.inference.scoring import Scorer  # noqa: E402
from arena_core.models.backbones import TINY_CORPUS, make_tiny_gemma2  # noqa: E402
from arena_core.models.loading import load_classifier  # noqa: E402

# ----------------------------------------------------------------------------- seed-style baseline


class SeedDataset(torch.utils.data.Dataset):
    """One row per ``__getitem__``, tokenized on the spot and padded to ``max_length``."""

    def __init__(self, frame: pd.DataFrame, tokenizer, max_length: int):
        self.frame, self.tok, self.max_length = frame.reset_index(drop=True), tokenizer, max_length

    def __len__(self) -> int:
        return len(self.frame)

    def text(self, i: int) -> str:
        r = self.frame.iloc[i]
        return (
            PROMPT_HEADER
            + r["prompt"]
            + RESPONSE_A_HEADER
            + r["response_a"]
            + RESPONSE_B_HEADER
            + r["response_b"]
            + QUESTION_SUFFIX
        )

    def __getitem__(self, i: int) -> dict:
        enc = self.tok(
            self.text(i),
            max_length=self.max_length,
            truncation=True,
            padding="max_length",
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"][0], "attention_mask": enc["attention_mask"][0]}


def seed_style(model, frame, tokenizer, max_length: int, batch_size: int) -> tuple[np.ndarray, float, float]:
    """Returns (probs in frame order, seconds, padding efficiency)."""
    loader = torch.utils.data.DataLoader(
        SeedDataset(frame, tokenizer, max_length), batch_size=batch_size, shuffle=False, num_workers=0
    )
    probs, real, computed = [], 0, 0
    t = time.perf_counter()
    with torch.no_grad():
        for batch in loader:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            probs.append(torch.softmax(logits.float(), dim=-1).numpy())
            real += int(batch["attention_mask"].sum())
            computed += batch["attention_mask"].numel()
    return np.concatenate(probs), time.perf_counter() - t, real / computed


def engine(model, frame, tokenizer, enc_cfg: EncodingConfig, cfg: PredictConfig, tta: str) -> dict:
    t = time.perf_counter()
    encoded = PairEncoder(tokenizer, enc_cfg).encode_frame(frame)
    t_enc = time.perf_counter() - t
    res = predict_probs([Scorer(model, tokenizer.pad_token_id, "cpu")], encoded, cfg, tta=tta, progress=False)
    total = time.perf_counter() - t
    return {
        "probs": res.probs,
        "seconds": total,
        "encode_s": t_enc,
        "pad_eff": res.stats["padding_efficiency"],
        "encoded": encoded,
    }


def agreement(frame, tokenizer, max_length, encoded, seed_probs, eng_probs) -> tuple[int, float]:
    """Rows whose seed-style and engine token ids are identical, and the max |dp| on them."""
    ds = SeedDataset(frame, tokenizer, max_length)
    same = []
    for i in range(len(frame)):
        ids = tokenizer(ds.text(i), max_length=max_length, truncation=True)["input_ids"]
        same.append(list(ids) == encoded.input_ids[i].tolist())
    same = np.asarray(same)
    diff = float(np.abs(seed_probs[same] - eng_probs[same]).max()) if same.any() else float("nan")
    return int(same.sum()), diff


def compare(label, model, frame, tokenizer, args, max_length, with_swap: bool, repeats: int) -> list[dict]:
    """Run every path ``repeats`` times, interleaved, and keep each path's fastest run.

    The machine is shared: other jobs slow whichever run they overlap. The minimum is the run
    least disturbed, and interleaving gives every path the same chances.
    """
    model.eval()
    enc_cfg = EncodingConfig(max_length=max_length)
    cfg = PredictConfig(token_budget=args.token_budget, max_rows_per_batch=64)
    seed_style(model, frame.head(2), tokenizer, 64, 2)  # first-call overheads paid by neither timed run
    seed_name = f"seed-style (DataLoader, pad to {max_length}, batch {args.batch_size})"
    paths = {seed_name: [], "engine, no TTA (incl. tokenization)": []}
    if with_swap:
        paths["engine, swap TTA (2 passes)"] = []
    eff = {}
    for _ in range(repeats):
        seed_p, secs, eff[seed_name] = seed_style(model, frame, tokenizer, max_length, args.batch_size)
        paths[seed_name].append(secs)
        for name, tta in (
            ("engine, no TTA (incl. tokenization)", "none"),
            ("engine, swap TTA (2 passes)", "swap"),
        ):
            if name in paths:
                out = engine(model, frame, tokenizer, enc_cfg, cfg, tta)
                paths[name].append(out["seconds"])
                eff[name] = out["pad_eff"]
                if tta == "none":
                    eng = out
    n_same, dp = agreement(frame, tokenizer, max_length, eng["encoded"], seed_p, eng["probs"])
    lens = eng["encoded"].lengths
    rows = []
    for name, secs in paths.items():
        best = min(secs)
        rows.append(
            {
                "setup": label,
                "path": name,
                "rows_per_s": len(frame) / best,
                "pad_eff": eff[name],
                "seconds": best,
                "all_seconds": [round(x, 2) for x in secs],
            }
        )
    for r in rows:
        r["ratio"] = r["rows_per_s"] / rows[0]["rows_per_s"]
    rows[0]["note"] = (
        f"{len(frame)} rows, lengths p10/p50/p90 = {np.percentile(lens, 10):.0f}/{np.percentile(lens, 50):.0f}/"
        f"{np.percentile(lens, 90):.0f} tokens, {int((lens >= max_length - 1).sum())} at max_length; "
        f"computed tokens seed/engine {len(frame) * max_length / (lens.sum() / eff[rows[1]['path']]):.2f}x; "
        f"identical token ids on {n_same} rows, max |dp| there {dp:.1e}; best of {repeats} interleaved runs, "
        "all seconds: " + "; ".join(f"{r['path'].split(' (')[0]} {r['all_seconds']}" for r in rows)
    )
    return rows


# ----------------------------------------------------------------------------- data


def synthetic_rows(n: int, tokenizer, seed: int = 0) -> pd.DataFrame:
    """Rows with an arena-like length spread (log-normal, in tokens of ``tokenizer``).

    Assumed, not measured on the competition data: prompt median 40 tokens (sigma 1.0), each
    response median 250 (sigma 0.9); about a quarter of the rows exceed 1024 tokens.
    """
    rng = np.random.default_rng(seed)
    words = " ".join(TINY_CORPUS).split()
    per_word = len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) / len(words)

    def text(median, sigma):
        k = max(1, int(rng.lognormal(np.log(median), sigma) / per_word))
        return " ".join(rng.choice(words, size=k))

    return pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "prompt": [text(40, 1.0) for _ in range(n)],
            "response_a": [text(250, 0.9) for _ in range(n)],
            "response_b": [text(250, 0.9) for _ in range(n)],
        }
    )


def real_rows(path: str, n: int, sources: list[str], seed: int = 0) -> pd.DataFrame:
    from arena_core.data.competition import load_competition_file

    frame = load_competition_file(path).frame
    if sources and "source" in frame.columns:
        frame = frame[frame["source"].isin(sources)]
    return frame.sample(n=min(n, len(frame)), random_state=seed).reset_index(drop=True)


# ----------------------------------------------------------------------------- main


def markdown(rows: list[dict]) -> str:
    lines = [
        "| setup | path | rows/s | vs seed-style | padding efficiency | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setup']} | {r['path']} | {r['rows_per_s']:.2f} | {r['ratio']:.2f}x | {r['pad_eff']:.3f} | {r['seconds']:.1f} |"
        )
    notes = [f"- {r['setup']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + [""] + notes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--rows", type=int, default=160, help="synthetic rows for the tiny model (default: %(default)s)"
    )
    p.add_argument(
        "--max-length", type=int, default=1024, help="max_length for both paths (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=int, default=8, help="seed-style fixed batch size (default: %(default)s)"
    )
    p.add_argument(
        "--token-budget",
        type=int,
        default=4096,
        help="engine token budget; small on CPU, where batch size buys no speed (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument(
        "--data", help="real rows (e.g. ../shared/data/real_pref_dev.parquet) for the Gemma-3 270M run"
    )
    p.add_argument(
        "--real-rows", type=int, default=32, help="real rows for Gemma-3 270M (default: %(default)s)"
    )
    p.add_argument(
        "--real-max-length",
        type=int,
        nargs="+",
        default=[512, 1024],
        help="one run per value (default: %(default)s)",
    )
    p.add_argument(
        "--real-sources",
        default="",
        help="source values to sample real rows from, comma-separated; '' for all (default: %(default)s)",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="interleaved runs per path, tiny model (default: %(default)s)"
    )
    p.add_argument(
        "--real-repeats",
        type=int,
        default=2,
        help="interleaved runs per path, Gemma-3 (default: %(default)s)",
    )
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, CPU only; load average at start {os.getloadavg()[0]:.1f}"
    )

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = make_tiny_gemma2(Path(tmp) / "tiny")
        torch.manual_seed(0)
        model, tok = load_classifier(
            ModelConfig(path=str(path), dtype="fp32"), None, device="cpu", for_training=False
        )
        frame = synthetic_rows(args.rows, tok)
        rows += compare(
            f"tiny Gemma-2, synthetic, max_length {args.max_length}",
            model,
            frame,
            tok,
            args,
            args.max_length,
            True,
            args.repeats,
        )
        print(markdown(rows), flush=True)

    if args.data:
        from arena_core.models.gemma3 import gemma3_270m_checkpoint

        ckpt = gemma3_270m_checkpoint()
        torch.manual_seed(0)
        model, tok = load_classifier(
            ModelConfig(path=str(ckpt), dtype="fp32"), None, device="cpu", for_training=False
        )
        sources = [s for s in args.real_sources.split(",") if s]
        frame = real_rows(args.data, args.real_rows, sources)
        for max_length in args.real_max_length:
            rows += compare(
                f"Gemma-3 270M, real rows, max_length {max_length}",
                model,
                frame,
                tok,
                args,
                max_length,
                False,
                args.real_repeats,
            )
    print()
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
