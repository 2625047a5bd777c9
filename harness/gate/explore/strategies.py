"""Hypothesis strategies for what users send: instructions, stop lists, settings, requests.

Weighted toward realistic text, with the categories a hand-picked list forgets: characters
that formatting, templating, regular expressions and whitespace handling treat specially,
code, JSON and markdown, every unicode normal form, blank text, text at the context limit;
stop strings that are whitespace, punctuation, regex metacharacters, pieces of the template
or of the instruction, overlapping or absent; and both ends of every range, with the first
invalid value past each.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from hypothesis import strategies as st

from harness.gate.explore.requests import ExploreRequest
from harness.model.settings import TEMPERATURE_MAX, TEMPERATURE_MIN

WORDS = (
    "What",
    "is",
    "MLflow",
    "the",
    "route",
    "a",
    "model",
    "Explain",
    "list",
    "three",
    "why",
    "cache",
    "tokens",
    "answer",
    "in",
    "one",
    "line",
    "please",
    "Name",
    "colour",
)
SPECIAL = (
    "{name}",
    "{}",
    "{0}",
    "{{x}}",
    "%s",
    "%(x)s",
    "%d",
    "100%",
    "$HOME",
    "${x}",
    "$$",
    "\\n",
    "\\",
    "\\d+",
    ".*",
    "(a|b)",
    "[x]",
    "^",
    "$",
    "?",
    "+",
    "*",
    "|",
    "<b>",
    "&amp;",
    "'",
    '"',
    "`",
    "~",
    "#",
    "@",
    "=",
    ";",
)
SNIPPETS = (
    "```python\nprint('hi')\n```",
    '{"key": [1, 2], "ok": true}',
    "**bold** and _it_",
    "# Title\n- item one\n- item two",
    "SELECT * FROM t WHERE x = '%';",
    "def f(x):\n    return x ** 2",
    "a\tb\tc",
    "1. first\n2. second",
    "> quoted",
)
WHITESPACE = (" ", "  ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u2003", " \n ")
UNICODE = ("Café crème", "naïve", "東京", "🎉", "ﬁ", "Ｆｕｌｌ", "①", "Ω", "ǅ", "é", "ß", "İ")
# Invisible format characters: joiners, a byte-order mark, a soft hyphen, a bidi mark.
INVISIBLE = ("👩\u200d💻", "\ufeffBOM", "soft\u00adhyphen", "zero\u200bwidth", "\u200fRTL")
FORMS = ("NFC", "NFD", "NFKC", "NFKD")

# Stop strings beyond plain words; the answer's own pieces are drawn by the caller.
# Whitespace and newlines first: they are the most common stop strings in practice.
STOP_WHITESPACE = ("\n", " ", "\n\n", "\t", ". ", "\n###")
STOP_SYMBOLS = (".", ",", "!", "?", ":", "|", ".*", "(", "[", "+", "\\", "^", "$", "{", "%")
STOP_TEMPLATE = ("###", "Response", "### Response:", "Instruction", "zq-absent-stop")
STOP_CATEGORIES = STOP_WHITESPACE + STOP_SYMBOLS + STOP_TEMPLATE

T = TypeVar("T")
_TEXT = st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn"))


@st.composite
def _normalised(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(UNICODE + ("Café crème, naïve?",)))
    return unicodedata.normalize(draw(st.sampled_from(FORMS)), text)


def _piece() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(WORDS),
        st.sampled_from(SPECIAL),
        st.sampled_from(SNIPPETS),
        st.sampled_from(UNICODE),
        _normalised(),
        st.sampled_from(INVISIBLE),
        st.text(_TEXT, min_size=1, max_size=8),
    )


@st.composite
def instructions(draw: st.DrawFn) -> str:
    """Realistic text made of words, special characters, snippets and unicode, with edge
    whitespace sometimes; shrinks toward a short plain word."""
    parts = draw(st.lists(_piece(), min_size=1, max_size=6))
    glue = draw(st.sampled_from((" ", " ", "", "\n", "\t")))
    text = glue.join(parts)
    if draw(st.booleans()):
        text = draw(st.sampled_from(WHITESPACE)) + text
    if draw(st.booleans()):
        text += draw(st.sampled_from(WHITESPACE))
    return text


@dataclass(frozen=True)
class Limits:
    """What the strategies need to know of the model: instructions whose prompt leaves
    exactly ``room`` tokens of context (``near[room]``), and one that cannot fit."""

    near: dict[int, str]
    too_long: str

    def room(self, instruction: str) -> int | None:
        return next((r for r, text in self.near.items() if text == instruction), None)


def weighted(*options: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of ``options``, drawn in proportion to its weight: ``st.one_of`` picks branches
    about evenly, which would make rare edge cases as common as realistic text. Shrinks
    toward the first option."""
    total = sum(weight for weight, _ in options)

    @st.composite
    def pick(draw: st.DrawFn) -> T:
        ticket = draw(st.integers(0, total - 1))
        for weight, strategy in options:
            if ticket < weight:
                return draw(strategy)
            ticket -= weight
        raise AssertionError("unreachable")

    return pick()


