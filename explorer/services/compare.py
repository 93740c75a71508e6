"""``explorer compare``: the same analogy asked of several models, recorded in the catalog.

Each item goes through the analogy service with the options ``explorer query`` would
pass, so a comparison row equals the query's output; unknown models are errors, a word
or vector set a model lacks is a miss with a note (see :mod:`explorer.viz.comparison`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from explorer.core.types import Progress, Report
from explorer.errors import CorruptFile, ExplorerError, UnknownWord
from explorer.services.query import QueryOptions, SetChoice, WordRules, analogy
from explorer.store.comparisons import record_comparison
from explorer.viz.comparison import (
    AnalogyItem,
    Comparison,
    AnalogyOutcome,
    expression_items,
    missing,
    outcome,
    read_analogy_items,
    summarise,
)

__all__ = ["CompareOptions", "Comparison", "Question", "compare_models", "expression_question", "file_question"]


@dataclass(frozen=True)
class Question:
    """What is asked: one expression (``kind="expression"``, with an optional expected word)
    or the analogies of a file (``kind="file"``), as items."""

    kind: str  # expression | file
    source: str  # the expression, or the file's path
    expect: str | None
    items: tuple[AnalogyItem, ...]


def expression_question(expression: str, expect: str | None = None) -> Question:
    return Question("expression", expression, expect, tuple(expression_items(expression, expect)))


def file_question(path: Path) -> Question:
    """The analogies of ``path`` ('a : b :: c : d' or 'a b c d' per line); a malformed line is an error."""
    return Question("file", str(path), None, tuple(read_analogy_items(path)))


@dataclass(frozen=True)
class CompareOptions:
    """Of which models (none: the default), in which vector set, scored how, how many answers."""

    models: tuple[str, ...] = ()
    vectors: str = "input"
    method: str = "3cosadd"
    k: int = 5
    words: WordRules = field(default_factory=WordRules)


def compare_models(engine, question: Question, options: CompareOptions, *, report: Report | None = None,
                   progress: Progress | None = None) -> Comparison:
    """Ask every item of every model, then record the comparison; returns it with its id."""
    with engine.catalog.session():
        rows = []
        for name in options.models or [None]:
            m = engine.model(name, report=report, progress=progress)
            if m.name not in [r.name for r in rows]:
                rows.append(m)
        outcomes: list[AnalogyOutcome] = []
        for m in rows:
            outcomes += _ask(engine, m.name, question.items, options, progress if len(question.items) > 20 else None)
    names = tuple(m.name for m in rows)
    summaries = tuple(summarise(n, [o for o in outcomes if o.model == n]) for n in names)
    c = Comparison(question.kind, question.source, question.expect, options.method, options.vectors, options.k, names,
                   tuple(outcomes), summaries)
    return replace(c, comparison_id=record_comparison(engine.catalog, c))


def _ask(engine, model: str, items: Sequence[AnalogyItem], options: CompareOptions,
         progress: Progress | None = None) -> list[AnalogyOutcome]:
    """One model's outcomes, an analogy per item; a missing word or vector set is a miss."""
    try:
        label = engine.open_set(model, options.vectors).label
    except CorruptFile:
        raise
    except ExplorerError as exc:  # e.g. an imported set has no 'output' vectors
        return [missing(model, it, str(exc)) for it in items]
    asked = QueryOptions(set=SetChoice(model=model, vectors=options.vectors), k=options.k, method=options.method,
                         words=options.words)
    out = []
    for n, it in enumerate(items):
        try:
            out.append(outcome(model, it, analogy(engine, it.expression, replace(asked, expect=it.expected))))
        except UnknownWord as exc:
            out.append(missing(model, it, str(exc), label))
        if progress:
            progress(f"{model}: analogies", n + 1, len(items))
    return out
