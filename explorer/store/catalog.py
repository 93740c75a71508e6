"""The DuckDB catalog: scoped connections and the models, vector sets and files tables.

The catalog is the source of truth. A vector set is visible only once its row exists,
and the row is written last (after its files are in place), so a killed export never
leaves a half-visible set. Connections are scoped (:meth:`Catalog.read`,
:meth:`Catalog.write`, :meth:`Catalog.session`): other processes can write between
user operations.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb

from explorer.store.connections import CatalogFile, catalog_file

CATALOG_FILE = "catalog.duckdb"


@dataclass(frozen=True)
class ModelRow:
    model_id: int
    name: str
    source: str
    source_kind: str
    model_type: str | None
    architecture: str | None
    n_layers: int | None
    d_model: int | None
    vocab_size: int | None
    tied: bool | None
    embed_scale: float | None
    model_dir: str | None


@dataclass(frozen=True)
class VectorSetRow:
    set_id: int
    model_id: int
    name: str
    kind: str
    n_rows: int
    dim: int
    dtype: str
    same_as: int | None
    path: str | None
    note: str | None


@dataclass(frozen=True)
class FileRow:
    set_id: int
    role: str
    path: str
    bytes: int
    sha256: str
    mtime_ns: int
    kind: str | None


class Catalog:
    """Typed access to the catalog, which owns its connections (see
    :mod:`explorer.store.connections`): use them only inside :meth:`read`, :meth:`write`
    and :meth:`session` blocks."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / CATALOG_FILE

    @property
    def _file(self) -> CatalogFile:
        pid = os.getpid()  # a forked child has a registry of its own (connections._forget_after_fork)
        found = self.__dict__.get("_file_of")
        if found is None or found[0] != pid:
            found = self.__dict__["_file_of"] = (pid, catalog_file(self.path))  # resolving the path: ~20 us
        return found[1]

    def exists(self) -> bool:
        return self.path.exists()

    # -- connections -------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, for this block only (inside a write block of the same
        thread: that block's connection). Creates or migrates the catalog if needed."""
        with self._file.read() as con:
            yield con

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside ``BEGIN``: ``COMMIT`` at the end of the block,
        ``ROLLBACK`` on an exception. Waits while another process writes."""
        with self._file.write() as con:
            yield con

    @contextmanager
    def session(self) -> Iterator["Catalog"]:
        """Keep the read connection open across the reads of this block (re-entrant,
        counted across threads); it closes when the last session ends. Never hold one
        during long compute: other processes cannot write meanwhile."""
        with self._file.session():
            yield self

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one read query; its rows."""
        with self.read() as con:
            return con.execute(sql, params).fetchall()

    def remembered(self) -> dict:
        """Answers remembered for the catalog as it is now, for reads outside any write
        block: dropped as soon as any process changes the file (see
        :mod:`explorer.store.readcache`). Take it before reading; inside a write block
        (whose changes may still roll back) it is a throwaway dict."""
        f = self._file
        return {} if f.writer is not None else f.answers.current()

    def migrate(self) -> int:
        """Create the catalog or bring it up to date; the schema version."""
        return self._file.migrate()

    # -- reads -------------------------------------------------------------------
    def models(self) -> list[ModelRow]:
        rows = self.query(f"SELECT {_cols(ModelRow)} FROM models ORDER BY model_id")
        return [ModelRow(*r) for r in rows]

    def model(self, name: str) -> ModelRow | None:
        rows = self.query(f"SELECT {_cols(ModelRow)} FROM models WHERE name = ?", [name])
        return ModelRow(*rows[0]) if rows else None

    def model_by_id(self, model_id: int) -> ModelRow:
        rows = self.query(f"SELECT {_cols(ModelRow)} FROM models WHERE model_id = ?", [model_id])
        return ModelRow(*rows[0])

    def vector_sets(self, model_id: int | None = None) -> list[VectorSetRow]:
        where, params = ("WHERE model_id = ?", [model_id]) if model_id is not None else ("", [])
        rows = self.query(f"SELECT {_cols(VectorSetRow)} FROM vector_sets {where} ORDER BY set_id", params)
        return [VectorSetRow(*r) for r in rows]

    def vector_set(self, model_id: int, name: str) -> VectorSetRow | None:
        rows = self.query(
            f"SELECT {_cols(VectorSetRow)} FROM vector_sets WHERE model_id = ? AND name = ?", [model_id, name]
        )
        return VectorSetRow(*rows[0]) if rows else None

    def vector_set_by_id(self, set_id: int) -> VectorSetRow:
        rows = self.query(f"SELECT {_cols(VectorSetRow)} FROM vector_sets WHERE set_id = ?", [set_id])
        return VectorSetRow(*rows[0])

    def files(self, set_id: int) -> dict[str, FileRow]:
        rows = self.query(f"SELECT {_cols(FileRow)} FROM files WHERE set_id = ?", [set_id])
        return {r[1]: FileRow(*r) for r in rows}

    def token_count(self, model_id: int) -> int:
        return self.query("SELECT count(*) FROM tokens WHERE model_id = ?", [model_id])[0][0]

    # -- writes ------------------------------------------------------------------
    def upsert_model(self, **fields: Any) -> int:
        fields = dict(fields)
        if isinstance(fields.get("config"), dict):
            fields["config"] = json.dumps(fields["config"], default=str)
        with self.write() as con:
            row = con.execute("SELECT model_id FROM models WHERE name = ?", [fields["name"]]).fetchone()
            if row:
                sets = ", ".join(f"{k} = ?" for k in fields)
                con.execute(f"UPDATE models SET {sets} WHERE model_id = ?", [*fields.values(), row[0]])
                return row[0]
            names = ", ".join(["model_id", *fields])
            marks = ", ".join(["nextval('seq_models')"] + ["?"] * len(fields))
            return con.execute(f"INSERT INTO models ({names}) VALUES ({marks}) RETURNING model_id",
                               list(fields.values())).fetchone()[0]

    def replace_tokens(self, model_id: int, columns: dict[str, Any]) -> None:
        """Replace a model's token table in one transaction (columns: numpy arrays)."""
        with self.write() as con:
            con.execute("DELETE FROM tokens WHERE model_id = ?", [model_id])
            tok = columns  # noqa: F841 - read by DuckDB's replacement scan below
            con.execute(
                "INSERT INTO tokens (model_id, token_id, raw, text, leading_space, script, is_special, is_byte, lookup) "
                "SELECT ?, token_id, raw, text, leading_space, script, is_special, is_byte, lower(ltrim(text)) FROM tok",
                [model_id],
            )

    def register_vector_set(self, model_id: int, name: str, files: Iterable[FileRow] = (), **fields: Any) -> int:
        """Write a vector set's row and its files' rows last, atomically."""
        with self.write() as con:
            old = con.execute(
                "SELECT set_id FROM vector_sets WHERE model_id = ? AND name = ?", [model_id, name]
            ).fetchone()
            if old:
                set_id = old[0]
                con.execute("DELETE FROM files WHERE set_id = ?", [set_id])
                con.execute("DELETE FROM vector_sets WHERE set_id = ?", [set_id])
            else:
                set_id = con.execute("SELECT nextval('seq_vector_sets')").fetchone()[0]
            cols = {"set_id": set_id, "model_id": model_id, "name": name, **fields}
            con.execute(
                f"INSERT INTO vector_sets ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                list(cols.values()),
            )
            for f in files:
                _insert_file(con, FileRow(set_id, f.role, f.path, f.bytes, f.sha256, f.mtime_ns, f.kind))
            return set_id

    def put_file(self, row: FileRow) -> None:
        with self.write() as con:
            con.execute("DELETE FROM files WHERE set_id = ? AND role = ?", [row.set_id, row.role])
            _insert_file(con, row)

    def delete_model(self, model_id: int) -> None:
        with self.write() as con:
            con.execute("DELETE FROM files WHERE set_id IN (SELECT set_id FROM vector_sets WHERE model_id = ?)", [model_id])
            con.execute("DELETE FROM vector_sets WHERE model_id = ?", [model_id])
            con.execute("DELETE FROM tokens WHERE model_id = ?", [model_id])
            con.execute("DELETE FROM models WHERE model_id = ?", [model_id])


def _insert_file(con: duckdb.DuckDBPyConnection, f: FileRow) -> None:
    con.execute(
        "INSERT INTO files (set_id, role, path, bytes, sha256, mtime_ns, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [f.set_id, f.role, f.path, f.bytes, f.sha256, f.mtime_ns, f.kind],
    )


def _cols(cls: type) -> str:
    return ", ".join(cls.__dataclass_fields__)
