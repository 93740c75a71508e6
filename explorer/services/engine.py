"""The workspace every service takes first: a data root, its catalog, and the vector
sets opened so far (each verified against the catalog once).

Imports numpy, duckdb (and faiss lazily) only. A model that is not in the catalog yet
is exported on first use (that path imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.core.types import DEFAULT_MODEL, Progress, Report
from explorer.errors import ExplorerError, UnknownModel
from explorer.paths import default_root
from explorer.query.vocab import Resolved, resolve
from explorer.store import sets
from explorer.store.catalog import Catalog, ModelRow, VectorSetRow
from explorer.store.index import SearchIndex
from explorer.store.predicate import check_where
from explorer.store.tokens import CatalogTokens, token_ids
from explorer.store.vectorset import INDEX, VECTORS, VectorSet

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
        """Every operation releases the catalog, so that writers in other processes are
        never locked out by an idle reader; what queries read from it (models, set rows,
        word candidates, token texts) is remembered until the file changes
        (``Catalog.remembered``), so a repeated query opens no connection at all. A
        block of many reads can share one connection: ``with engine.catalog.session(): ...``."""
        self.root = Path(root) if root else default_root()
        self.catalog = Catalog(self.root)
        self.backend = backend
        self._open: dict[tuple[str, str], OpenSet] = {}

    # -- models ----------------------------------------------------------------
    def models(self) -> list[ModelRow]:
        return self.catalog.models() if self.catalog.exists() else []

    def model(self, name: str | None, auto_export: bool = True, report: Report | None = None,
              progress: Progress | None = None) -> ModelRow:
        name = name or DEFAULT_MODEL
        memo = self.catalog.remembered()  # taken before reading: see Catalog.remembered
        if ("model", name) in memo:
            return memo[("model", name)]
        row = self.catalog.model(name) if self.catalog.exists() else None
        if row is not None and self.catalog.vector_set(row.model_id, "input") is not None:
            memo[("model", name)] = row
            return row
        if row is not None and row.source_kind == "imported":
            raise ExplorerError(
                f"model {name!r} was not fully imported (interrupted?); import it again with "
                f"`explorer vectors import {row.source} --name {name} --replace`"
            )
        if not auto_export:
            raise UnknownModel(f"model {name!r} is not in the catalog; run `explorer export {name}`")
        from explorer.models import sources  # no torch at import time

        source = sources.resolve_source(name)  # UnknownModel for nonsense, before any heavy import
        stored = self.catalog.model(source.name) if self.catalog.exists() else None
        if stored is not None and self.catalog.vector_set(stored.model_id, "input") is not None:
            return stored
        from explorer.models.export import export_model

        export_model(name, self.root, report=report or (lambda s: None), progress=progress)
        row = self.catalog.model(source.name)
        assert row is not None
        return row

    # -- vector sets -------------------------------------------------------------
    def open_set(self, model: str | None = None, vectors: str = "input", *, auto_export: bool = True,
                 report: Report | None = None, progress: Progress | None = None) -> OpenSet:
        m = self.model(model, auto_export=auto_export, report=report, progress=progress)
        row = self._set_row(m, vectors)
        key = (m.name, vectors)
        opened = self._open.get(key)
        if opened is not None and opened.model == m and opened.row == row:
            return opened
        if row is None:
            names = ", ".join(r.name for r in self.catalog.vector_sets(m.model_id))
            raise ExplorerError(f"model {m.name} has no {vectors!r} vector set (it has: {names})")
        owner = sets.storage_row(self.catalog, row)
        vs = sets.open_verified(self.catalog, owner, m.name, progress)
        directory = self.root / owner.path
        index_path = directory / INDEX
        tokenizer = Path(m.model_dir) / "tokenizer.json" if m.model_dir else None
        tokens = CatalogTokens(self.catalog, m.model_id, m.name, tokenizer)
        idx = _VerifiedIndex(vs, index_path if index_path.exists() else None, self.backend, self.catalog, owner, m.name)
        opened = OpenSet(m, row, vs, tokens, idx)
        self._open[key] = opened
        return opened

    def _set_row(self, m: ModelRow, vectors: str) -> VectorSetRow | None:
        """The catalog's row of a set (remembered while the catalog is unchanged)."""
        memo = self.catalog.remembered()
        key = ("set", m.model_id, vectors)
        if key not in memo:
            memo[key] = self.catalog.vector_set(m.model_id, vectors)
        return memo[key]

    def resolve(self, s: OpenSet, word: str, variant: str = "auto", multi: str = "refuse") -> Resolved:
        return resolve(s.tokens, word, variant, multi)

    def allowed_mask(self, s: OpenSet, script: str | None = None, where: str | None = None) -> np.ndarray | None:
        """Rows of the set that may answer: tokens in ``script`` matching ``where`` (None: all)."""
        if script is None and where is None:
            return None
        where = check_where(where)  # one expression, checked by DuckDB's parser; spliced as rendered
        ids = token_ids(self.catalog, s.model.model_id, script, where)
        return row_mask(ids, s.vectors.n_rows, "the filter matches no tokens")

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


def row_mask(ids, n_rows: int, empty: str) -> np.ndarray:
    """Boolean mask of ``n_rows`` rows with ``ids`` set; no row at all is the error ``empty``."""
    ids = np.asarray(ids, dtype=np.int64)
    mask = np.zeros(n_rows, dtype=bool)
    mask[ids[(ids >= 0) & (ids < n_rows)]] = True
    if not mask.any():
        raise ExplorerError(empty)
    return mask
