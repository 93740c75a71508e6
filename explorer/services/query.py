"""Vector arithmetic: ``explorer query`` / ``neighbours``, the TUI's analogy and neighbour
panes, comparisons and maps. The query's meaning (which set, how words resolve, which
tokens may answer, the scoring method) arrives as one frozen :class:`QueryOptions`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.query import analogy as analogy_math
from explorer.query.analogy import DIAGNOSTICS, QueryResult
from explorer.query.parse import Expression, Term, parse
from explorer.query.vocab import Resolved
from explorer.services.engine import Engine
from explorer.store.predicate import check_where

__all__ = ["DIAGNOSTICS", "Expression", "check_where", "QueryOptions", "QueryResult", "SetChoice", "Term", "TokenFilter",
           "WordRules", "analogy", "parse", "search", "token_neighbours"]


@dataclass(frozen=True)
class SetChoice:
    """Which vectors answer: a model's vocabulary set (``input``, ``output``, ...) or, with
    ``layer``, the per-token means of a stored corpus's hidden states at that layer
    (``center``: minus the layer's stored corpus mean, so cosines are centred cosines)."""

    model: str | None = None
    vectors: str = "input"
    layer: int | None = None
    corpus: str | None = None
    center: bool = False


@dataclass(frozen=True)
class WordRules:
    """How a word becomes tokens: ``variant`` (auto, exact, space, bare) and ``multi``
    (refuse, first, average) for words that are several tokens."""

    variant: str = "auto"
    multi: str = "refuse"


@dataclass(frozen=True)
class TokenFilter:
    """Which tokens may answer: a script (``Latin``, ``Han``...) and/or a SQL predicate over
    the tokens table."""

    script: str | None = None
    where: str | None = None


@dataclass(frozen=True)
class QueryOptions:
    set: SetChoice = field(default_factory=SetChoice)
    k: int = 10
    method: str = "3cosadd"
    keep_inputs: bool = False
    expect: str | None = None
    words: WordRules = field(default_factory=WordRules)
    tokens: TokenFilter = field(default_factory=TokenFilter)


def analogy(engine: Engine, expression: str | Expression, options: QueryOptions = QueryOptions(), *,
            auto_export: bool = True, report: Report | None = None, progress: Progress | None = None) -> QueryResult:
    """Vector arithmetic over a vocabulary set, or (``options.set.layer``) over the per-token
    mean hidden states of a stored corpus at that layer. The catalog is read in one session,
    released afterwards."""
    expr = parse(expression) if isinstance(expression, str) else expression
    if options.k < 1:
        raise ExplorerError("-k must be at least 1")
    choice, words = options.set, options.words
    if choice.center:
        if choice.layer is None:
            raise ExplorerError("--center needs --layer (it centres the token means of stored hidden states)")
        from explorer.services.states import store_layer_centre

        store_layer_centre(engine, choice.model, choice.corpus, choice.layer, progress)  # once, outside the session
    with engine.catalog.session():
        s = engine.open_set(choice.model, choice.vectors if choice.layer is None else "input",
                            auto_export=auto_export, report=report, progress=progress)
        if choice.layer is None:
            engine.warm(s, progress)
        terms = [(engine.resolve(s, t.word, words.variant, words.multi), t.weight) for t in expr.terms]
        exp = engine.resolve(s, options.expect, words.variant, words.multi) if options.expect else None
        vs, index, label = s.vectors, s.index, s.label
        allowed = engine.allowed_mask(s, options.tokens.script, options.tokens.where)
        if choice.layer is not None:
            vs, allowed, label = _token_means_set(engine, s.model.name, choice, [t for t, _ in terms] + ([exp] if exp else []),
                                                  allowed, progress)
            index = None
        result = analogy_math.run_query(
            vs, terms, method=options.method, k=options.k, keep_inputs=options.keep_inputs, expected=exp,
            analogy=_positions(expr), allowed=allowed, label=s.tokens.labels, index=index,
            expression=expr.render(), vector_set=label,
        )
    if choice.layer is None:
        return result
    from explorer.store.centering import MEAN_OF

    return replace(result, centering={"centered": choice.center, **({"mean_of": MEAN_OF} if choice.center else {})})


def _token_means_set(engine: Engine, model: str, choice: SetChoice, words: list[Resolved], allowed, progress):
    """(token means of the stored corpus at ``choice.layer``, centred with ``choice.center``;
    the tokens that may answer; its label), refusing words absent from the corpus."""
    from explorer.services.states import layer_token_means

    _, c, vs = layer_token_means(engine, model, choice.corpus, choice.layer, progress, choice.center)
    for r in words:
        if not all(vs.seen[i] for i in r.token_ids):
            raise ExplorerError(f"{r.word!r} ({r.token!r}) does not occur in corpus {c.name}")
    centred = ", centred on the layer mean" if choice.center else ""
    label = f"{model}/{c.name}/layer {choice.layer} (token means{centred})"
    return vs, (vs.seen if allowed is None else (allowed & vs.seen)), label


def _positions(expr: Expression) -> tuple[int, int, int] | None:
    """Where the analogy's a, b, c sit among the expression's terms (None: not an analogy)."""
    roles = expr.analogy()
    if roles is None:
        return None
    words = [t.word for t in expr.terms]
    a, b, c = roles
    return words.index(a), words.index(b), len(words) - 1 - words[::-1].index(c)


def token_neighbours(engine: Engine, token_id: int, options: QueryOptions = QueryOptions(), *,
                     progress: Progress | None = None) -> QueryResult:
    """Neighbours of one token id (``explorer neighbours --id``)."""
    with engine.catalog.session():
        s = engine.open_set(options.set.model, options.set.vectors)
        engine.warm(s, progress)
        if not 0 <= token_id < s.vectors.n_rows:
            raise ExplorerError(f"token id {token_id} is outside 0..{s.vectors.n_rows - 1}")
        text = s.tokens.labels([token_id]).get(token_id, str(token_id))
        r = Resolved(f"#{token_id}", (token_id,), (text,), "id")
        allowed = engine.allowed_mask(s, options.tokens.script, options.tokens.where)
        return analogy_math.run_query(
            s.vectors, [(r, 1.0)], method=options.method, k=options.k, keep_inputs=options.keep_inputs,
            allowed=allowed, label=s.tokens.labels, index=s.index, expression=f"#{token_id}", vector_set=s.label,
        )


def search(engine: Engine, queries: np.ndarray, k: int = 10, choice: SetChoice = SetChoice()):
    """Batched top-k (cosine) over a vector set: the library entry point for many queries."""
    with engine.catalog.session():
        return engine.open_set(choice.model, choice.vectors).index.search(queries, k)
