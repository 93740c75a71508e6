"""The DuckDB catalog: schema, numbered migrations and typed accessors.

The catalog is the source of truth. A vector set is visible only once its row exists,
and the row is written last (after its files are in place), so a killed export never
leaves a half-visible set. Connections are short-lived: other processes can read
between writes.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import duckdb

from explorer.errors import ExplorerError
from explorer.store import compat
from explorer.store.schema import MIGRATIONS, SCHEMA_VERSION

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


# One cached read-only connection per catalog file and process: DuckDB refuses a
# read-write connection to a file that the same process holds open read-only, so every
# writer closes the cached reader first (see Catalog.writer).
_READERS: dict[str, duckdb.DuckDBPyConnection] = {}
_MIGRATED: set[str] = set()  # catalog files this process has brought up to date


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg or "conflicting" in msg or "being used" in msg


def connect(path: Path, read_only: bool, timeout: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open the catalog, retrying while another process holds the write lock. A new
    catalog is created in the format older DuckDB readers (the 1.5 CLI) can open."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            # readers cannot touch files outside the catalog (a --where predicate is user SQL)
            config = {"enable_external_access": False} if read_only else {}
            if not read_only and not path.exists():
                config = compat.create_config()
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as exc:  # IOException on lock conflicts
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise ExplorerError(
                        f"catalog {path} is busy (another explorer process is writing); try again"
                    ) from None
                raise ExplorerError(f"cannot open catalog {path}: {str(exc).splitlines()[0]}") from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.5)


class Catalog:
    """Typed access to the catalog. Each method opens a short-lived connection."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / CATALOG_FILE

    def close(self) -> None:
        """Release this process's cached read connection to the catalog file."""
        con = _READERS.pop(self._key, None)
        if con is not None:
            con.close()

    @property
    def _key(self) -> str:
        return str(self.path.resolve())

    # -- connections -------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def reader(self) -> duckdb.DuckDBPyConnection:
        if not self.path.exists():
            self.migrate()
        if compat.needs_migration(self.path) and _writable(self.path):
            self.close()
            compat.migrate_storage(self.path, _connect_rw)
        con = connect(self.path, read_only=True)
        version = _version(con)
        if version < SCHEMA_VERSION:
            con.close()
            self.migrate()
            con = connect(self.path, read_only=True)
        elif version > SCHEMA_VERSION:
            con.close()
            raise ExplorerError(
                f"catalog {self.path} has schema v{version}, newer than this explorer (v{SCHEMA_VERSION}); upgrade explorer"
            )
        return con

    def writer(self) -> duckdb.DuckDBPyConnection:
        self.close()  # one process cannot hold read-only and read-write connections at once
        self.root.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        compat.migrate_storage(self.path, _connect_rw)  # a catalog written by DuckDB 2.0 defaults
        con = connect(self.path, read_only=False)
        if fresh or self._key not in _MIGRATED:  # once per file and process, not on every write
            _apply_migrations(con)
            _MIGRATED.add(self._key)
        return con

    def migrate(self) -> int:
        _MIGRATED.discard(self._key)  # an explicit migration always checks the file
        con = self.writer()
        try:
            return _version(con)
        finally:
            con.close()

    # -- reads -------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read query on a cached read-only connection (opening one costs ~40 ms)."""
        con = _READERS.get(self._key)
        if con is None:
            con = _READERS[self._key] = self.reader()
        return con.execute(sql, params).fetchall()

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
        con = self.writer()
        try:
            con.execute("BEGIN")
            row = con.execute("SELECT model_id FROM models WHERE name = ?", [fields["name"]]).fetchone()
            if row:
                model_id = row[0]
                sets = ", ".join(f"{k} = ?" for k in fields)
                con.execute(f"UPDATE models SET {sets} WHERE model_id = ?", [*fields.values(), model_id])
            else:
                model_id = _next_id(con, "models", "model_id")
                names = ", ".join(["model_id", *fields])
                marks = ", ".join("?" * (len(fields) + 1))
                con.execute(f"INSERT INTO models ({names}) VALUES ({marks})", [model_id, *fields.values()])
            con.execute("COMMIT")
            return model_id
        finally:
            con.close()

    def replace_tokens(self, model_id: int, columns: dict[str, Any]) -> None:
        """Replace a model's token table in one transaction (columns: numpy arrays)."""
        con = self.writer()
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM tokens WHERE model_id = ?", [model_id])
            tok = columns  # noqa: F841 - read by DuckDB's replacement scan below
            con.execute(
                "INSERT INTO tokens (model_id, token_id, raw, text, leading_space, script, is_special, is_byte, lookup) "
                "SELECT ?, token_id, raw, text, leading_space, script, is_special, is_byte, lower(ltrim(text)) FROM tok",
                [model_id],
            )
            con.execute("COMMIT")
        finally:
            con.close()

    def register_vector_set(self, model_id: int, name: str, files: Iterable[FileRow] = (), **fields: Any) -> int:
        """Write a vector set's row and its files' rows last, atomically."""
        con = self.writer()
        try:
            con.execute("BEGIN")
            old = con.execute(
                "SELECT set_id FROM vector_sets WHERE model_id = ? AND name = ?", [model_id, name]
            ).fetchone()
            if old:
                set_id = old[0]
                con.execute("DELETE FROM files WHERE set_id = ?", [set_id])
                con.execute("DELETE FROM vector_sets WHERE set_id = ?", [set_id])
            else:
                set_id = _next_id(con, "vector_sets", "set_id")
            cols = {"set_id": set_id, "model_id": model_id, "name": name, **fields}
            con.execute(
                f"INSERT INTO vector_sets ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                list(cols.values()),
            )
            for f in files:
                _insert_file(con, FileRow(set_id, f.role, f.path, f.bytes, f.sha256, f.mtime_ns, f.kind))
            con.execute("COMMIT")
            return set_id
        finally:
            con.close()

    def put_file(self, row: FileRow) -> None:
        con = self.writer()
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM files WHERE set_id = ? AND role = ?", [row.set_id, row.role])
            _insert_file(con, row)
            con.execute("COMMIT")
        finally:
            con.close()

    def delete_model(self, model_id: int) -> None:
        con = self.writer()
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM files WHERE set_id IN (SELECT set_id FROM vector_sets WHERE model_id = ?)", [model_id])
            con.execute("DELETE FROM vector_sets WHERE model_id = ?", [model_id])
            con.execute("DELETE FROM tokens WHERE model_id = ?", [model_id])
            con.execute("DELETE FROM models WHERE model_id = ?", [model_id])
            con.execute("COMMIT")
        finally:
            con.close()


def _connect_rw(path: Path) -> duckdb.DuckDBPyConnection:
    return connect(path, read_only=False)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _insert_file(con: duckdb.DuckDBPyConnection, f: FileRow) -> None:
    con.execute(
        "INSERT INTO files (set_id, role, path, bytes, sha256, mtime_ns, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [f.set_id, f.role, f.path, f.bytes, f.sha256, f.mtime_ns, f.kind],
    )


def _cols(cls: type) -> str:
    return ", ".join(cls.__dataclass_fields__)


def _next_id(con: duckdb.DuckDBPyConnection, table: str, col: str) -> int:
    return con.execute(f"SELECT coalesce(max({col}), 0) + 1 FROM {table}").fetchone()[0]


def _version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def _apply_migrations(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    current = _version(con)
    for version, name, sql in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN")
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        con.execute("COMMIT")
