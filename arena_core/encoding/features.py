"""Symmetric structural features of (prompt, response A, response B): what the feature run learns from.

Measured on real arena battles, what separates the preferred answer beyond its length is its shape:
lines, paragraphs and lists (markdown structure), repetition, refusal and apology phrases near the
start, how much of the prompt it takes up, whether it is written in the prompt's script, whether it
stops mid-sentence. Every count is made three ways (characters, whitespace words, and *terms*:
words, with each Chinese / Japanese / Korean character a term of its own) so languages without
spaces are measured like the others.

Each row becomes two blocks of columns: *anti* columns that change sign when A and B are swapped
(A - B differences and log ratios) and *sym* columns that do not (prompt statistics, totals, how
alike the two answers are). :func:`swap_matrix` therefore gives the swapped row exactly, without
recomputing anything, and a model trained on both orders and averaged with its swapped prediction
carries no position at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FEATURE_SET", "PairFeatures", "pair_features", "stack_features", "swap_matrix", "text_stats"]

# Bumped whenever a feature changes meaning: a run records it, and scoring refuses another set.
FEATURE_SET = "arena_core.features/1"

# Characters past this point are not searched by the costlier statistics (terms, repetition):
# a 200k-character answer costs what a 20k one does; plain counts still see the whole text.
_SCAN_CHARS = 20_000
_HEAD_CHARS = 300  # where a refusal or apology shows: the first sentences

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff"
_CJK_RE = re.compile(f"[{_CJK}]")
_TERM_RE = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+")
_SCRIPTS = {
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "cjk": _CJK_RE,
    "arabic": re.compile(r"[\u0600-\u06ff]"),
    "other": re.compile(r"[\u0370-\u03ff\u0590-\u05ff\u0900-\u0dff\u0e00-\u0e7f\u10a0-\u10ff]"),
}
_DIGIT_RE = re.compile(r"\d")
_UPPER_RE = re.compile(r"[A-Z\u0410-\u042f]")
_LIST_RE = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d{1,3}[.)\u3001])[ \t]", re.MULTILINE)
_HEADER_RE = re.compile(r"^[ \t]*#{1,6}[ \t]", re.MULTILINE)
_TABLE_RE = re.compile(r"^[ \t]*\|", re.MULTILINE)
_SENTENCE_RE = re.compile(r"[.!?\u3002\uff01\uff1f\u061f](?:\s|$)|[\u3002\uff01\uff1f]")
_URL_RE = re.compile(r"https?://")
_EMOJI_RE = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_CLEAN_END = set(".!?)]}\"'`*\u3002\uff01\uff1f\u300d\u300f\uff09:;\u2026>|")

# Refusals and apologies in the WSDM languages, looked for in the first sentences only.
_REFUSAL_RE = re.compile(
    "|".join(
        [
            # English
            r"\bi(?:'m| am) (?:sorry|afraid|unable|not able)\b",
            r"\bi (?:can(?:'|no)t|cannot|won't|will not|am not able to) (?:help|assist|provide|do|comply|fulfil)",
            r"\bi apologi[sz]e\b",
            r"\bas an ai\b",
            r"\b(?:i'm|i am) (?:just )?an? (?:ai|language model)\b",
            r"\bsorry,? but\b",
            # Chinese
            "抱歉|对不起|對不起|我不能|我无法|我無法|作为一个人工智能|作为ai|作為一個人工智慧|无法提供|無法提供",
            # Japanese
            "申し訳|すみません|できません|お答えできません",
            # Korean
            "죄송|미안합니다|할 수 없습니다|도와드릴 수 없",
            # Russian
            r"извин|к сожалению|я не могу|не могу помочь|как ии|как языковая модель",
            # Spanish
            r"lo siento|lo lamento|no puedo|disculp|como (?:una )?ia\b|como modelo de lenguaje",
            # Portuguese
            r"desculp|sinto muito|não posso|nao posso|como uma ia\b|como um modelo de linguagem",
            # German
            r"es tut mir leid|entschuldig|ich kann (?:nicht|leider)|leider kann ich|als ki\b|als sprachmodell",
            # French
            r"je suis désolé|désolé|je ne peux pas|je regrette|en tant qu'(?:ia|intelligence)",
            # Italian
            r"mi dispiace|mi scuso|non posso|scusa|come (?:un'|una )?ia\b|come modello linguistico",
            # Vietnamese
            r"xin lỗi|rất tiếc|tôi không thể|là một ai|là một mô hình ngôn ngữ",
        ]
    ),
    re.IGNORECASE,
)

# Per-text statistics, in the column order of :func:`text_stats`.
COUNTS = (
    "chars",
    "words",
    "terms",
    "cjk_chars",
    "lines",
    "paragraphs",
    "list_items",
    "headers",
    "code_fences",
    "bold",
    "table_rows",
    "sentences",
    "questions",
    "exclaims",
    "urls",
    "emojis",
    "digits",
    "uppercase",
)
SHARES = (
    "unique_terms",
    "repeated_trigrams",
    "avg_term_chars",
    "refusal",
    "clean_end",
    "empty",
    *(f"script_{name}" for name in _SCRIPTS),
)
STAT_NAMES = COUNTS + SHARES


def _trigram_repetition(terms: list[str]) -> float:
    """Share of term trigrams that repeat an earlier one: loops and copy-paste padding."""
    n = len(terms) - 2
    if n <= 1:
        return 0.0
    grams = set(zip(terms, terms[1:], terms[2:]))
    return 1.0 - len(grams) / n


def _one_text(text: str) -> tuple[list[float], set[str]]:
    """One text's statistics (STAT_NAMES order) and its set of lower-cased terms."""
    scan = text[:_SCAN_CHARS]
    terms = _TERM_RE.findall(scan.lower())
    n_terms = len(terms)
    term_set = set(terms)
    chars = len(text)
    script_counts = [len(rx.findall(scan)) for rx in _SCRIPTS.values()]
    letters = sum(script_counts)
    stripped = text.rstrip()
    stats = [
        chars,
        len(text.split()),
        n_terms,
        script_counts[2],
        text.count("\n") + 1 if chars else 0,
        text.count("\n\n"),
        len(_LIST_RE.findall(scan)),
        len(_HEADER_RE.findall(scan)),
        text.count("```"),
        text.count("**"),
        len(_TABLE_RE.findall(scan)),
        len(_SENTENCE_RE.findall(scan)),
        text.count("?") + text.count("\uff1f"),
        text.count("!") + text.count("\uff01"),
        len(_URL_RE.findall(scan)),
        len(_EMOJI_RE.findall(scan)),
        len(_DIGIT_RE.findall(scan)),
        len(_UPPER_RE.findall(scan)),
        len(term_set) / n_terms if n_terms else 0.0,
        _trigram_repetition(terms),
        sum(map(len, terms)) / n_terms if n_terms else 0.0,
        1.0 if _REFUSAL_RE.search(text[:_HEAD_CHARS]) else 0.0,
        1.0 if stripped and stripped[-1] in _CLEAN_END else 0.0,
        0.0 if stripped else 1.0,
        *((c / letters if letters else 0.0) for c in script_counts),
    ]
    return stats, term_set


