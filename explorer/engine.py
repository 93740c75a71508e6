"""The façade front ends call: open a store, resolve words, run queries.

Imports numpy, duckdb (and faiss lazily) only. A model that is not in the catalog yet
is exported on first use (that path imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from explorer.errors import ExplorerError, UnknownModel
from explorer.paths import default_root
from explorer.query import analogy as analogy_mod
from explorer.query.parse import Expression, parse
from explorer.query.vocab import Resolved, resolve
from explorer.store import sets
from explorer.store.catalog import Catalog, ModelRow, VectorSetRow
from explorer.store.index import SearchIndex
from explorer.store.tokens import CatalogTokens
from explorer.store.vectorset import INDEX, VectorSet

DEFAULT_MODEL = "gemma3-270m"
VECTOR_NAMES = ("input", "output")


@dataclass
class OpenSet:
    model: ModelRow
    row: VectorSetRow
    vectors: VectorSet
    tokens: CatalogTokens
    index: SearchIndex

    @property
    def label(self) -> str:
        return f"{self.model.name}/{self.row.name}"


class Engine:
    def __init__(self, root: Path | None = None, backend: str = "auto"):
        self.root = Path(root) if root else default_root()
        self.catalog = Catalog(self.root)
        self.backend = backend
        self._open: dict[tuple[str, str], OpenSet] = {}

    # -- models ----------------------------------------------------------------
    def models(self) -> list[ModelRow]:
        return self.catalog.models() if self.catalog.exists() else []

    def model(self, name: str | None, auto_export: bool = True, report: Callable[[str], None] | None = None,
              progress=None) -> ModelRow:
        name = name or DEFAULT_MODEL
        row = self.catalog.model(name) if self.catalog.exists() else None
        if row is not None and self.catalog.vector_set(row.model_id, "input") is not None:
            return row
        if not auto_export:
            raise UnknownModel(f"model {name!r} is not in the catalog; run `explorer export {name}`")
        from explorer.models import sources  # no torch at import time

        source = sources.resolve(name)  # UnknownModel for nonsense, before any heavy import
        stored = self.catalog.model(source.name) if self.catalog.exists() else None
        if stored is not None and self.catalog.vector_set(stored.model_id, "input") is not None:
            return stored
        from explorer.models.export import export_model

        export_model(name, self.root, report=report or (lambda s: None), progress=progress)
        row = self.catalog.model(source.name)
        assert row is not None
        return row

    # -- vector sets -------------------------------------------------------------
    def open_set(self, model: str | None = None, vectors: str = "input", **kw) -> OpenSet:
        m = self.model(model, **kw)
        key = (m.name, vectors)
        if key in self._open:
            return self._open[key]
        row = self.catalog.vector_set(m.model_id, vectors)
        if row is None:
            names = ", ".join(r.name for r in self.catalog.vector_sets(m.model_id))
            raise ExplorerError(f"model {m.name} has no {vectors!r} vector set (it has: {names})")
        owner = sets.storage_row(self.catalog, row)
        sets.verify(self.catalog, owner, m.name, roles=("vectors", "norms"))
        directory = self.root / owner.path
        vs = VectorSet.open(directory)
        index_path = directory / INDEX
        tokenizer = Path(m.model_dir) / "tokenizer.json" if m.model_dir else None
        tokens = CatalogTokens(self.catalog, m.model_id, m.name, tokenizer)
        idx = _VerifiedIndex(vs, index_path if index_path.exists() else None, self.backend, self.catalog, owner, m.name)
        opened = OpenSet(m, row, vs, tokens, idx)
        self._open[key] = opened
        return opened

    # -- queries -----------------------------------------------------------------
    def resolve(self, s: OpenSet, word: str, variant: str = "auto", multi: str = "refuse") -> Resolved:
        return resolve(s.tokens, word, variant, multi)

    def allowed_mask(self, s: OpenSet, script: str | None = None, where: str | None = None) -> np.ndarray | None:
        if script is None and where is None:
            return None
        clauses, params = ["model_id = ?"], [s.model.model_id]
        if script:
            clauses.append("script = ?")
            params.append(script)
        if where:
            clauses.append(f"({where})")
        sql = f"SELECT token_id FROM tokens WHERE {' AND '.join(clauses)}"
        try:
            ids = np.array([r[0] for r in self.catalog.query(sql, params)], dtype=np.int64)
        except ExplorerError:
            raise
        except Exception as exc:
            raise ExplorerError(f"bad --where predicate on the tokens table: {str(exc).splitlines()[0]}") from None
        mask = np.zeros(s.vectors.n_rows, dtype=bool)
        mask[ids[(ids >= 0) & (ids < len(mask))]] = True
        if not mask.any():
            raise ExplorerError("the filter matches no tokens")
        return mask

    def query(
        self,
        expression: str | Expression,
        *,
        model: str | None = None,
        vectors: str = "input",
        k: int = 10,
        method: str = "3cosadd",
        keep_inputs: bool = False,
        expect: str | None = None,
        variant: str = "auto",
        multi: str = "refuse",
        script: str | None = None,
        where: str | None = None,
        token_ids: list[int] | None = None,
        **kw,
    ) -> analogy_mod.QueryResult:
        expr = parse(expression) if isinstance(expression, str) else expression
        if k < 1:
            raise ExplorerError("-k must be at least 1")
        s = self.open_set(model, vectors, **kw)
        terms = [(self.resolve(s, t.word, variant, multi), t.weight) for t in expr.terms]
        exp = self.resolve(s, expect, variant, multi) if expect else None
        roles = expr.analogy()
        positions = None
        if roles is not None:
            words = [t.word for t in expr.terms]
            a, b, c = roles
            positions = (words.index(a), words.index(b), len(words) - 1 - words[::-1].index(c))
        return analogy_mod.run_query(
            s.vectors,
            terms,
            method=method,
            k=k,
            keep_inputs=keep_inputs,
            expected=exp,
            analogy=positions,
            allowed=self.allowed_mask(s, script, where),
            label=s.tokens.labels,
            index=s.index,
            expression=expr.render(),
            vector_set=s.label,
        )

    def token_query(self, token_id: int, **kw) -> analogy_mod.QueryResult:
        """Neighbours of one token id (``explorer neighbours --id``)."""
        s = self.open_set(kw.get("model"), kw.get("vectors", "input"))
        if not 0 <= token_id < s.vectors.n_rows:
            raise ExplorerError(f"token id {token_id} is outside 0..{s.vectors.n_rows - 1}")
        text = s.tokens.labels([token_id]).get(token_id, str(token_id))
        r = Resolved(f"#{token_id}", (token_id,), (text,), "id")
        kw = dict(kw)
        allowed = self.allowed_mask(s, kw.pop("script", None), kw.pop("where", None))
        return analogy_mod.run_query(
            s.vectors, [(r, 1.0)], method=kw.get("method", "3cosadd"), k=kw.get("k", 10),
            keep_inputs=kw.get("keep_inputs", False), allowed=allowed, label=s.tokens.labels, index=s.index,
            expression=f"#{token_id}", vector_set=s.label,
        )

    def search(self, queries: np.ndarray, k: int = 10, model: str | None = None, vectors: str = "input"):
        """Batched top-k (cosine) over a vector set: the library entry point for many queries."""
        return self.open_set(model, vectors).index.search(queries, k)


class _VerifiedIndex(SearchIndex):
    """Checks the FAISS file against the catalog the first time it is loaded."""

    def __init__(self, vs, path, backend, catalog, owner, model_name):
        super().__init__(vs, path, backend)
        self._check = (catalog, owner, model_name)

    def _faiss(self):
        if self._faiss_index is None and self._check is not None:
            catalog, owner, name = self._check
            sets.verify(catalog, owner, name, roles=("index",))
            self._check = None
        return super()._faiss()
