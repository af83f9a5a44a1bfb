"""Does the feature run kind beat "the longer answer wins" on real human preferences? And how fast is it?

The feature model (``configs/features.yaml``: LightGBM over the pair features, both A/B orders) on
the real pairs of ``../shared/data``, through the library code the run kind uses:

* in-domain: 5-fold CV grouped by prompt (no prompt on both sides of a fold), per source, 2-class
  on the rows without a tie and 3-class where the data has ties;
* cross-source transfer: trained on one source (or file), scored on another it never saw;
* every number beside the length baseline on the same rows, with the paired 95 % interval of the
  difference (``arena_core.evaluation.length.versus_length``) and a plain verdict;
* speed: features and predictions for 25,000 rows (resampled real rows), and training on them.

    python benchmarks/bench_features.py            # about 2 minutes on 2 CPU cores

Writes benchmarks/results/features.json and .md (``--out``) and prints the tables.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arena_core.config import BoosterConfig  # noqa: E402
from arena_core.data.competition import load_competition_file  # noqa: E402
from arena_core.encoding.features import FEATURE_SET, pair_features  # noqa: E402
from arena_core.evaluation.length import versus_length  # noqa: E402
from arena_core.models.booster import fit_booster, predict_both_orders  # noqa: E402
from benchmarks.results_io import write_results  # noqa: E402

DATA = REPO.parent / "shared" / "data"
FILES = {
    "real_pref_dev": DATA / "real_pref_dev.parquet",
    "mtbench_human_dev": DATA / "mtbench_human_dev.parquet",
}
DEFAULT_OUT = REPO / "benchmarks" / "results" / "features.json"


def load(path: Path, k: int) -> pd.DataFrame:
    """The canonical frame as ``arena`` reads it (``source`` included); ties dropped for 2 classes."""
    frame = load_competition_file(path).frame
    if k == 2:
        frame = frame[frame["label"] != 2]
    return frame.reset_index(drop=True)


def fit(frame: pd.DataFrame, feats, k: int, seed: int):
    groups = pd.factorize(frame["prompt"])[0]
    labels = frame["label"].to_numpy(dtype=np.int64)
    return fit_booster(
        feats.values, labels, feats.anti, feats.names, BoosterConfig(),
        num_labels=k, seed=seed, feature_set=FEATURE_SET, groups=groups, log=lambda *_: None,
    )  # fmt: skip


def grouped_folds(frame: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    codes = pd.factorize(frame["prompt"])[0]
    return np.random.default_rng(seed).permutation(codes.max() + 1)[codes] % n


def row(name: str, what, **extra) -> dict:
    return {
        "name": name,
        **extra,
        **{k: getattr(what, k) for k in what.__dataclass_fields__},
        "verdict": what.verdict,
    }


def in_domain(frame: pd.DataFrame, k: int, folds: int, seed: int) -> tuple[list[dict], np.ndarray]:
    feats = pair_features(frame)
    fold = grouped_folds(frame, folds, seed)
    oof = np.zeros((len(frame), k))
    for f in range(folds):
        held = fold == f
        sub = type(feats)(feats.values[~held], feats.names, feats.anti)
        oof[held] = predict_both_orders(fit(frame[~held], sub, k, seed), feats.values[held])[0]
    rows = [row("all sources", versus_length(frame, oof))]
    if "source" in frame.columns and frame["source"].nunique() > 1:
        for src, part in frame.groupby("source", sort=False):
            rows.append(row(f"  {src}", versus_length(part, oof[part.index.to_numpy()])))
    return rows, oof


def transfer(train: pd.DataFrame, test: pd.DataFrame, k: int, seed: int, name: str) -> dict:
    model = fit(train, pair_features(train), k, seed)
    probs = predict_both_orders(model, pair_features(test).values)[0]
    return row(name, versus_length(test, probs), train_rows=len(train))


def speed(n: int, seed: int) -> dict:
    """Features + predictions (both orders) for ``n`` resampled real rows, and training on them."""
    pool = pd.concat([load(p, 2) for p in FILES.values()], ignore_index=True)
    rows = pool.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    rows["id"] = [f"s{i}" for i in range(n)]
    t = time.perf_counter()
    feats = pair_features(rows)
    t_feats = time.perf_counter() - t
    t = time.perf_counter()
    model = fit(rows, feats, 2, seed)
    t_train = time.perf_counter() - t
    t = time.perf_counter()
    predict_both_orders(model, pair_features(rows).values)
    t_predict = time.perf_counter() - t
    chars = rows[["prompt", "response_a", "response_b"]].apply(lambda c: c.str.len()).to_numpy().sum(axis=1)
    return {
        "rows": n,
        "features_s": round(t_feats, 1),
        "features_and_predict_s": round(t_predict, 1),
        "train_s": round(t_train, 1),
        "rounds": model.rounds,
        "median_chars_per_row": int(np.median(chars)),
    }


def markdown(report: dict) -> str:
    def table(rows: list[dict]) -> str:
        head = (
            "| rows | n | accuracy | length | gain (95% CI) | log loss | length | gain (95% CI) | verdict |\n"
        )
        head += "|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
        for r in rows:
            head += (
                f"| {r['name']} | {r['n']} | {r['accuracy']:.3f} | {r['length_accuracy']:.3f} | "
                f"{r['gain_accuracy']:+.3f} ± {r['gain_accuracy_half']:.3f} | {r['log_loss']:.3f} | "
                f"{r['length_log_loss']:.3f} | {-r['gain_log_loss']:+.3f} ± {r['gain_log_loss_half']:.3f} | "
                f"{r['verdict']} |\n"
            )
        return head

    parts = [f"Command: `{report['command']}`; {report['machine']}; feature set `{FEATURE_SET}`.\n"]
    for title, rows in report["tables"].items():
        parts += [f"\n### {title}\n\n", table(rows)]
    s = report["speed"]
    parts.append(
        f"\n### speed\n\n{s['rows']:,} resampled real rows (median {s['median_chars_per_row']:,} characters per row): "
        f"features {s['features_s']} s, features + predictions (both orders) {s['features_and_predict_s']} s, "
        f"training {s['train_s']} s ({s['rounds']} rounds).\n"
    )
    return "".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speed-rows", type=int, default=25_000)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    started = time.perf_counter()
    tables: dict[str, list[dict]] = {}
    pref2, mt2, mt3 = (
        load(FILES["real_pref_dev"], 2),
        load(FILES["mtbench_human_dev"], 2),
        load(FILES["mtbench_human_dev"], 3),
    )
    tables["in-domain CV (grouped by prompt), real_pref_dev, 2-class"] = in_domain(
        pref2, 2, args.folds, args.seed
    )[0]
    tables["in-domain CV (grouped by prompt), mtbench_human_dev, 2-class (ties dropped)"] = in_domain(
        mt2, 2, args.folds, args.seed
    )[0]
    tables["in-domain CV (grouped by prompt), mtbench_human_dev, 3-class (ties learned)"] = in_domain(
        mt3, 3, args.folds, args.seed
    )[0]
    cross = [
        transfer(pref2, mt2, 2, args.seed, "real_pref_dev -> mtbench_human_dev"),
        transfer(mt2, pref2, 2, args.seed, "mtbench_human_dev -> real_pref_dev"),
    ]
    for src in pref2["source"].unique():
        held = pref2["source"] == src
        cross.append(
            transfer(
                pref2[~held], pref2[held].reset_index(drop=True), 2, args.seed, f"other sources -> {src}"
            )
        )
    tables["cross-source transfer (trained on one, scored on another never seen), 2-class"] = cross
    report = {
        "command": "python benchmarks/bench_features.py" + (" " + " ".join(argv) if argv else ""),
        "machine": f"{platform.machine()} CPU, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "tables": tables,
        "speed": speed(args.speed_rows, args.seed),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_results(args.out, report, markdown(report), f"{report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
