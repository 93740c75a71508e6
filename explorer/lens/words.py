"""Word lists for language attribution, and the token sets that stand for a word.

A word list is a CSV with a header ``concept,en,fr,de,ru,zh`` (any subset of language
columns; ``concept`` optional): one row per concept, the everyday word for it in each
language. A cell may list accepted alternatives separated by ``|`` (``太阳|日``): the
first is the word shown in prompts, and all of them count as the word, both in its token
set and for accuracy (a model that answers 犬 for "chien" has translated it).

The bundled list (``explorer/data/concepts.csv``, 127 concrete nouns) avoids words that
would make the attribution ambiguous: a word that is also the everyday word for another
concept in its own language (fr "langue" tongue/language, ru "мир" peace/world, de "See"
lake/sea), and a word spelt like an English word of another meaning (fr "chat", "pain").

Token-set strategies for a word w (how probability mass is attributed to it):

* ``prefixes`` (default, as Wendler et al.): every vocabulary token whose text is a
  non-empty prefix of w, with or without the word-start marker (' wat', 'wa', 'w', ...);
* ``first``: the first token of w, tokenised with and without a leading space;
* ``single``: like ``first``, but only words that are one token (with or without the
  marker) are kept; entries with any other word are dropped.

Entries whose target and English token sets overlap are dropped (their mass could not be
attributed), and how many entries survive is reported.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from explorer.errors import ExplorerError

LANGS = {"en": "English", "fr": "Français", "de": "Deutsch", "ru": "Русский", "zh": "中文"}
STRATEGIES = ("prefixes", "first", "single")


@dataclass(frozen=True)
class Concept:
    concept: str
    forms: dict[str, tuple[str, ...]]  # language -> every accepted form, the one shown in prompts first

    @property
    def words(self) -> dict[str, str]:
        """Language -> the word shown in prompts."""
        return {lang: f[0] for lang, f in self.forms.items()}


def bundled_words() -> Path:
    return Path(str(resources.files("explorer.data").joinpath("concepts.csv")))


def _read_text(path: Path) -> str:
    """A word list's text: one-line errors for a missing, unreadable or non-UTF-8 file."""
    if not path.exists():
        raise ExplorerError(f"word list not found: {path}")
    if not path.is_file():
        raise ExplorerError(f"word list {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExplorerError(f"cannot read word list {path}: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise ExplorerError(f"word list {path} is not a CSV text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExplorerError(f"word list {path} is not UTF-8 text (byte {exc.start})") from None


def load_words(path: Path | None = None) -> list[Concept]:
    """The concepts of a word list CSV (the bundled one by default); every problem is one line."""
    path = Path(path) if path else bundled_words()
    text = _read_text(path)
    try:
        return _parse(path, list(csv.reader(io.StringIO(text, newline=""))))
    except csv.Error as exc:
        raise ExplorerError(f"word list {path}: not a valid CSV ({exc})") from None


def _parse(path: Path, rows: list[list[str]]) -> list[Concept]:
    cols = [c.strip() for c in rows[0]] if rows else []
    langs = [c for c in cols if c in LANGS]
    unknown = [c for c in cols if c not in LANGS and c != "concept"]
    if unknown or len(langs) < 2 or len(set(cols)) < len(cols):
        raise ExplorerError(f"{path}: the header must be 'concept' and at least two language codes among "
                            f"{', '.join(LANGS)}, e.g. concept,en,fr,zh (got {','.join(cols)[:80] or 'an empty file'})")
    out = []
    for n, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue  # a blank line
        row = dict(zip(cols, cells))
        forms = {lang: tuple(w.strip() for w in (row.get(lang) or "").split("|") if w.strip()) for lang in langs}
        empty = [lang for lang, f in forms.items() if not f]
        if empty:
            raise ExplorerError(f"{path}:{n}: empty word for {', '.join(empty)}")
        name = (row.get("concept") or "").strip() or (forms["en"][0] if "en" in forms else str(n))
        out.append(Concept(name, forms))
    if not out:
        raise ExplorerError(f"{path}: no concepts (only a header)")
    return out


def bundled_count() -> int:
    """How many concepts the bundled list holds (for help texts; read, not hard-coded)."""
    with open(bundled_words(), encoding="utf-8", newline="") as f:
        return max(0, sum(1 for row in csv.reader(f) if any(c.strip() for c in row)) - 1)


class TokenSets:
    """Token texts of a model (from the catalog) for building token sets."""

    def __init__(self, texts: Sequence[str], tokenizer: Any):
        self.by_text: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            self.by_text.setdefault(t, []).append(i)
        self.tokenizer = tokenizer
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])

    def _first(self, word: str) -> list[tuple[int, int]]:
        """(first token id, number of tokens) of the word with and without a leading space;
        an unknown-token or other special first token does not stand for the word."""
        out = []
        for text in (word, " " + word):
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if ids and ids[0] not in self.special:
                out.append((ids[0], len(ids)))
        return out

    def token_set(self, word: str, strategy: str) -> frozenset[int]:
        if strategy == "prefixes":
            ids: set[int] = set()
            for end in range(1, len(word) + 1):
                p = word[:end]
                ids.update(self.by_text.get(p, ()))
                ids.update(self.by_text.get(" " + p, ()))
            return frozenset(ids)
        firsts = self._first(word)
        if strategy == "single":
            return frozenset(i for i, n in firsts if n == 1)
        if strategy == "first":
            return frozenset(i for i, _ in firsts)
        raise ExplorerError(f"unknown strategy {strategy!r}; choose {', '.join(STRATEGIES)}")

    def answer_tokens(self, word: str) -> frozenset[int]:
        """The tokens a correct next-token prediction would start the word with."""
        return frozenset(i for i, _ in self._first(word))

    def token_set_any(self, words: Sequence[str], strategy: str) -> frozenset[int]:
        """The union of the token sets of accepted alternatives of one word."""
        return frozenset().union(*(self.token_set(w, strategy) for w in words))

    def correct_tokens(self, words: Sequence[str], strategy: str) -> frozenset[int]:
        """Last-layer top-1 tokens that count as any of ``words``: a first token of one, or a token of its set."""
        return frozenset().union(*(self.answer_tokens(w) | self.token_set(w, strategy) for w in words))
