"""Hidden states in the store: corpora planned up front, written in place, committed per batch.

Layout: ``states/<model>/<corpus>/layer_XX.npy`` (one matrix per layer, rows = state ids)
and ``layer_XX.norms.npy`` once the corpus is complete. Every document's rows are
planned before the run (tokenising is cheap), so its place in each layer file is known:
a batch writes its rows in place, then commits its ``states`` rows and marks its
documents done in one transaction. A killed run redoes only uncommitted documents and
never duplicates a row; several workers can fill disjoint document ranges of the same
corpus at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from explorer.errors import ExplorerError
from explorer.store.catalog import Catalog, _next_id
from explorer.store.files import atomic_path
from explorer.store.vectorset import row_norms

DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass(frozen=True)
class CorpusRow:
    corpus_id: int
    model_id: int
    name: str
    source: str | None
    n_docs: int
    n_layers: int
    dim: int
    dtype: str
    path: str
    status: str
    committed: int

    @property
    def n_states(self) -> int:
        return self.committed


def layer_file(layer: int) -> str:
    return f"layer_{layer:02d}.npy"


def norms_file(layer: int) -> str:
    return f"layer_{layer:02d}.norms.npy"


_COLS = ", ".join(CorpusRow.__dataclass_fields__)


class StateStore:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.root = catalog.root

    # -- reads -------------------------------------------------------------------
    def corpus(self, model_id: int, name: str) -> CorpusRow | None:
        rows = self.catalog.query(f"SELECT {_COLS} FROM corpora WHERE model_id = ? AND name = ?", [model_id, name])
        return CorpusRow(*rows[0]) if rows else None

    def corpora(self, model_id: int | None = None) -> list[CorpusRow]:
        where, params = ("WHERE model_id = ?", [model_id]) if model_id is not None else ("", [])
        return [CorpusRow(*r) for r in self.catalog.query(f"SELECT {_COLS} FROM corpora {where} ORDER BY corpus_id", params)]

    def pending_docs(self, corpus_id: int, lo: int = 0, hi: int | None = None) -> list[tuple[int, str, int, int]]:
        """(doc_id, text, n_tokens, first_state) of documents not yet committed, in order."""
        hi = hi if hi is not None else 2**31 - 1
        return self.catalog.query(
            "SELECT doc_id, text, n_tokens, first_state FROM documents WHERE corpus_id = ? AND NOT done "
            "AND doc_id >= ? AND doc_id < ? ORDER BY doc_id",
            [corpus_id, lo, hi],
        )

    # -- writes ------------------------------------------------------------------
    def plan(
        self, model_id: int, name: str, source: str, docs: Sequence[tuple[str | None, str, int]],
        n_layers: int, dim: int, dtype: str, model_name: str,
    ) -> CorpusRow:
        """Create a corpus with its documents (lang, text, n_tokens) and preallocated layer files."""
        if dtype not in DTYPES:
            raise ExplorerError(f"unknown dtype {dtype!r}; choose float32 or float16")
        rel = f"states/{model_name}/{name}"
        total = sum(n for _, _, n in docs)
        directory = self.root / rel
        directory.mkdir(parents=True, exist_ok=True)
        for layer in range(n_layers):
            path = directory / layer_file(layer)
            if path.exists():
                path.unlink()
            np.lib.format.open_memmap(path, mode="w+", dtype=DTYPES[dtype], shape=(total, dim)).flush()
        firsts = np.concatenate([[0], np.cumsum([n for _, _, n in docs])[:-1]]).astype(np.int64) if docs else []
        con = self.catalog.writer()
        try:
            con.execute("BEGIN")
            cid = _next_id(con, "corpora", "corpus_id")
            con.execute(
                "INSERT INTO corpora (corpus_id, model_id, name, source, n_docs, n_layers, dim, dtype, path, status, committed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', 0)",
                [cid, model_id, name, source, len(docs), n_layers, dim, dtype, rel],
            )
            plan = {
                "doc_id": np.arange(len(docs), dtype=np.int32),
                "lang": np.array([d[0] for d in docs], dtype=object),
                "text": np.array([d[1] for d in docs], dtype=object),
                "n_tokens": np.array([d[2] for d in docs], dtype=np.int32),
                "first_state": np.asarray(firsts, dtype=np.int64),
            }
            con.execute(
                "INSERT INTO documents (corpus_id, doc_id, lang, text, n_tokens, first_state, done) "
                "SELECT ?, doc_id, lang, text, n_tokens, first_state, false FROM plan",
                [cid],
            )
            con.execute("COMMIT")
        finally:
            con.close()
        row = self.corpus(model_id, name)
        assert row is not None
        return row

    def open_layers(self, corpus: CorpusRow) -> list[np.memmap]:
        """Writable maps of every layer file; write rows in place, then :meth:`flush`."""
        return [np.load(self.root / corpus.path / layer_file(i), mmap_mode="r+") for i in range(corpus.n_layers)]

    @staticmethod
    def flush(layers: Sequence[np.memmap]) -> None:
        """Make written rows durable (msync) before their metadata is committed."""
        for mm in layers:
            mm.flush()

    def commit(self, corpus: CorpusRow, doc_ids: Sequence[int], states: dict[str, Any]) -> None:
        """Record the states of finished documents and mark them done: one transaction."""
        n = len(states["state_id"])
        con = self.catalog.writer()
        try:
            con.execute("BEGIN")
            con.execute(
                "DELETE FROM states WHERE corpus_id = ? AND doc_id IN (SELECT unnest(?))", [corpus.corpus_id, list(doc_ids)]
            )
            batch = states  # noqa: F841 - read by DuckDB's replacement scan
            con.execute(
                "INSERT INTO states (corpus_id, state_id, doc_id, position, token_id, token) "
                "SELECT ?, state_id, doc_id, position, token_id, token FROM batch",
                [corpus.corpus_id],
            )
            con.execute(
                "UPDATE documents SET done = true WHERE corpus_id = ? AND doc_id IN (SELECT unnest(?))",
                [corpus.corpus_id, list(doc_ids)],
            )
            con.execute("UPDATE corpora SET committed = committed + ? WHERE corpus_id = ?", [n, corpus.corpus_id])
            con.execute("COMMIT")
        finally:
            con.close()

    def finish(self, corpus: CorpusRow, progress=None) -> CorpusRow:
        """Once every document is committed: write per-layer norms and mark the corpus done."""
        left = self.catalog.query("SELECT count(*) FROM documents WHERE corpus_id = ? AND NOT done", [corpus.corpus_id])[0][0]
        if left:
            raise ExplorerError(f"corpus {corpus.name} still has {left} documents to export")
        for layer in range(corpus.n_layers):
            mm = np.load(self.root / corpus.path / layer_file(layer), mmap_mode="r")
            with atomic_path(self.root / corpus.path / norms_file(layer)) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, row_norms(mm))
            if progress:
                progress("norms", layer + 1, corpus.n_layers)
        con = self.catalog.writer()
        try:
            con.execute(
                "UPDATE corpora SET status = 'done', finished_at = current_timestamp WHERE corpus_id = ?", [corpus.corpus_id]
            )
        finally:
            con.close()
        return self.corpus(corpus.model_id, corpus.name)

    def delete(self, corpus: CorpusRow) -> None:
        import shutil

        con = self.catalog.writer()
        try:
            con.execute("BEGIN")
            for table in ("state_indexes", "states", "documents", "corpora"):
                con.execute(f"DELETE FROM {table} WHERE corpus_id = ?", [corpus.corpus_id])
            con.execute("COMMIT")
        finally:
            con.close()
        shutil.rmtree(self.root / corpus.path, ignore_errors=True)


def layer_path(root: Path, corpus: CorpusRow, layer: int) -> Path:
    if not 0 <= layer < corpus.n_layers:
        raise ExplorerError(f"layer {layer} is outside 0..{corpus.n_layers - 1} for corpus {corpus.name}")
    return Path(root) / corpus.path / layer_file(layer)