def text_stats(texts: Sequence[str]) -> np.ndarray:
    """``(len(texts), len(STAT_NAMES))`` statistics of each text (see the module docstring)."""
    out = np.empty((len(texts), len(STAT_NAMES)), dtype=np.float64)
    for i, text in enumerate(texts):
        out[i] = _one_text(text)[0]
    return out


def _overlap(a: set[str], b: set[str]) -> float:
    """Share of ``a``'s terms that ``b`` also uses (0 when ``a`` has none)."""
    return len(a & b) / len(a) if a else 0.0


def _jaccard(a: set[str], b: set[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _turns(prompt: str) -> int:
    """User turns written into one prompt (hh-rlhf "Human:", "User:" lines, LMSYS joined turns)."""
    marks = len(re.findall(r"(?:^|\n)\s*(?:Human|User|USER|用户)\s*[:：]", prompt))
    return max(1, marks)


@dataclass
class PairFeatures:
    """Feature matrix of a frame's rows in the shown order; ``anti`` columns flip sign under a swap."""

    values: np.ndarray  # (n, n_features) float64
    names: list[str]
    anti: np.ndarray  # (n_features,) bool

    def swapped(self) -> np.ndarray:
        return swap_matrix(self.values, self.anti)


def swap_matrix(values: np.ndarray, anti: np.ndarray) -> np.ndarray:
    """The features of the same rows with A and B exchanged (exact: anti columns negated)."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[:, anti] *= -1.0
    return out


def _log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(a, 0.0)) - np.log1p(np.maximum(b, 0.0))


def pair_features(frame: pd.DataFrame, progress: bool = False) -> PairFeatures:
    """Features of every row of a canonical frame (``prompt``, ``response_a``, ``response_b``)."""
    n = len(frame)
    prompts = frame["prompt"].astype(str).tolist()
    resp_a = frame["response_a"].astype(str).tolist()
    resp_b = frame["response_b"].astype(str).tolist()
    k = len(STAT_NAMES)
    sa, sb, sp = np.empty((n, k)), np.empty((n, k)), np.empty((n, k))
    rel = np.empty((n, 7))  # prompt coverage a/b, prompt share a/b, script match a/b, a~b jaccard
    from arena_core.data.progress import progress_bar

    rows = progress_bar(range(n), wanted=progress, desc="features", unit="row")
    for i in rows:
        st_p, terms_p = _one_text(prompts[i])
        st_a, terms_a = _one_text(resp_a[i])
        st_b, terms_b = _one_text(resp_b[i])
        sp[i], sa[i], sb[i] = st_p, st_a, st_b
        script_p = np.asarray(st_p[-len(_SCRIPTS) :])
        rel[i] = (
            _overlap(terms_p, terms_a),
            _overlap(terms_p, terms_b),
            _overlap(terms_a, terms_p),
            _overlap(terms_b, terms_p),
            float(script_p @ np.asarray(st_a[-len(_SCRIPTS) :])),
            float(script_p @ np.asarray(st_b[-len(_SCRIPTS) :])),
            _jaccard(terms_a, terms_b),
        )
    counts = slice(0, len(COUNTS))
    shares = slice(len(COUNTS), k)
    anti_blocks = {
        "diff": sa - sb,
        "logratio": _log_ratio(sa[:, counts], sb[:, counts]),
        "rel_diff": rel[:, [0, 2, 4]] - rel[:, [1, 3, 5]],
    }
    total = sa[:, counts] + sb[:, counts]
    sym_blocks = {
        "prompt": np.column_stack([np.log1p(sp[:, counts]), sp[:, shares]]),
        "total": np.log1p(total),
        "absdiff": np.abs(_log_ratio(sa[:, counts], sb[:, counts])),
        "pair": np.column_stack(
            [rel[:, 6], [_turns(p) for p in prompts], (sa[:, 0] == sb[:, 0]).astype(float)]
        ),
    }
    names = (
        [f"diff_{s}" for s in STAT_NAMES]
        + [f"logratio_{s}" for s in COUNTS]
        + ["diff_prompt_coverage", "diff_prompt_share", "diff_script_match"]
    )
    n_anti = len(names)
    names += (
        [f"prompt_{s}" for s in STAT_NAMES]
        + [f"total_{s}" for s in COUNTS]
        + [f"absdiff_{s}" for s in COUNTS]
        + ["a_b_jaccard", "prompt_turns", "same_length"]
    )
    values = np.column_stack([*anti_blocks.values(), *sym_blocks.values()])
    anti = np.zeros(len(names), dtype=bool)
    anti[:n_anti] = True
    if values.shape[1] != len(names):  # a feature added to one list and not the other
        raise AssertionError(f"{values.shape[1]} feature columns, {len(names)} names")
    values[~np.isfinite(values)] = 0.0
    return PairFeatures(values, names, anti)


def describe() -> str:
    """One line for manifests and reports: what the feature set counts."""
    return (
        f"{FEATURE_SET}: {len(STAT_NAMES)} statistics per text (counts by characters, words and terms; "
        "markdown structure; repetition; refusal phrases; scripts) as A-B differences and log ratios, "
        "plus prompt statistics, totals and A/B similarity"
    )


def stack_features(inputs: dict[str, np.ndarray], pair: PairFeatures | None) -> PairFeatures:
    """A second stage's columns: each input model's probabilities as logits (A over B flips sign
    under a swap; the tie logit does not), then the pair features when given."""
    cols, names, anti = [], [], []
    for name, probs in inputs.items():
        p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
        key = re.sub(r"[^\w.-]", "_", name)  # LightGBM refuses JSON characters in feature names
        cols.append(np.log(p[:, 0]) - np.log(p[:, 1]))
        names.append(f"input_{key}__logit_a_b")
        anti.append(True)
        if p.shape[1] == 3:
            cols.append(np.log(p[:, 2]) - np.log(np.maximum(p[:, 0], p[:, 1])))
            names.append(f"input_{key}__logit_tie")
            anti.append(False)
    values = np.column_stack(cols) if cols else np.zeros((0, 0))
    if pair is not None:
        values = np.column_stack([values, pair.values]) if cols else pair.values
        names += pair.names
        anti += list(pair.anti)
    return PairFeatures(values, names, np.asarray(anti, dtype=bool))
