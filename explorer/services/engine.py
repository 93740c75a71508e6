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
from explorer.store.predicate import check_where
from explorer.store.tokens import CatalogTokens
from explorer.store.vectorset import INDEX, VECTORS, VectorSet

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
    def __init__(self, root: Path | None = None, backend: str = "auto", hold_catalog: bool = False):
        """``hold_catalog`` keeps a read connection open between queries (~60 ms saved per
        query in a long-lived process) at the price of locking out writers in other
        processes until :meth:`close`; by default each query releases it."""
        self.root = Path(root) if root else default_root()
        self.catalog = Catalog(self.root)
        self.backend = backend
        self.hold_catalog = hold_catalog
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
        if row is not None and row.source_kind == "imported":
            raise ExplorerError(
                f"model {name!r} was not fully imported (interrupted?); import it again with "
                f"`explorer vectors import {row.source} --name {name} --replace`"
            )
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
        vs = sets.open_verified(self.catalog, owner, m.name, kw.get("progress"))
        directory = self.root / owner.path
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
        where = check_where(where)  # one expression, checked by DuckDB's parser; spliced as rendered
        clauses, params = ["model_id = ?"], [s.model.model_id]
        if script:
            clauses.append("script = ?")
            params.append(script)
        if where:
            clauses.append(where)
        sql = f"SELECT token_id FROM tokens WHERE {' AND '.join(clauses)}"
        return _id_mask(self, sql, params, s.vectors.n_rows, "the tokens table", "the filter matches no tokens")

    def query(self, expression, **kw) -> analogy_mod.QueryResult:
        """Vector arithmetic (see :meth:`_query`); releases the catalog afterwards so that
        writers in other processes are never locked out by an idle reader."""
        try:
            return self._query(expression, **kw)
        finally:
            if not self.hold_catalog:
                self.catalog.close()

    def _query(
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
        layer: int | None = None,
        corpus: str | None = None,
        **kw,
    ) -> analogy_mod.QueryResult:
        """Vector arithmetic over a vocabulary set, or (``layer``) over the per-token mean
        hidden states of a stored corpus at that layer."""
        expr = parse(expression) if isinstance(expression, str) else expression
        if k < 1:
            raise ExplorerError("-k must be at least 1")
        s = self.open_set(model, vectors if layer is None else "input", **kw)
        if layer is None:
            self.warm(s, kw.get("progress"))
        terms = [(self.resolve(s, t.word, variant, multi), t.weight) for t in expr.terms]
        exp = self.resolve(s, expect, variant, multi) if expect else None
        roles = expr.analogy()
        positions = None
        if roles is not None:
            words = [t.word for t in expr.terms]
            a, b, c = roles
            positions = (words.index(a), words.index(b), len(words) - 1 - words[::-1].index(c))
        vs, index, label, allowed = s.vectors, s.index, s.label, self.allowed_mask(s, script, where)
        if layer is not None:
            _, c, vs = layer_token_means(self, s.model.name, corpus, layer, kw.get("progress"))
            for r in [t for t, _ in terms] + ([exp] if exp else []):
                if not all(vs.seen[i] for i in r.token_ids):
                    raise ExplorerError(f"{r.word!r} ({r.token!r}) does not occur in corpus {c.name}")
            allowed = vs.seen if allowed is None else (allowed & vs.seen)
            index, label = None, f"{s.model.name}/{c.name}/layer {layer} (token means)"
        return analogy_mod.run_query(
            vs,
            terms,
            method=method,
            k=k,
            keep_inputs=keep_inputs,
            expected=exp,
            analogy=positions,
            allowed=allowed,
            label=s.tokens.labels,
            index=index,
            expression=expr.render(),
            vector_set=label,
        )

    def token_query(self, token_id: int, **kw) -> analogy_mod.QueryResult:
        """Neighbours of one token id (``explorer neighbours --id``)."""
        try:
            return self._token_query(token_id, **kw)
        finally:
            if not self.hold_catalog:
                self.catalog.close()

    def close(self) -> None:
        self.catalog.close()

    def _token_query(self, token_id: int, **kw) -> analogy_mod.QueryResult:
        s = self.open_set(kw.get("model"), kw.get("vectors", "input"))
        self.warm(s, kw.get("progress"))
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

    def warm(self, s: OpenSet, progress=None) -> None:
        """Before a set's first scan: read its matrix into the page cache if it is cold (with
        progress), and let the FAISS index report its own first load the same way."""
        s.index.progress = progress
        if not s.index.warmed:
            sets.warm(s.vectors.directory / VECTORS, f"reading {s.label} from disk", progress)
            s.index.warmed = True


