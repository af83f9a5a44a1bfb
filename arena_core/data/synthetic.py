"""A small, synthetic, competition-shaped folder so every command can run with no downloads.

The rows are made up (clearly labelled as such in the files and the demo's output): prompts in
several languages, one helpful answer and one unhelpful answer in random A/B order. The signal
is learnable but not trivially "longer wins", so the length baseline is not perfect on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

_TOPICS = {
    "English": [
        (
            "How do I boil an egg?",
            "Put the egg in boiling water for about nine minutes, then cool it in cold water.",
        ),
        ("What is the capital of France?", "The capital of France is Paris."),
        (
            "Give me a tip to sleep better.",
            "Keep a regular schedule and avoid screens for an hour before bed.",
        ),
        ("How can I learn Python quickly?", "Write small programs every day and read other people's code."),
        ("Why is the sky blue?", "Sunlight scatters off air molecules, and blue light scatters the most."),
    ],
    "Spanish": [
        ("¿Cómo preparo un café?", "Calienta agua, añade café molido y deja reposar cuatro minutos."),
        ("¿Cuál es la capital de España?", "La capital de España es Madrid."),
        ("Dame un consejo para estudiar.", "Estudia en bloques cortos y repasa al día siguiente."),
    ],
    "Chinese": [
        ("如何学习中文？", "每天练习听说读写，并和母语者交流。"),
        ("中国的首都是哪里？", "中国的首都是北京。"),
        ("怎样保持健康？", "均衡饮食，规律运动，保证充足睡眠。"),
    ],
    "Russian": [
        ("Как выучить язык?", "Занимайтесь каждый день и говорите с носителями языка."),
        ("Какая столица России?", "Столица России — Москва."),
    ],
    "French": [
        (
            "Comment faire du pain ?",
            "Mélangez farine, eau, sel et levure, puis laissez lever avant de cuire.",
        ),
        ("Quelle est la capitale de l'Italie ?", "La capitale de l'Italie est Rome."),
    ],
    "German": [
        ("Wie koche ich Nudeln?", "Nudeln in kochendes Salzwasser geben und etwa zehn Minuten kochen."),
    ],
}
_BAD_ANSWERS = [
    "I don't know.",
    "Whatever. Figure it out yourself.",
    "No.",
    "That question is boring and I will not answer it, because answering questions like this is a waste "
    "of everybody's time and nobody should ever ask it again.",
    "Bananas are yellow. Bananas are yellow. Bananas are yellow.",
    "As an AI I cannot help with that.",
]
_GOOD_EXTRAS = ["", " I hope this helps!", " Let me know if you want more detail.", " Good luck!"]
_LANG_WEIGHTS = {
    "English": 0.45,
    "Spanish": 0.15,
    "Chinese": 0.15,
    "Russian": 0.1,
    "French": 0.1,
    "German": 0.05,
}
SYNTHETIC_NOTE = "SYNTHETIC demo data made by arena_core.data.synthetic: not real human preferences"


def _row_id(kind: str, i: int, seed: int) -> str:
    return hashlib.sha256(f"{kind}-{seed}-{i}".encode()).hexdigest()[:32]


def make_rows(n: int, seed: int, kind: str) -> pd.DataFrame:
    """``n`` synthetic rows in the WSDM train schema."""
    rng = np.random.default_rng(seed)
    langs = list(_LANG_WEIGHTS)
    probs = np.array([_LANG_WEIGHTS[x] for x in langs])
    rows = []
    for i in range(n):
        lang = langs[rng.choice(len(langs), p=probs / probs.sum())]
        prompt, good = _TOPICS[lang][rng.integers(len(_TOPICS[lang]))]
        good = good + _GOOD_EXTRAS[rng.integers(len(_GOOD_EXTRAS))]
        bad = _BAD_ANSWERS[rng.integers(len(_BAD_ANSWERS))]
        a_wins = bool(rng.integers(2))
        rows.append(
            {
                "id": _row_id(kind, i, seed),
                "prompt": prompt,
                "response_a": good if a_wins else bad,
                "response_b": bad if a_wins else good,
                "winner": "model_a" if a_wins else "model_b",
                "model_a": "synthetic-good" if a_wins else "synthetic-bad",
                "model_b": "synthetic-bad" if a_wins else "synthetic-good",
                "language": lang,
            }
        )
    return pd.DataFrame(rows)


def make_demo_competition(out_dir: str | Path, n_train: int = 400, n_test: int = 120, seed: int = 0) -> Path:
    """Write ``train.parquet``, ``test.parquet``, ``sample_submission.csv`` (+ labels for scoring).

    ``test_labels.parquet`` holds the test winners so the demo can score itself; a real
    competition folder has no such file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = make_rows(n_train, seed, "train")
    test_full = make_rows(n_test, seed + 1, "test")
    train.to_parquet(out / "train.parquet", index=False)
    test = test_full.drop(columns=["winner", "model_a", "model_b"]).assign(scored=True)
    test.to_parquet(out / "test.parquet", index=False)
    test_full.to_parquet(out / "test_labels.parquet", index=False)
    pd.DataFrame({"id": test["id"], "winner": "model_a"}).to_csv(out / "sample_submission.csv", index=False)
    (out / "README.txt").write_text(SYNTHETIC_NOTE + "\n", encoding="utf-8")
    return out
