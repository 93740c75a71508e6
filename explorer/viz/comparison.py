"""The same question asked of several models (``explorer compare``): its items, outcomes
and per-model summaries. :mod:`explorer.services.compare` asks and records them.

Every number comes from the analogy service with the options ``explorer query`` would
pass, so a comparison row equals the query's output.

Analogy files hold one analogy a line, ``a : b :: c : d`` (a is to b as c is to d,
asked as ``b - a + c`` expecting d), or the four words separated by spaces as in
word2vec's ``questions-words.txt``; blank lines, ``#`` comments and ``: section``
headers are skipped. An item is *correct* when the expected word ranks first with the
input words excluded (the usual protocol); a model that lacks a word (or the vector set)
counts the item as a miss, with a note. Accuracy is reported over all items, over the
items the model covers (what gensim reports), and with inputs kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from explorer.errors import ExplorerError
from explorer.query.analogy import QueryResult
from explorer.query.parse import Expression, Term, parse


@dataclass(frozen=True)
class AnalogyItem:
    item: int  # 0 for a single expression; else the line number in the file
    expression: Expression
    expected: str | None


def read_analogy_items(path: Path) -> list[AnalogyItem]:
    """Parse an analogy file; a malformed line is a one-line error naming its number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExplorerError(f"no such analogy file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExplorerError(f"cannot read analogy file {path}: {exc}") from None
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#") or s.startswith(":"):
            continue
        words = _analogy_words(s)
        if words is None:
            raise ExplorerError(f"{path}:{n}: expected 'a : b :: c : d' or 'a b c d', got {s!r}")
        a, b, c, d = words
        items.append(AnalogyItem(n, Expression((Term(b), Term(a, -1.0), Term(c))), d))
    if not items:
        raise ExplorerError(f"no analogies in {path} (one 'a : b :: c : d' per line)")
    return items


def _analogy_words(line: str) -> tuple[str, str, str, str] | None:
    if "::" in line:
        left, _, right = line.partition("::")
        pairs = [[w.strip() for w in side.split(":")] for side in (left, right)]
        if all(len(p) == 2 and all(p) for p in pairs):
            return pairs[0][0], pairs[0][1], pairs[1][0], pairs[1][1]
        return None
    words = line.split()
    return (words[0], words[1], words[2], words[3]) if len(words) == 4 and ":" not in line else None


@dataclass(frozen=True)
class AnalogyOutcome:
    """One item on one model: what ``explorer query`` reports, or why it is missing."""

    model: str
    item: int
    expression: str
    expected: str | None
    vector_set: str | None
    top: tuple[dict, ...]  # Hit.to_dict() of the answers, inputs excluded
    rank_excluded: int | None
    rank_kept: int | None
    offset_cosine: float | None
    reverse_cosine: float | None
    correct: bool | None  # None without an expected word
    note: str | None = None

    @property
    def missing(self) -> bool:
        return self.note is not None

    def to_dict(self) -> dict:
        return {"model": self.model, "item": self.item, "expression": self.expression, "expected": self.expected,
                "vector_set": self.vector_set, "top": list(self.top), "rank_excluded": self.rank_excluded,
                "rank_kept": self.rank_kept, "offset_cosine": self.offset_cosine,
                "reverse_cosine": self.reverse_cosine, "correct": self.correct, "note": self.note}


def outcome(model: str, item: AnalogyItem, res: QueryResult) -> AnalogyOutcome:
    e = res.expected
    diag = res.diagnostics
    return AnalogyOutcome(model, item.item, res.expression, item.expected, res.vector_set,
                   tuple(h.to_dict() for h in res.results),
                   e.rank_excluded if e else None, e.rank_kept if e else None,
                   diag.get("offset_cosine"), diag.get("reverse_cosine"),
                   (e.rank_excluded == 1) if e else None)


def missing(model: str, item: AnalogyItem, note: str, vector_set: str | None = None) -> AnalogyOutcome:
    return AnalogyOutcome(model, item.item, item.expression.render(), item.expected, vector_set, (), None, None, None, None,
                   False if item.expected else None, note)


@dataclass(frozen=True)
class ModelSummary:
    model: str
    items: int
    covered: int
    correct: int
    correct_kept: int
    mean_offset_cosine: float | None
    note: str | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else float("nan")

    @property
    def accuracy_covered(self) -> float:
        return self.correct / self.covered if self.covered else float("nan")

    @property
    def accuracy_kept(self) -> float:
        return self.correct_kept / self.items if self.items else float("nan")

    def to_dict(self) -> dict:
        return {"model": self.model, "items": self.items, "covered": self.covered, "correct": self.correct,
                "accuracy": self.accuracy, "accuracy_covered": self.accuracy_covered,
                "accuracy_inputs_kept": self.accuracy_kept, "mean_offset_cosine": self.mean_offset_cosine,
                "note": self.note}


def summarise(model: str, outcomes: Sequence[AnalogyOutcome]) -> ModelSummary:
    covered = [o for o in outcomes if not o.missing]
    offsets = [o.offset_cosine for o in covered if o.offset_cosine is not None and math.isfinite(o.offset_cosine)]
    lacking = [o for o in outcomes if o.missing]
    note = None
    if lacking:
        note = f"{len(lacking)} of {len(outcomes)} items missing (counted as misses); first: {lacking[0].note}"
    return ModelSummary(model, len(outcomes), len(covered), sum(bool(o.correct) for o in covered),
                        sum(o.rank_kept == 1 for o in covered), sum(offsets) / len(offsets) if offsets else None, note)


@dataclass(frozen=True)
class Comparison:
    kind: str  # expression | file
    source: str
    expect: str | None
    method: str
    vectors: str
    k: int
    models: tuple[str, ...]
    outcomes: tuple[AnalogyOutcome, ...]
    summaries: tuple[ModelSummary, ...]
    comparison_id: int | None = None

    def for_model(self, model: str) -> list[AnalogyOutcome]:
        return [o for o in self.outcomes if o.model == model]

    def to_dict(self) -> dict:
        return {"comparison_id": self.comparison_id, "kind": self.kind, "source": self.source, "expect": self.expect,
                "method": self.method, "vectors": self.vectors, "k": self.k, "models": list(self.models),
                "summary": [s.to_dict() for s in self.summaries], "results": [o.to_dict() for o in self.outcomes]}


def expression_items(expression: str, expect: str | None) -> list[AnalogyItem]:
    return [AnalogyItem(0, parse(expression), expect)]
