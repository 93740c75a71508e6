"""Word -> token resolution, explicit and shown.

A word such as ``king`` can be several vocabulary entries: the word-initial variant
(``'▁king'`` / ``'Ġking'``, decoded ``' king'``), the bare continuation ``'king'``, case
variants (``' King'``). Resolution picks one by a declared rule, reports which, and lists
the others. A word that is no single token is refused with suggestions, or averaged over
its pieces with a visible notice.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from explorer.errors import ExplorerError, UnknownWord

VARIANTS = ("auto", "initial", "bare", "raw")
MULTI = ("refuse", "average")


@dataclass(frozen=True)
class TokenRow:
    token_id: int
    raw: str
    text: str


class TokenTable(Protocol):
    """What resolution needs from a vocabulary (DuckDB-backed or in memory)."""

    name: str

    def candidates(self, word: str) -> list[TokenRow]:
        """Rows whose text is word or ' '+word, whose raw is word, or that match ignoring case."""

    def close_spellings(self, word: str, n: int) -> list[str]: ...

    def encode(self, text: str) -> list[TokenRow] | None:
        """Tokenise ``text`` (no special tokens); None when no tokenizer is available."""


@dataclass(frozen=True)
class Resolved:
    word: str
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]  # decoded text of each token, e.g. (' king',)
    variant: str  # initial | bare | raw | pieces
    alternatives: tuple[tuple[str, int], ...] = ()
    notice: str | None = None

    @property
    def single(self) -> bool:
        return len(self.token_ids) == 1

    @property
    def token(self) -> str:
        return "".join(self.tokens)

    def to_dict(self) -> dict:
        return {
            "word": self.word,
            "token": self.token,
            "token_ids": list(self.token_ids),
            "variant": self.variant,
            "alternatives": [{"token": t, "token_id": i} for t, i in self.alternatives],
            "notice": self.notice,
        }


def resolve(table: TokenTable, word: str, variant: str = "auto", multi: str = "refuse") -> Resolved:
    if variant not in VARIANTS:
        raise ExplorerError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if multi not in MULTI:
        raise ExplorerError(f"unknown multi-token policy {multi!r}; choose one of {', '.join(MULTI)}")
    rows = table.candidates(word)
    by_rule = {
        "initial": [r for r in rows if r.text == " " + word],
        "bare": [r for r in rows if r.text == word],
        "raw": [r for r in rows if r.raw == word],
    }
    order = ("initial", "bare", "raw") if variant == "auto" else (variant,)
    for rule in order:
        if by_rule[rule]:
            chosen = min(by_rule[rule], key=lambda r: r.token_id)
            alts = tuple(
                (r.text, r.token_id) for r in sorted(rows, key=lambda r: r.token_id) if r.token_id != chosen.token_id
            )
            return Resolved(word, (chosen.token_id,), (chosen.text,), rule, alts)
    return _pieces(table, word, variant, multi, rows)


def _pieces(table: TokenTable, word: str, variant: str, multi: str, rows: list[TokenRow]) -> Resolved:
    text = word if variant in ("bare", "raw") else " " + word
    pieces = table.encode(text)
    if pieces is not None and pieces and pieces[0].text.strip() == "" and len(pieces) > 1:
        pieces = pieces[1:]  # a lone word-start marker adds nothing
    alts = tuple((r.text, r.token_id) for r in sorted(rows, key=lambda r: r.token_id))
    hint = ""
    if alts:
        hint = "; in the vocabulary: " + ", ".join(repr(t) for t, _ in alts[:5])
    suggestions = table.close_spellings(word, 5)
    if suggestions:
        hint += "; close spellings: " + ", ".join(suggestions)
    if not pieces or len(pieces) == 1:
        raise UnknownWord(f"unknown word {word!r} in {table.name}{hint}")
    shown = " ".join(repr(p.text) for p in pieces)
    if multi == "refuse":
        raise UnknownWord(
            f"{word!r} is not a single token of {table.name} (it splits into {shown}){hint}; "
            "pass --multi average to average its tokens"
        )
    return Resolved(
        word,
        tuple(p.token_id for p in pieces),
        tuple(p.text for p in pieces),
        "pieces",
        alts,
        notice=f"{word!r} is {len(pieces)} tokens ({shown}); using the mean of their vectors",
    )


@dataclass
class ListTokens:
    """An in-memory token table (tests, imported word lists without a tokenizer)."""

    texts: Sequence[str]
    name: str = "vocabulary"
    raws: Sequence[str] | None = None
    _index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        raws = self.raws if self.raws is not None else self.texts
        self.rows = [TokenRow(i, r, t) for i, (r, t) in enumerate(zip(raws, self.texts))]

    def candidates(self, word: str) -> list[TokenRow]:
        lw = word.lower()
        return [
            r for r in self.rows if r.text in (word, " " + word) or r.raw == word or r.text.lstrip().lower() == lw
        ]

    def close_spellings(self, word: str, n: int) -> list[str]:
        words = sorted({t.strip() for t in self.texts if t.strip()})
        return difflib.get_close_matches(word, words, n=n, cutoff=0.6)

    def encode(self, text: str) -> list[TokenRow] | None:
        return None
