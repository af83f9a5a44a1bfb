"""One prompt template and a token budget shared fairly by prompt, response A and response B.

Training and inference both encode through :class:`PairEncoder`, so they cannot disagree on
template (``encoding.template``, see :mod:`arena_core.encoding.template`) or length. Each field
is tokenized once per dataset, in batch, by the fast tokenizer; the budget is then allocated per
row with plain integer arithmetic, and sequences are assembled from token pieces. Because the
allocation is computed once per row and reused for the swapped order, the swapped encoding is
exactly the original with the two response parts exchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from arena_core.config import EncodingConfig
from arena_core.encoding.template import (  # noqa: F401  (the marker strings, importable from here)
    PROMPT_HEADER,
    QUESTION_SUFFIX,
    RESPONSE_A_HEADER,
    RESPONSE_B_HEADER,
    build_template,
    framing_tokens,
)

STRATEGIES = ("adaptive", "thirds")
# Text longer than this many characters per budget token is clipped head+tail before
# tokenizing: no tokenizer turns fewer than one character in 24 into a token, so nothing the
# budget could keep is lost, and a 10 MB answer costs no more than a long one.
CHARS_PER_TOKEN_CAP = 24


def allocate(
    needs: tuple[int, int, int], available: int, strategy: str, weights, min_tokens: int
) -> list[int]:
    """Split ``available`` tokens among three parts that want ``needs`` tokens; never more than ``available``.

    adaptive: weighted water-filling. Part i gets ``min(need_i, max(floor_i, t * w_i))`` for the one
    water level ``t`` at which the parts use exactly the budget, so a part needing less than its
    share keeps its need and the rest flows to the others, and every non-empty part keeps at least
    ``floor_i = min(need_i, min_tokens)``. Floors come before shares: a part is never fixed at its
    need while a floor elsewhere still has to fit. When even the floors do not fit they are
    shared out the same way. thirds: each part is capped at a fixed third.
    """
    needs = [max(0, int(n)) for n in needs]
    available = max(0, int(available))
    if strategy == "thirds":
        third = available // 3
        return [min(n, third) for n in needs]
    if strategy != "adaptive":
        raise ValueError(f"unknown truncation strategy {strategy!r}; choose from {STRATEGIES}")
    if sum(needs) <= available:
        return needs
    floors = [min(n, max(0, int(min_tokens))) for n in needs]
    if sum(floors) >= available:
        # Not even the floors fit (PairEncoder never asks for this): share the budget among them.
        if sum(floors) == available:
            return floors
        return _water_fill([0, 0, 0], floors, [1.0, 1.0, 1.0], available)
    w = [max(float(x), 1e-9) for x in weights]
    return _water_fill(floors, needs, w, available)


def _water_fill(lows: list[int], highs: list[int], w: list[float], available: int) -> list[int]:
    """Integers ``lows <= x <= highs`` summing to ``available`` (``sum(lows) <= available < sum(highs)``),
    each ``x_i`` the integer part of ``clip(t * w_i, low_i, high_i)`` for one level ``t``; the few
    tokens rounding leaves go to the parts cut the most by it (ties: part order)."""

    def level(t: float) -> list[float]:
        return [min(h, max(lo, t * wi)) for lo, h, wi in zip(lows, highs, w)]

    # The total is piecewise linear in t with kinks where a part meets its low or high bound:
    # find the segment that holds the budget and solve on it.
    kinks = sorted({lo / wi for lo, wi in zip(lows, w)} | {h / wi for h, wi in zip(highs, w)})
    t_lo, s_lo = 0.0, float(sum(lows))
    t = kinks[-1]
    for k in kinks:
        s_k = sum(level(k))
        if s_k >= available:
            t = t_lo + (available - s_lo) * (k - t_lo) / (s_k - s_lo) if s_k > s_lo else k
            break
        t_lo, s_lo = k, s_k
    exact = level(t)
    alloc = [min(h, max(lo, int(x))) for x, lo, h in zip(exact, lows, highs)]
    leftover = available - sum(alloc)
    order = sorted(range(3), key=lambda i: (-(exact[i] - alloc[i]), i))
    while leftover > 0:
        grown = False
        for i in order:
            if leftover > 0 and alloc[i] < highs[i]:
                alloc[i] += 1
                leftover -= 1
                grown = True
        if not grown:
            break
    return alloc


@dataclass
class EncodedPairs:
    """Token ids for every row in both A/B orders, plus what truncation did."""

    ids: np.ndarray  # row ids, in frame order
    input_ids: list[np.ndarray]  # order A then B
    input_ids_swapped: list[np.ndarray]  # order B then A
    part_tokens: np.ndarray  # (n, 3) tokens kept for prompt / A / B
    part_needs: np.ndarray  # (n, 3) tokens each part would need untruncated
    max_length: int

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def truncated_counts(self) -> dict[str, int]:
        cut = self.part_tokens < self.part_needs
        return {name: int(cut[:, i].sum()) for i, name in enumerate(("prompt", "response_a", "response_b"))}

    def summary(self) -> str:
        n = len(self.ids)
        cut = self.truncated_counts()
        lens = self.lengths
        mean = float(lens.mean()) if n else 0.0
        return (
            f"encoded {n} rows (max_length={self.max_length}, mean length {mean:.0f}); "
            f"truncated: prompt {cut['prompt']}, response_a {cut['response_a']}, response_b {cut['response_b']}"
        )

    def subset(self, index: np.ndarray) -> EncodedPairs:
        index = np.asarray(index)
        return EncodedPairs(
            ids=self.ids[index],
            input_ids=[self.input_ids[i] for i in index],
            input_ids_swapped=[self.input_ids_swapped[i] for i in index],
            part_tokens=self.part_tokens[index],
            part_needs=self.part_needs[index],
            max_length=self.max_length,
        )


class PairEncoder:
    """Encode (prompt, response_a, response_b) rows under one template and token budget."""

    def __init__(self, tokenizer, config: EncodingConfig | None = None):
        self.tokenizer = tokenizer
        self.config = config or EncodingConfig()
        if self.config.strategy not in STRATEGIES:
            raise ValueError(f"encoding.strategy={self.config.strategy!r}; choose from {STRATEGIES}")
        self._prefix, self._suffix = framing_tokens(tokenizer) or ([], [])
        self.template = build_template(
            self.config.template, tokenizer, self.config.chat_template, strip_bos=bool(self._prefix)
        )
        self._h_prompt, self._h_a, self._h_b, self._question = map(self._tokenize_piece, self.template.pieces)
        (self._marker,) = self._tokenize_many([self.config.truncation_marker])
        self._check_no_pad_in_template()
        fixed = len(self._prefix) + len(self._suffix) + len(self._h_prompt) + len(self._h_a)
        fixed += len(self._h_b) + len(self._question)
        self.available = self.config.max_length - fixed
        min_needed = 3 * max(self.config.min_part_tokens, len(self._marker) + 2)
        if self.available < min_needed:
            raise ValueError(
                f"encoding.max_length={self.config.max_length} leaves {self.available} tokens for content after "
                f"the template ({fixed} tokens); need at least {min_needed} "
                f"(3 parts x min_part_tokens={self.config.min_part_tokens})"
            )

    # ------------------------------------------------------------------ tokenizer plumbing
    def _tokenize_many(self, texts: list[str]) -> list[list[int]]:
        try:
            out = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)
        except TypeError:
            out = self.tokenizer(list(texts), add_special_tokens=False)
        return [list(x) for x in out["input_ids"]]

    def _tokenize_piece(self, segments) -> list[int]:
        """A template piece: chat-template text with its control tokens recognised, ours split like user text."""
        ids: list[int] = []
        for text, special in segments:
            if not text:
                continue
            if special:
                ids += list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            else:
                ids += self._tokenize_many([text])[0]
        return ids

    def _check_no_pad_in_template(self) -> None:
        """A pad token in the template would be taken for padding where the classifier looks for its read position.

        A decoder's classifier finds the last real token by looking for the pad id (transformers 4.47:
        the first one), so a pad inside every row (e.g. pad == BOS) makes it pool the wrong token.
        """
        pad = getattr(self.tokenizer, "pad_token_id", None)
        fixed = [*self._prefix, *self._suffix, *self._h_prompt, *self._h_a, *self._h_b, *self._question]
        if pad is not None and pad in fixed + self._marker:
            raise ValueError(
                f"encoding.template={self.config.template!r}: the tokenizer's pad token "
                f"{self.tokenizer.pad_token!r} (id {pad}) is part of the template (e.g. it is also BOS), and "
                "the classifier would take it for padding; load the tokenizer with "
                "arena_core.models.tokenizer.load_tokenizer (it picks a pad that is not), set "
                "encoding.chat_template=off, or give the tokenizer a dedicated pad token"
            )

    def _clip_chars(self, text: str) -> str:
        cap = CHARS_PER_TOKEN_CAP * self.config.max_length
        if len(text) <= 2 * cap:
            return text
        return text[:cap] + self.config.truncation_marker + text[-cap:]

    # ------------------------------------------------------------------ assembly
    def _cut(self, tokens: list[int], keep: int) -> list[int]:
        if len(tokens) <= keep:
            return tokens
        if keep <= len(self._marker) + 1:
            return tokens[:keep]
        body = keep - len(self._marker)
        head = max(1, int(round(body * self.config.head_fraction)))
        tail = body - head
        return tokens[:head] + self._marker + (tokens[len(tokens) - tail :] if tail > 0 else [])

    def _assemble(self, p: list[int], first: list[int], second: list[int]) -> np.ndarray:
        seq = (
            self._prefix
            + self._h_prompt
            + p
            + self._h_a
            + first
            + self._h_b
            + second
            + self._question
            + self._suffix
        )
        return np.asarray(seq, dtype=np.int32)

    def encode_tokens(
        self, p: list[int], a: list[int], b: list[int]
    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        cfg = self.config
        alloc = allocate(
            (len(p), len(a), len(b)), self.available, cfg.strategy, cfg.part_weights, cfg.min_part_tokens
        )
        pc, ac, bc = self._cut(p, alloc[0]), self._cut(a, alloc[1]), self._cut(b, alloc[2])
        return self._assemble(pc, ac, bc), self._assemble(pc, bc, ac), [len(pc), len(ac), len(bc)]

    def encode_frame(self, frame: pd.DataFrame, progress: bool = False) -> EncodedPairs:
        """Tokenize each text column once (in batch), then allocate and assemble per row."""
        columns = ("prompt", "response_a", "response_b")
        tokens = {}
        clipped_flags = {}
        for col in columns:
            raw = frame[col].tolist()
            clipped = [self._clip_chars(t) for t in raw]
            clipped_flags[col] = np.array([c is not r for c, r in zip(clipped, raw)])
            tokens[col] = self._tokenize_many(clipped) if clipped else []
        n = len(frame)
        fwd, rev = [], []
        kept = np.zeros((n, 3), dtype=np.int64)
        needs = np.zeros((n, 3), dtype=np.int64)
        from arena_core.data.progress import progress_bar

        rows = progress_bar(range(n), wanted=progress, desc="encode", unit="row")
        for i in rows:
            p, a, b = tokens["prompt"][i], tokens["response_a"][i], tokens["response_b"][i]
            f, r, k = self.encode_tokens(p, a, b)
            fwd.append(f)
            rev.append(r)
            kept[i] = k
            # A clipped text needed more than it has: count it as truncated.
            needs[i] = [len(x) + (1 if clipped_flags[c][i] else 0) for x, c in zip((p, a, b), columns)]
        return EncodedPairs(
            ids=frame["id"].to_numpy(),
            input_ids=fwd,
            input_ids_swapped=rev,
            part_tokens=kept,
            part_needs=needs,
            max_length=self.config.max_length,
        )

    def render(self, input_ids) -> str:
        """Decode one encoded sequence, for eyeballing the template."""
        return self.tokenizer.decode(list(map(int, input_ids)))