class _VerifiedIndex(SearchIndex):
    """Checks the FAISS file against the catalog the first time it is loaded, and reads a
    cold file with progress (``progress``: set by the engine around a query)."""

    def __init__(self, vs, path, backend, catalog, owner, model_name):
        super().__init__(vs, path, backend)
        self._check = (catalog, owner, model_name)
        self.progress = None
        self.warmed = False  # the matrix has been read once (Engine.warm)

    def _faiss(self):
        if self._faiss_index is None and self._check is not None:
            catalog, owner, name = self._check
            sets.verify(catalog, owner, name, roles=("index",), progress=self.progress)
            sets.warm(self.index_path, f"reading the FAISS index of {name}/{owner.name}", self.progress)
            self._check = None
        return super()._faiss()


# -- hidden states -------------------------------------------------------------------


def _corpus(engine: Engine, model: ModelRow, corpus: str | None):
    from explorer.store.states import StateStore

    store = StateStore(engine.catalog)
    rows = [c for c in store.corpora(model.model_id) if c.status == "done"]
    if not rows:
        raise ExplorerError(f"no hidden states stored for {model.name}; run `explorer export-states {model.name}`")
    if corpus is None:
        return rows[-1]
    for c in rows:
        if c.name == corpus:
            return c
    names = ", ".join(c.name for c in rows)
    raise ExplorerError(f"no finished corpus {corpus!r} for {model.name} (have: {names})")


def open_layer(engine: Engine, model: str | None, corpus: str | None, layer: int, progress=None):
    """(model row, corpus row, VectorSet of that layer's states); the layer's files are
    checked first and, if cold, read into the page cache with ``progress``."""
    from explorer.store.states import StateStore, check_layer, layer_file, layer_path, norms_file

    m = engine.model(model, auto_export=False)
    c = _corpus(engine, m, corpus)
    layer_path(engine.root, c, layer)  # range check
    check_layer(StateStore(engine.catalog), c, layer, progress)  # size and mtime as recorded (SHA-256 if the mtime changed)
    sets.warm(engine.root / c.path / layer_file(layer), f"reading {c.name} layer {layer} from disk", progress)
    vs = VectorSet.open(engine.root / c.path, layer_file(layer), norms_file(layer))
    return m, c, vs


def states_mask(engine: Engine, corpus, n_rows: int, where: str | None) -> np.ndarray | None:
    """Rows of the states matching a predicate over the hidden_states view."""
    where = check_where(where)
    if not where:
        return None
    sql = (
        "SELECT state_id FROM hidden_states WHERE corpus = ? "
        f"AND model = (SELECT name FROM models WHERE model_id = ?) AND {where}"
    )
    return _id_mask(engine, sql, [corpus.name, corpus.model_id], n_rows, "hidden_states",
                    "the --where filter matches no stored states")


def _id_mask(engine: Engine, sql: str, params: list, n_rows: int, what: str, empty: str) -> np.ndarray:
    """Boolean row mask from a query returning row ids; a bad user predicate is one line."""
    try:
        ids = np.array([r[0] for r in engine.catalog.query(sql, params)], dtype=np.int64)
    except ExplorerError:
        raise
    except Exception as exc:
        raise ExplorerError(f"bad --where predicate on {what}: {str(exc).splitlines()[0]}") from None
    mask = np.zeros(n_rows, dtype=bool)
    mask[ids[(ids >= 0) & (ids < n_rows)]] = True
    if not mask.any():
        raise ExplorerError(empty)
    return mask


