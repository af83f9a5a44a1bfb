"""The text around prompt, response A and response B: a marker template and an LLM-judge template.

A template is four fixed pieces, ``head + PROMPT + sep_a + A + sep_b + B + tail``; the encoder
tokenizes them once and shares the rest of the budget among the three parts, so any template gets
the same balanced truncation and the same exact A/B swap.

* ``marker`` (the default, and what every run written before this option used): short neutral
  markers the model learns during fine-tuning.
* ``judge``: an instruction, the conversation and a closing question, ending in ``Answer:`` so that
  the next token a language model would write is its verdict (`` A`` or `` B``). The classifier
  reads that last position, which is what lets :mod:`arena_core.models.heads` start the head from
  the language-model head's rows for the verdict tokens. When the tokenizer has a chat template
  (instruction-tuned models) the judge prompt is wrapped in it as one user turn, and the model's
  turn starts with ``Answer:``, so the model sees its native format.

Each piece is a tuple of ``(text, special)`` segments: text from a chat template may contain the
tokenizer's control tokens (``<start_of_turn>``) and is tokenized with them recognised; our own
text is tokenized like user text, with control-token look-alikes split into plain characters.
"""

from __future__ import annotations

from dataclasses import dataclass

TEMPLATES = ("marker", "judge")
CHAT_MODES = ("auto", "on", "off")

FRAMING_PROBE = "hello"  # a plain word every tokenizer keeps whole-ish, to see what it adds around text


def framing_tokens(tokenizer) -> tuple[list[int], list[int]] | None:
    """The ids the tokenizer adds before and after any text (e.g. Gemma's ``<bos>``), found by
    tokenizing a probe with and without special tokens; None when the plain ids are not a run
    inside the framed ones (the caller decides what is safe then)."""
    plain = list(tokenizer(FRAMING_PROBE, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(FRAMING_PROBE, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    return None


# The marker template; the strings must never change or existing runs would encode differently.
PROMPT_HEADER = "<prompt>\n"
RESPONSE_A_HEADER = "\n\n<response_a>\n"
RESPONSE_B_HEADER = "\n\n<response_b>\n"
QUESTION_SUFFIX = "\n\n<which response is better?>"

JUDGE_INSTRUCTION = (
    "You are judging two AI assistant responses to the same user prompt. Read the prompt and both "
    "responses, then say which response the user preferred."
)
JUDGE_PROMPT_HEADER = "\n\n[User prompt]\n"
JUDGE_A_HEADER = "\n\n[Response A]\n"
JUDGE_B_HEADER = "\n\n[Response B]\n"
JUDGE_QUESTION = "\n\nWhich response is better? Answer A or B."
JUDGE_ANSWER = "Answer:"
# Marks the place of the user message when a chat template is rendered; never in real text.
_SLOT = "\u2063ARENA_JUDGE_SLOT\u2063"

Segments = tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Template:
    """The four fixed pieces around the three parts, as ``(text, special)`` segments."""

    name: str
    head: Segments
    sep_a: Segments
    sep_b: Segments
    tail: Segments
    uses_chat: bool = False

    @property
    def pieces(self) -> tuple[Segments, Segments, Segments, Segments]:
        return self.head, self.sep_a, self.sep_b, self.tail


def _plain(text: str) -> Segments:
    return ((text, False),)


def chat_wrap(tokenizer, strip_bos: bool) -> tuple[str, str] | None:
    """The text a chat template puts before and after one user message (generation prompt included).

    ``None`` when the tokenizer has no chat template. ``strip_bos``: drop a leading BOS the template
    writes when the tokenizer already adds one itself (it would otherwise appear twice).
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": _SLOT}], tokenize=False, add_generation_prompt=True
        )
    except Exception as exc:  # jinja errors, templates that demand other roles, ...
        raise ValueError(
            f"the tokenizer's chat template cannot render one user message ({type(exc).__name__}: {exc}); "
            "set encoding.chat_template=off to use the plain judge prompt"
        ) from exc
    if not isinstance(rendered, str) or rendered.count(_SLOT) != 1:
        raise ValueError(
            "the tokenizer's chat template does not place the user message exactly once; "
            "set encoding.chat_template=off to use the plain judge prompt"
        )
    before, after = rendered.split(_SLOT)
    bos = getattr(tokenizer, "bos_token", None)
    if strip_bos and bos and before.startswith(bos):
        before = before[len(bos) :]
    return before, after


def build_template(name: str, tokenizer, chat_template: str = "auto", strip_bos: bool = True) -> Template:
    """The template ``name`` for ``tokenizer``; ``chat_template`` (auto|on|off) only matters for judge."""
    if name not in TEMPLATES:
        raise ValueError(f"encoding.template={name!r}; choose from {TEMPLATES}")
    if chat_template not in CHAT_MODES:
        raise ValueError(f"encoding.chat_template={chat_template!r}; choose from {CHAT_MODES}")
    if name == "marker":
        return Template(
            "marker",
            _plain(PROMPT_HEADER),
            _plain(RESPONSE_A_HEADER),
            _plain(RESPONSE_B_HEADER),
            _plain(QUESTION_SUFFIX),
        )
    wrap = None if chat_template == "off" else chat_wrap(tokenizer, strip_bos)
    if wrap is None and chat_template == "on":
        raise ValueError("encoding.chat_template=on but the tokenizer has no chat template; use auto or off")
    if wrap is None:
        head = _plain(JUDGE_INSTRUCTION + JUDGE_PROMPT_HEADER)
        tail = _plain(JUDGE_QUESTION + "\n" + JUDGE_ANSWER)
    else:
        before, after = wrap
        head = ((before, True), (JUDGE_INSTRUCTION + JUDGE_PROMPT_HEADER, False))
        tail = ((JUDGE_QUESTION, False), (after, True), (JUDGE_ANSWER, False))
    return Template(
        "judge", head, _plain(JUDGE_A_HEADER), _plain(JUDGE_B_HEADER), tail, uses_chat=wrap is not None
    )
