"""Pair features: exact symmetry under an A/B swap, counting in languages without spaces, refusals
in the WSDM languages, and texts that are empty or huge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_core.encoding.features import STAT_NAMES, pair_features, stack_features, text_stats


def _stat(text: str, name: str) -> float:
    return float(text_stats([text])[0, STAT_NAMES.index(name)])


def _frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["prompt", "response_a", "response_b"]).assign(
        id=[f"r{i}" for i in range(len(rows))]
    )


def test_swapping_a_and_b_gives_exactly_the_swapped_matrix():
    frame = _frame(
        [
            (
                "How do I boil an egg?",
                "Boil it.",
                "Put the egg in boiling water.\n\n- nine minutes\n- cool it",
            ),
            ("如何学习中文？", "每天练习听说读写。", "抱歉，我不能回答。"),
            ("", "", "Only B says something."),
        ]
    )
    feats = pair_features(frame)
    swapped = pair_features(frame.rename(columns={"response_a": "response_b", "response_b": "response_a"}))
    assert np.array_equal(feats.swapped(), swapped.values)
    assert feats.anti.any() and (~feats.anti).any()
    # the anti columns really are the A-B ones, the sym columns do not move
    assert not np.array_equal(feats.values[:, feats.anti], swapped.values[:, feats.anti])
    assert np.array_equal(feats.values[:, ~feats.anti], swapped.values[:, ~feats.anti])


def test_chinese_and_japanese_are_counted_by_character_not_by_spaces():
    zh = "我们今天学习中文语法。"  # 10 CJK characters, no space
    ja = "これはテストです。"  # kana only
    assert _stat(zh, "words") == 1  # whitespace words see one blob
    assert _stat(zh, "terms") == 10  # terms see every character
    assert _stat(zh, "cjk_chars") == 10
    assert _stat(ja, "terms") == 8
    assert _stat(zh, "script_cjk") == pytest.approx(1.0)
    assert _stat("Hello brave new world", "terms") == 4
    # a Chinese answer to a Chinese prompt matches its script; an English answer does not
    frame = _frame(
        [("请解释一下光合作用。", "光合作用是植物利用阳光制造养分的过程。", "Photosynthesis makes sugar.")]
    )
    feats = pair_features(frame)
    diff = feats.values[0, feats.names.index("diff_script_match")]
    assert diff == pytest.approx(1.0)
    coverage = feats.values[0, feats.names.index("diff_prompt_coverage")]
    assert coverage > 0  # A shares characters with the prompt, B none


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "抱歉，我无法提供这些信息。",
        "申し訳ありませんが、お答えできません。",
        "죄송하지만 도와드릴 수 없습니다.",
        "Извините, я не могу помочь с этим.",
        "Lo siento, no puedo ayudar con eso.",
        "Desculpe, não posso ajudar com isso.",
        "Es tut mir leid, ich kann nicht helfen.",
        "Je suis désolé, je ne peux pas vous aider.",
        "Mi dispiace, non posso aiutarti.",
        "Xin lỗi, tôi không thể giúp bạn việc này.",
    ],
)
def test_refusals_are_found_in_the_wsdm_languages(text):
    assert _stat(text, "refusal") == 1.0


def test_a_refusal_late_in_a_long_answer_is_not_a_refusal():
    text = "Here is a full answer. " * 40 + "I'm sorry if this was long."
    assert _stat(text, "refusal") == 0.0


def test_markdown_structure_and_repetition_are_counted():
    md = "# Title\n\n- one\n- two\n1. three\n\n| a | b |\n```py\nx\n```\n**bold**"
    assert _stat(md, "list_items") == 3
    assert _stat(md, "headers") == 1
    assert _stat(md, "table_rows") == 1
    assert _stat(md, "code_fences") == 2
    assert _stat(md, "paragraphs") == 2
    loop = "the cat sat on the mat " * 20
    assert _stat(loop, "repeated_trigrams") > 0.7
    assert _stat("one two three four five six", "repeated_trigrams") == 0.0
    assert _stat("An answer that stops mid", "clean_end") == 0.0
    assert _stat("An answer that ends.", "clean_end") == 1.0


def test_empty_and_huge_texts_give_finite_features_quickly():
    huge = ("word " * 400_000) + "end."  # 2 MB
    frame = _frame([("", "", huge), ("p", "\x00\ufffd", "")])
    feats = pair_features(frame)
    assert np.isfinite(feats.values).all()
    assert feats.values[0, feats.names.index("diff_chars")] == -len(huge)
    assert _stat("", "empty") == 1.0 and _stat("   ", "empty") == 1.0


def test_stack_columns_flip_only_the_a_over_b_logit():
    probs = {"gemma/cv,1": np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])}
    feats = stack_features(probs, None)
    assert feats.names == ["input_gemma_cv_1__logit_a_b", "input_gemma_cv_1__logit_tie"]
    assert feats.anti.tolist() == [True, False]
    swapped = stack_features({"gemma/cv,1": probs["gemma/cv,1"][:, [1, 0, 2]]}, None)
    assert np.allclose(feats.swapped(), swapped.values)
