"""The TUI's first tab: every stored vector set and hidden-state corpus, and the tokens of
one model, searched by text, script, word start and id range."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.services.engine import Engine
from explorer.store import tokens as repo
from explorer.store.tokens import TokenSearch

__all__ = ["TokenSearch", "Tokens", "script_counts", "sets_and_corpora", "tokens_matching"]


@dataclass(frozen=True)
class Tokens:
    """The first ``limit`` matching rows ``(token_id, raw, text, script, leading_space,
    is_special)`` and how many match in all."""

    rows: list[tuple]
    total: int


def tokens_matching(engine: Engine, search: TokenSearch, limit: int) -> Tokens:
    with engine.catalog.session():
        rows, total = repo.find_tokens(engine.catalog, search, limit)
    return Tokens(rows, total)


def sets_and_corpora(engine: Engine) -> list[tuple]:
    """``(model_id, model, set, kind, rows, dim, dtype, note)`` for every stored set and corpus."""
    return repo.stored_sets(engine.catalog)


def script_counts(engine: Engine, model_id: int) -> list[tuple[str, int]]:
    return repo.token_scripts(engine.catalog, model_id)
