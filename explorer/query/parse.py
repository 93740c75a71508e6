"""The expression grammar of ``explorer query``.

    expression := [sign] term (sign term)*
    sign       := "+" | "-"
    term       := [number "*"] word
    word       := bare | quoted
    bare       := one or more characters other than whitespace, + - * ( ) " '
    quoted     := '"' ... '"' or "'" ... "'"   (backslash escapes the quote and itself)

Examples: ``woman - man + king``, ``0.5*king + 0.5*queen``, ``"花" - "flower" + water``,
``"New York" - city``. A number is a weight only when ``*`` follows it, so ``2024`` alone
is a word.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from explorer.errors import ParseError

_SPECIAL = set("+-*()\"'")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WEIGHT = re.compile(_NUMBER.pattern + r"\s*\*")


@dataclass(frozen=True)
class Term:
    word: str
    weight: float = 1.0

    def to_dict(self) -> dict:
        return {"word": self.word, "weight": self.weight}


@dataclass(frozen=True)
class Expression:
    terms: tuple[Term, ...]

    def render(self) -> str:
        parts = []
        for i, t in enumerate(self.terms):
            sign = "-" if t.weight < 0 else "+"
            w = abs(t.weight)
            coef = "" if w == 1.0 else f"{w!r}*"
            body = coef + quote_word(t.word)
            if i == 0:
                parts.append(body if sign == "+" else f"- {body}")
            else:
                parts.append(f"{sign} {body}")
        return " ".join(parts)

    @property
    def words(self) -> list[str]:
        return [t.word for t in self.terms]

    def analogy(self) -> tuple[str, str, str] | None:
        """``(a, b, c)`` when the expression is ``b - a + c`` with unit weights, else None.

        b is the first positive term and c the second, so ``woman - man + king`` gives
        a=man, b=woman, c=king, and the expected answer d completes a:b :: c:d.
        """
        if len(self.terms) != 3 or any(abs(t.weight) != 1.0 for t in self.terms):
            return None
        pos = [t.word for t in self.terms if t.weight > 0]
        neg = [t.word for t in self.terms if t.weight < 0]
        if len(pos) != 2 or len(neg) != 1:
            return None
        return neg[0], pos[0], pos[1]


def quote_word(word: str) -> str:
    bare = (
        word
        and not any(ch.isspace() or ch in _SPECIAL for ch in word)
        and not _WEIGHT.match(word + "*")  # would read back as a weight
    )
    if bare:
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(text: str) -> Expression:
    """Parse an expression; raises :class:`ParseError` with the column of the problem."""
    if not text or not text.strip():
        raise ParseError("empty expression: give words joined by + and -, e.g. \"woman - man + king\"")
    terms: list[Term] = []
    pos, n = 0, len(text)
    sign: float | None = None
    while True:
        pos = _skip(text, pos)
        if pos >= n:
            break
        ch = text[pos]
        if ch in "+-":
            if sign is not None:
                raise ParseError(f"two operators in a row at column {pos + 1}: {text!r}")
            sign = 1.0 if ch == "+" else -1.0
            pos += 1
            continue
        if terms and sign is None:
            raise ParseError(f"expected + or - before column {pos + 1}: {text!r} (quote words that contain spaces)")
        weight, pos = _weight(text, pos)
        word, pos = _word(text, pos)
        terms.append(Term(word, (sign if sign is not None else 1.0) * weight))
        sign = None
    if sign is not None:
        raise ParseError(f"expression ends with an operator: {text!r}")
    if not terms:
        raise ParseError(f"no words in expression {text!r}")
    return Expression(tuple(terms))


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _weight(text: str, pos: int) -> tuple[float, int]:
    m = _WEIGHT.match(text, pos)
    if not m:
        return 1.0, pos
    value = float(_NUMBER.match(text, pos).group(0))
    if not math.isfinite(value):
        raise ParseError(f"weight at column {pos + 1} is not a finite number")
    return value, _skip(text, m.end())


def _word(text: str, pos: int) -> tuple[str, int]:
    if pos >= len(text):
        raise ParseError(f"expected a word after the weight at the end of {text!r}")
    ch = text[pos]
    if ch in "\"'":
        out, i = [], pos + 1
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if c == ch:
                word = "".join(out)
                if not word:
                    raise ParseError(f"empty quoted word at column {pos + 1}: {text!r}")
                return word, i + 1
            out.append(c)
            i += 1
        raise ParseError(f"unterminated quote starting at column {pos + 1}: {text!r}")
    if ch in "*()":
        raise ParseError(f"unexpected {ch!r} at column {pos + 1}: {text!r}")
    start = pos
    while pos < len(text) and not (text[pos].isspace() or text[pos] in _SPECIAL):
        pos += 1
    if pos == start:
        raise ParseError(f"expected a word at column {pos + 1}, found {ch!r}: {text!r}")
    return text[start:pos], pos
