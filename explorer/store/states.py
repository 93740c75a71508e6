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

from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from explorer.errors import CorruptFile, ExplorerError
from explorer.store.catalog import Catalog
from explorer.store.files import atomic_path, sha256_file
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


@dataclass(frozen=True)
class StateFileRow:
    """A finished corpus's file as recorded: what ``index verify`` checks it against."""

    corpus_id: int
    layer: int
    role: str  # states | norms
    path: str
    bytes: int
    sha256: str
    mtime_ns: int


_COLS = ", ".join(CorpusRow.__dataclass_fields__)
_FILE_COLS = ", ".join(StateFileRow.__dataclass_fields__)


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

    def document_spans(self, corpus_id: int) -> list[tuple[int, int, int]]:
        """(doc_id, first_state, n_tokens) of every document, in order: its rows in each layer file."""
        return self.catalog.query(
            "SELECT doc_id, first_state, n_tokens FROM documents WHERE corpus_id = ? ORDER BY doc_id", [corpus_id])

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
        with self.catalog.write() as con:
            cid = con.execute("SELECT nextval('seq_corpora')").fetchone()[0]
            con.execute("DELETE FROM state_files WHERE corpus_id = ?", [cid])  # rows of a corpus deleted by hand
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
        with self.catalog.write() as con:
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

    def finish(self, corpus: CorpusRow, progress=None) -> CorpusRow:
        """Once every document is committed: write per-layer norms, record every layer
        file's size, mtime and SHA-256, and mark the corpus done (one transaction)."""
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
        self.record_files(corpus, progress, done=True)
        return self.corpus(corpus.model_id, corpus.name)

    def record_files(self, corpus: CorpusRow, progress=None, done: bool = False) -> list[StateFileRow]:
        """Checksum the corpus's layer and norms files and store the rows (replacing any);
        ``done`` also marks the corpus finished in the same transaction."""
        rows = []
        for layer in range(corpus.n_layers):
            for role, name in (("states", layer_file(layer)), ("norms", norms_file(layer))):
                rows.append(self.file_row(corpus, layer, role, name))
            if progress:
                progress("checksums", layer + 1, corpus.n_layers)
        with self.catalog.write() as con:
            con.execute("DELETE FROM state_files WHERE corpus_id = ?", [corpus.corpus_id])
            con.executemany(f"INSERT INTO state_files ({_FILE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", [list(astuple(r)) for r in rows])
            if done:
                con.execute(
                    "UPDATE corpora SET status = 'done', finished_at = current_timestamp WHERE corpus_id = ?", [corpus.corpus_id]
                )
        return rows

    def file_row(self, corpus: CorpusRow, layer: int, role: str, name: str) -> StateFileRow:
        """The corpus's file ``name`` as it is on disk now (size, SHA-256, mtime), to record."""
        rel = f"{corpus.path}/{name}"
        st = (self.root / rel).stat()
        return StateFileRow(corpus.corpus_id, layer, role, rel, st.st_size, sha256_file(self.root / rel), st.st_mtime_ns)

    def record_layer_files(self, rows: Sequence[StateFileRow]) -> None:
        """Record ``rows``, replacing any recorded file of the same corpus, layer and role."""
        with self.catalog.write() as con:
            for r in rows:
                con.execute("DELETE FROM state_files WHERE corpus_id = ? AND layer = ? AND role = ?",
                            [r.corpus_id, r.layer, r.role])
            con.executemany(f"INSERT INTO state_files ({_FILE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", [list(astuple(r)) for r in rows])

    def set_mtime(self, f: StateFileRow, mtime_ns: int) -> None:
        """Record a new mtime for a file whose SHA-256 still matches."""
        with self.catalog.write() as con:
            con.execute("UPDATE state_files SET mtime_ns = ? WHERE corpus_id = ? AND layer = ? AND role = ?",
                        [mtime_ns, f.corpus_id, f.layer, f.role])

    def files(self, corpus_id: int) -> list[StateFileRow]:
        rows = self.catalog.query(f"SELECT {_FILE_COLS} FROM state_files WHERE corpus_id = ? ORDER BY layer, role DESC", [corpus_id])
        return [StateFileRow(*r) for r in rows]

    # -- queries over stored states (neighbour search, token means) -------------------
    def state_ids(self, corpus: CorpusRow, where: str) -> list[int]:
        """Ids of the corpus's states matching ``where`` (checked by predicate.check_where)
        over the hidden_states view; a predicate DuckDB refuses is one line."""
        sql = ("SELECT state_id FROM hidden_states WHERE corpus = ? "
               f"AND model = (SELECT name FROM models WHERE model_id = ?) AND {where}")
        return _predicate_rows(self.catalog, sql, [corpus.name, corpus.model_id], "hidden_states")

    def token_ids(self, corpus_id: int) -> list[int]:
        """The token id of every state, in state order."""
        return [r[0] for r in self.catalog.query("SELECT token_id FROM states WHERE corpus_id = ? ORDER BY state_id", [corpus_id])]

    def positions(self, corpus_id: int) -> list[int]:
        """The position of every state in its document, in state order."""
        return [r[0] for r in self.catalog.query("SELECT position FROM states WHERE corpus_id = ? ORDER BY state_id", [corpus_id])]

    def index_path(self, corpus_id: int, layer: int, kind: str) -> str | None:
        rows = self.catalog.query("SELECT path FROM state_indexes WHERE corpus_id = ? AND layer = ? AND kind = ?",
                                  [corpus_id, layer, kind])
        return rows[0][0] if rows else None

    def hits(self, corpus: CorpusRow, model_name: str, ids: Sequence[int]) -> dict[int, tuple]:
        """state_id -> (document, position, token, token_id, lang)."""
        rows = self.catalog.query(
            "SELECT state_id, document, position, token, token_id, lang FROM hidden_states "
            "WHERE corpus = ? AND model = ? AND state_id IN (SELECT unnest(?))", [corpus.name, model_name, list(ids)])
        return {r[0]: r[1:] for r in rows}

    def tokens_around(self, corpus_id: int, doc: int, lo: int, hi: int) -> list[tuple[int, str]]:
        """(position, token) of one document's states at positions lo..hi."""
        return self.catalog.query(
            "SELECT position, token FROM states WHERE corpus_id = ? AND doc_id = ? AND position BETWEEN ? AND ? "
            "ORDER BY position", [corpus_id, doc, lo, hi])

    def record_index(self, corpus_id: int, layer: int, kind: str, path: str, size: int, sha256: str,
                     recall_at_10: float, params: str, seconds: float) -> None:
        """Record a compressed index of one layer (replacing one of the same kind)."""
        with self.catalog.write() as con:
            con.execute("DELETE FROM state_indexes WHERE corpus_id = ? AND layer = ? AND kind = ?", [corpus_id, layer, kind])
            con.execute(
                "INSERT INTO state_indexes (corpus_id, layer, kind, path, bytes, sha256, recall_at_10, params, build_seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [corpus_id, layer, kind, path, size, sha256, recall_at_10, params, seconds])

    def delete(self, corpus: CorpusRow) -> None:
        import shutil

        with self.catalog.write() as con:
            for table in ("state_files", "state_indexes", "states", "documents", "corpora"):
                con.execute(f"DELETE FROM {table} WHERE corpus_id = ?", [corpus.corpus_id])
        shutil.rmtree(self.root / corpus.path, ignore_errors=True)


def layer_path(root: Path, corpus: CorpusRow, layer: int) -> Path:
    if not 0 <= layer < corpus.n_layers:
        raise ExplorerError(f"layer {layer} is outside 0..{corpus.n_layers - 1} for corpus {corpus.name}")
    return Path(root) / corpus.path / layer_file(layer)


def verify_corpus(store: StateStore, corpus: CorpusRow, model_name: str, full: bool = False) -> str:
    """Check a corpus's layer files (and compressed indexes) against the catalog; return
    what was checked, or raise :class:`CorruptFile` naming the first bad file.

    A finished corpus is checked like a vector set (size and mtime, SHA-256 when the
    mtime changed or ``full``). One exported before checksums were kept has its shapes
    checked, then its checksums recorded. An unfinished one has its shapes checked."""
    from explorer.store.sets import _refresh_mtime, check_file

    fix = _reexport_hint(corpus, model_name)
    if corpus.status != "done":
        _check_shapes(store, corpus, norms=False, fix=fix)
        return f"hidden states, export not finished ({corpus.committed:,} states committed): layer file shapes checked"
    recorded = store.files(corpus.corpus_id)
    if not recorded:
        _check_shapes(store, corpus, norms=True, fix=fix)
        store.record_files(corpus)
        return f"hidden states: {2 * corpus.n_layers} layer files' shapes checked, checksums recorded now (none were stored)"
    for f in recorded:
        problem = check_file(store.catalog, f, full)
        if problem:
            raise CorruptFile(f"corrupt hidden-state {f.role} file: {problem}; {fix}")
        _refresh_mtime(store.catalog, f, lambda mtime: store.set_mtime(f, mtime))
    n_index = _verify_state_indexes(store, corpus, model_name, full)
    return f"hidden states: {len(recorded)} layer files" + (f", {n_index} compressed indexes" if n_index else "")


def _reexport_hint(corpus: CorpusRow, model_name: str) -> str:
    import shlex

    if corpus.source in (None, "prompts"):
        return f"re-export it with `explorer export-states {model_name} --prompt ... --name {corpus.name} --force` (the same prompts)"
    return f"re-export it with `explorer export-states {model_name} --corpus {shlex.quote(corpus.source)} --name {corpus.name} --force`"


def check_layer(store: StateStore, corpus: CorpusRow, layer: int, progress=None) -> None:
    """Fast check of one layer's recorded files before a search reads them."""
    from explorer.store.sets import _refresh_mtime, check_file, deferred

    for f in store.files(corpus.corpus_id):
        if f.layer == layer:
            problem = check_file(store.catalog, f, progress=deferred(progress, f"checking layer {layer} {f.role} (SHA-256)"))
            if problem:
                raise CorruptFile(f"corrupt hidden-state {f.role} file: {problem}; run `explorer index verify`")
            _refresh_mtime(store.catalog, f, lambda mtime: store.set_mtime(f, mtime))


def _check_shapes(store: StateStore, corpus: CorpusRow, norms: bool, fix: str) -> None:
    """Every layer file (and norms file) exists, is a .npy of the planned shape and dtype,
    and has exactly the bytes that shape needs."""
    total = store.catalog.query("SELECT coalesce(sum(n_tokens), 0) FROM documents WHERE corpus_id = ?",
                                [corpus.corpus_id])[0][0]
    for layer in range(corpus.n_layers):
        expected = [(layer_file(layer), (total, corpus.dim), np.dtype(DTYPES[corpus.dtype]))]
        if norms:
            expected.append((norms_file(layer), (total,), np.dtype(np.float32)))
        for name, shape, dtype in expected:
            rel = f"{corpus.path}/{name}"
            try:
                mm = np.load(store.root / rel, mmap_mode="r")
                size = (store.root / rel).stat().st_size
            except FileNotFoundError:
                raise CorruptFile(f"hidden-state file {rel} is missing; {fix}") from None
            except (ValueError, OSError) as exc:
                raise CorruptFile(f"hidden-state file {rel} is unreadable ({str(exc)[:120]}); {fix}") from None
            if mm.shape != shape or mm.dtype != dtype or size != mm.offset + mm.nbytes:
                raise CorruptFile(f"hidden-state file {rel} holds {mm.shape} {mm.dtype} in {size} bytes, "
                                  f"expected {shape} {dtype}; {fix}")


def _verify_state_indexes(store: StateStore, corpus: CorpusRow, model_name: str, full: bool) -> int:
    rows = store.catalog.query("SELECT layer, kind, path, bytes, sha256 FROM state_indexes WHERE corpus_id = ?", [corpus.corpus_id])
    from explorer.store.compressed import split_kind

    for layer, stored, rel, size, sha in rows:
        kind, centered = split_kind(stored)
        fix = (f"rebuild it with `explorer states-index --model {model_name} --corpus {corpus.name} --layer {layer} "
               f"--kind {kind}{' --center' if centered else ''}`")
        path = store.root / rel
        if not path.exists():
            raise CorruptFile(f"compressed index {rel} is missing; {fix}")
        if path.stat().st_size != size:
            raise CorruptFile(f"compressed index {rel} has {path.stat().st_size} bytes, the catalog recorded {size}; {fix}")
        if full and sha256_file(path) != sha:
            raise CorruptFile(f"compressed index {rel} fails its SHA-256 checksum; {fix}")
    return len(rows)


def _predicate_rows(catalog: Catalog, sql: str, params: list, what: str) -> list[int]:
    """First column of a query that splices a user predicate; DuckDB's refusal is one line."""
    try:
        return [r[0] for r in catalog.query(sql, params)]
    except ExplorerError:
        raise
    except Exception as exc:
        raise ExplorerError(f"bad --where predicate on {what}: {str(exc).splitlines()[0]}") from None
