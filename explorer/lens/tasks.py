"""Prompts for the three tasks of Wendler et al. (2024), built from a word list.

* translate: few-shot pairs ``Français: "fleur" - 中文: "花"``, then the query word and
  ``中文: "``; the next token should start the target word.
* repeat: the same with one language on both sides.
* cloze: one or two solved examples ``<sentence with ___>  Answer: "word"``, then a new
  sentence and ``Answer: "`` (sentences from ``explorer/data/cloze.csv``).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from explorer.errors import ExplorerError
from explorer.lens.words import LANGS, Concept

ANSWER = {"en": "Answer", "fr": "Réponse", "de": "Antwort", "ru": "Ответ", "zh": "答案"}


@dataclass(frozen=True)
class PromptItem:
    concept: str
    prompt: str
    targets: tuple[str, ...]  # accepted forms of the word whose tokens should come next, the shown one first
    englishes: tuple[str, ...]  # accepted forms of the English word for the same concept

    @property
    def target(self) -> str:
        return self.targets[0]

    @property
    def english(self) -> str:
        return self.englishes[0]


def _pair(src: str, tgt: str, a: str, b: str | None) -> str:
    right = f'"{b}"' if b is not None else '"'
    return f'{LANGS[src]}: "{a}" - {LANGS[tgt]}: {right}'


def translation_items(concepts: list[Concept], src: str, tgt: str, shots: int, seed: int) -> list[PromptItem]:
    for lang in (src, tgt, "en"):
        if lang not in concepts[0].words:
            raise ExplorerError(f"the word list has no {lang!r} column")
    rng = random.Random(seed)
    items = []
    for i, c in enumerate(concepts):
        others = [o for j, o in enumerate(concepts) if j != i]
        demo = rng.sample(others, min(shots, len(others)))
        lines = [_pair(src, tgt, o.words[src], o.words[tgt]) for o in demo]
        lines.append(_pair(src, tgt, c.words[src], None))
        items.append(PromptItem(c.concept, "\n".join(lines), c.forms[tgt], c.forms["en"]))
    return items


def cloze_sentences(path: Path | None = None) -> dict[tuple[str, str], str]:
    path = Path(path) if path else Path(str(resources.files("explorer.data").joinpath("cloze.csv")))
    if not path.is_file():
        raise ExplorerError(f"cloze sentences not found: {path}")
    with open(path, encoding="utf-8", newline="") as f:
        return {(r["concept"], r["lang"]): r["sentence"] for r in csv.DictReader(f)}


def cloze_items(concepts: list[Concept], lang: str, shots: int, seed: int, sentences=None) -> list[PromptItem]:
    sentences = sentences if sentences is not None else cloze_sentences()
    usable = [c for c in concepts if (c.concept, lang) in sentences and "en" in c.words]
    rng = random.Random(seed)
    items = []
    for i, c in enumerate(usable):
        others = [o for j, o in enumerate(usable) if j != i]
        demo = rng.sample(others, min(max(1, min(shots, 2)), len(others)))
        lines = [f'{sentences[(o.concept, lang)]} {ANSWER[lang]}: "{o.words[lang]}"' for o in demo]
        lines.append(f'{sentences[(c.concept, lang)]} {ANSWER[lang]}: "')
        items.append(PromptItem(c.concept, "\n".join(lines), c.forms[lang], c.forms["en"]))
    return items