def any_instruction(limits: Limits | None) -> st.SearchStrategy[str]:
    """Mostly :func:`instructions`; now and then blank text, or text at or past the
    context limit (long prompts cost the most to generate)."""
    options: list[tuple[int, st.SearchStrategy[str]]] = [
        (16, instructions()),
        (1, st.sampled_from(("", " ", "\n", " \t "))),
    ]
    if limits is not None:
        options += [(2, st.sampled_from(sorted(limits.near.values()))), (1, st.just(limits.too_long))]
    return weighted(*options)


def temperatures() -> st.SearchStrategy[float]:
    """0 mostly (the answers can then be compared), both ends of the range, values in
    between, and the first invalid values past each end."""
    return weighted(
        (13, st.just(0.0)),
        (5, st.sampled_from((TEMPERATURE_MAX, 1.0, 0.7, 1e-3))),
        (
            2,
            st.sampled_from(
                (math.nextafter(TEMPERATURE_MIN, -math.inf), math.nextafter(TEMPERATURE_MAX, math.inf), -1.0, 2.5)
            ),
        ),
    )


def stops(pool: Sequence[str] = ()) -> st.SearchStrategy[tuple[str, ...] | None]:
    """None (no stop sent), an empty list, or up to three stop strings: whitespace, symbols
    and regex metacharacters, pieces of the template, pieces of real answers (``pool``, so
    stops are met); rarely an empty stop string, which is invalid (it would cut every
    answer to nothing)."""
    kinds: list[tuple[int, st.SearchStrategy[str]]] = [
        (4, st.sampled_from(STOP_WHITESPACE)),
        (3, st.sampled_from(STOP_SYMBOLS)),
        (1, st.sampled_from(STOP_TEMPLATE)),
    ]
    if pool:
        kinds.append((4, st.sampled_from(tuple(pool))))
    some = st.lists(weighted(*kinds), min_size=1, max_size=3, unique=True).map(tuple)
    return weighted((3, st.none()), (1, st.just(())), (14, some), (2, st.just(("\n", ""))))


def answer_stops(answer: str) -> st.SearchStrategy[tuple[str, ...]]:
    """Stop strings cut from ``answer`` itself, so the stop is met where the answer has
    text: one piece, a piece at a space, two overlapping pieces where the longer one starts
    earlier but ends later (the first to complete is not the earliest), or a piece beside
    an absent stop; in either order."""
    # A replacement character marks bytes split across tokens: no user sends it as a stop,
    # so pieces come from the stretches of text between them.
    stretches = [t for t in answer.split("\ufffd") if len(t) >= 2]
    if not stretches:
        return st.just(("zq-absent-stop",))

    @st.composite
    def pieces(draw: st.DrawFn) -> tuple[str, ...]:
        text = draw(st.sampled_from(stretches))
        spaces = [i for i, c in enumerate(text) if c.isspace()]
        kind = draw(
            weighted((2, st.just("one")), (3, st.just("overlap")), (2, st.just("space")), (1, st.just("absent")))
        )
        if kind == "space" and spaces:
            start = draw(st.sampled_from(spaces))
        else:
            start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start + 1, min(len(text), start + 6)))
        first = text[start:end]
        other = {"overlap": text[max(0, start - 2) : end + 1], "absent": "zq-absent-stop"}
        found = (first, other[kind]) if kind in other else (first,)
        if draw(st.booleans()):
            found = found[::-1]
        return tuple(dict.fromkeys(found))

    return pieces()


def requests(limits: Limits | None, pool: Sequence[str] = (), max_rows: int = 3) -> st.SearchStrategy[ExploreRequest]:
    """Whole requests: 1..max_rows instructions and one setting per request; max_tokens is
    mostly small, sometimes exactly the room a near-limit row leaves or one past it, or 0."""

    @st.composite
    def build(draw: st.DrawFn) -> ExploreRequest:
        rows = tuple(draw(st.lists(any_instruction(limits), min_size=1, max_size=max_rows)))
        rooms = [r for i in rows if limits is not None and (r := limits.room(i)) is not None]
        # Tiny and untrained models often open every answer with the same token: a few
        # tokens more show where two prompts part.
        options: list[tuple[int, st.SearchStrategy[int]]] = [
            (9, st.integers(4, 16)),
            (3, st.integers(17, 32)),
            (6, st.integers(1, 3)),
            (1, st.just(0)),
        ]
        if rooms:
            options += [(4, st.just(min(rooms))), (2, st.just(min(rooms) + 1))]
        return ExploreRequest(rows, draw(temperatures()), draw(weighted(*options)), draw(stops(pool)))

    return build()


__all__ = [
    "Limits",
    "STOP_CATEGORIES",
    "answer_stops",
    "any_instruction",
    "instructions",
    "requests",
    "stops",
    "temperatures",
    "weighted",
]