def layer_token_means(engine: Engine, model: str | None, corpus: str | None, layer: int, progress=None):
    from explorer.query.states import token_means

    m, c, vs = open_layer(engine, model, corpus, layer, progress)
    ids = np.array([r[0] for r in engine.catalog.query(
        "SELECT token_id FROM states WHERE corpus_id = ? ORDER BY state_id", [c.corpus_id])], dtype=np.int64)
    return m, c, token_means(vs.vectors, ids, int(m.vocab_size))


def state_neighbours(engine: Engine, vector: np.ndarray, *, model: str | None, corpus: str | None, layer: int,
                     k: int = 10, where: str | None = None, index: str = "exact", progress=None):
    """Nearest stored hidden states at ``layer`` to ``vector``, with their context."""
    from explorer.query.states import StateHit
    from explorer.store import compressed
    from explorer.store.index import SearchIndex

    m, c, vs = open_layer(engine, model, corpus, layer, progress)
    allowed = states_mask(engine, c, vs.n_rows, where)
    if index == "exact":
        hits = SearchIndex(vs, None, "numpy").search(vector, k, allowed)
    else:
        row = engine.catalog.query(
            "SELECT path FROM state_indexes WHERE corpus_id = ? AND layer = ? AND kind = ?", [c.corpus_id, layer, index]
        )
        if not row:
            raise ExplorerError(
                f"no {index} index for {c.name} layer {layer}; build it with `explorer states-index --layer {layer} --kind {index}`"
            )
        hits = compressed.search(compressed.load(engine.root / row[0][0], index), index, vs, vector, k, allowed)
    ids = [int(i) for i in hits.ids[0] if i >= 0]
    meta = {
        r[0]: r[1:]
        for r in engine.catalog.query(
            "SELECT state_id, document, position, token, token_id, lang FROM hidden_states "
            "WHERE corpus = ? AND model = ? AND state_id IN (SELECT unnest(?))",
            [c.name, m.name, ids],
        )
    }
    out = []
    for n, (sid, score) in enumerate(zip(ids, hits.scores[0])):
        doc, pos, tok, tid, lang = meta[sid]
        out.append(StateHit(n + 1, float(score), sid, doc, pos, tok, tid, lang, _snippet(engine, c.corpus_id, doc, pos)))
    return m, c, tuple(out)


def _snippet(engine: Engine, corpus_id: int, doc: int, pos: int, before: int = 6, after: int = 3) -> str:
    rows = engine.catalog.query(
        "SELECT position, token FROM states WHERE corpus_id = ? AND doc_id = ? AND position BETWEEN ? AND ? "
        "ORDER BY position",
        [corpus_id, doc, pos - before, pos + after],
    )
    return "".join(f"[{t}]" if p == pos else t for p, t in rows).replace("\n", " ")


def build_state_indexes(engine: Engine, *, model: str | None, corpus: str | None, layers: list[int] | None,
                        kind: str, progress=None) -> list[dict]:
    """Build compressed indexes for some layers of a corpus; recall@10 is measured and stored."""
    import json

    from explorer.store import compressed
    from explorer.store.files import sha256_file

    m = engine.model(model, auto_export=False)
    c = _corpus(engine, m, corpus)
    todo = layers if layers else list(range(c.n_layers))
    out = []
    for n, layer in enumerate(todo):
        _, _, vs = open_layer(engine, m.name, c.name, layer)
        rel = f"{c.path}/layer_{layer:02d}.{kind}.faiss"
        rep = compressed.build_and_measure(vs, kind, engine.root / rel)
        path = engine.root / rel
        con = engine.catalog.writer()
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM state_indexes WHERE corpus_id = ? AND layer = ? AND kind = ?", [c.corpus_id, layer, kind])
            con.execute(
                "INSERT INTO state_indexes (corpus_id, layer, kind, path, bytes, sha256, recall_at_10, params, build_seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [c.corpus_id, layer, kind, rel, rep.bytes, sha256_file(path), rep.recall_at_10, json.dumps(rep.params), rep.seconds],
            )
            con.execute("COMMIT")
        finally:
            con.close()
        exact_bytes = vs.n_rows * vs.dim * vs.vectors.dtype.itemsize
        out.append({"layer": layer, **rep.to_dict(), "exact_bytes": exact_bytes})
        if progress:
            progress(f"{kind} indexes", n + 1, len(todo))
    return out
