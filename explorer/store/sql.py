"""User SQL over the catalog: read-only and sandboxed unless the user asks to write.

A read-only query runs on a connection that is opened read-only, cannot touch files
outside the catalog (no ``COPY ... TO``, ``read_csv('/etc/passwd')``, ``ATTACH``), cannot
install or load extensions, and cannot change those settings back (locked
configuration). ``--write`` gives an ordinary read-write connection.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from explorer.errors import ExplorerError
from explorer.store.catalog import Catalog
from explorer.store.connections import catalog_file, is_lock_error

SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}


@dataclass
class SqlResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]
    arrays: dict[str, Any] | None  # column -> numpy array, for binary formats

    def to_dict(self) -> dict:
        return {"columns": self.columns, "rows": [list(r) for r in self.rows]}


def _connect(path: Path, write: bool, timeout: float = 60.0) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            if write:
                return duckdb.connect(str(path), read_only=False)
            return duckdb.connect(str(path), read_only=True, config=dict(SANDBOX))
        except duckdb.Error as exc:
            if not is_lock_error(exc) or time.monotonic() > deadline:
                raise ExplorerError(f"cannot open the catalog: {str(exc).splitlines()[0]}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def explain_error(exc: Exception, write: bool) -> str:
    msg = str(exc).splitlines()[0]
    low = msg.lower()
    if not write:
        if "read-only" in low or "read only" in low:
            return f"the catalog is read-only for `explorer sql`; pass --write to change it ({msg})"
        if "external access" in low or "file system operations are disabled" in low or "permission error" in low:
            return f"queries cannot read or write files outside the catalog, attach databases or install extensions without --write ({msg})"
        if "lock_configuration" in low or "configuration has been locked" in low or "cannot change" in low:
            return f"settings are locked for read-only queries; pass --write ({msg})"
        if "extension" in low:
            return f"extensions cannot be installed or loaded without --write ({msg})"
    return msg


def run_sql(root: Path, sql: str, write: bool = False, want_arrays: bool = False) -> SqlResult:
    catalog = Catalog(root)
    if not catalog.exists():
        raise ExplorerError(f"no catalog at {catalog.path}; export a model first")
    with catalog.read():
        pass  # brings an old catalog up to the current schema
    if not sql.strip():
        raise ExplorerError("empty query")
    with catalog_file(catalog.path).exclusive():  # its own settings: no cached reader meanwhile
        return _run(catalog.path, sql, write, want_arrays)


def _run(path: Path, sql: str, write: bool, want_arrays: bool) -> SqlResult:
    con = _connect(path, write)
    try:
        try:
            rel = con.sql(sql)
            if rel is None:  # a statement without a result (CREATE, INSERT, ...)
                return SqlResult([], [], [], None)
            columns, types = list(rel.columns), [str(t) for t in rel.types]
            if want_arrays:
                arrays = rel.fetchnumpy()
                n = len(next(iter(arrays.values()))) if arrays else 0
                rows = [tuple(arrays[c][i] for c in columns) for i in range(min(n, 0))]
                return SqlResult(columns, types, rows, arrays)
            return SqlResult(columns, types, rel.fetchall(), None)
        except duckdb.Error as exc:
            raise ExplorerError(explain_error(exc, write)) from None
    finally:
        con.close()


def check_output(path: Path) -> None:
    """Refuse, before any work, an output path that cannot be written as a file."""
    if path.is_dir():
        raise ExplorerError(f"cannot write {str(path)!r}: it is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ExplorerError(f"cannot write {str(path)!r}: the folder {str(parent)!r} {what}")
    if (path.exists() and not os.access(path, os.W_OK)) or (not path.exists() and not os.access(parent, os.W_OK | os.X_OK)):
        raise ExplorerError(f"cannot write {str(path)!r}: permission denied")


def write_text(path: Path, text: str) -> None:
    """Write a text result to ``path``; an OS error is one line."""
    check_output(path)
    try:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise ExplorerError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def write_parquet(result: SqlResult, path: Path) -> None:
    """Write a result to Parquet from a separate in-memory connection (the sandbox stays shut)."""
    check_output(path)
    if not result.columns:
        raise ExplorerError("the statement returned no result to write")
    con = duckdb.connect()
    try:
        data = result.arrays or {}  # noqa: F841 - scanned by DuckDB by name
        con.execute(f"COPY (SELECT * FROM data) TO '{_quote(path)}' (FORMAT parquet)")
    except duckdb.Error as exc:
        raise ExplorerError(f"cannot write {str(path)!r}: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def describe_schema(root: Path) -> tuple[list[tuple], list[tuple]]:
    """The catalog's tables and views ``(name, kind, description)`` and their columns
    ``(table, column, type)``, for ``explorer schema``."""
    objs = run_sql(root, """
        SELECT table_name AS name, 'table' AS kind, coalesce(comment, '') FROM duckdb_tables()
        UNION ALL SELECT view_name, 'view', coalesce(comment, '') FROM duckdb_views() WHERE NOT internal
        ORDER BY kind, name""").rows
    cols = run_sql(root, """
        SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal
        ORDER BY table_name, column_index""").rows
    return objs, cols
