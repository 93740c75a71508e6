"""Keep the catalog readable by older DuckDB readers (the 1.5 CLI, Harlequin).

DuckDB 2.0 writes storage version 69 (999 in the header of some builds); PyPI's
``duckdb-cli`` 1.5.x reads versions up to 68. A catalog is therefore created with
``storage_compatibility_version = 'v1.5.0'`` (the file keeps that version when later
connections write to it), and a catalog whose header says more is copied once into a
1.5-compatible file:

* under the catalog's write lock (a read-write connection to the old file, held until
  the new file has replaced it, so no writer can slip in between);
* into ``catalog.duckdb.tmp-PID`` with ``COPY FROM DATABASE``, then checked: the same
  tables with the same row counts, views, indexes, sequences, comments and schema
  version;
* made durable (fsync) and renamed over the old file. A process killed before the rename
  leaves the old catalog as it was and a ``.tmp-PID`` file that the next migration
  deletes; after the rename the new file is complete.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Callable

import duckdb

from explorer.errors import ExplorerError
from explorer.store.files import fsync_dir, pid_alive

# Highest storage version (the uint64 after b"DUCK" in the file header) that the DuckDB
# 1.5 CLI reads, and the compatibility setting that makes DuckDB >= 1.5 write it.
READABLE_STORAGE = 68
COMPAT_VERSION = "v1.5.0"
_HEADER = struct.Struct("<8s4sQ")  # checksum, magic, storage version


def _library_writes_compat() -> bool:
    try:
        major, minor = (int(x) for x in duckdb.__version__.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (1, 5)


def create_config() -> dict:
    """Connection settings for creating a new DuckDB file that the 1.5 CLI can read."""
    return {"storage_compatibility_version": COMPAT_VERSION} if _library_writes_compat() else {}


def storage_version(path: Path) -> int | None:
    """The storage version in a DuckDB file's header; None if it is not a DuckDB file."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
    except OSError:
        return None
    if len(head) < _HEADER.size:
        return None
    _, magic, version = _HEADER.unpack(head)
    return version if magic == b"DUCK" else None


def needs_migration(path: Path) -> bool:
    version = storage_version(path)
    return version is not None and version > READABLE_STORAGE


def migrate_storage(path: Path, connect_rw: Callable[[Path], duckdb.DuckDBPyConnection]) -> bool:
    """Rewrite ``path`` in the 1.5-compatible format if its header says it is newer.

    ``connect_rw`` opens the catalog read-write (waiting for other writers). Returns
    True if the file was rewritten."""
    path = Path(path)
    if not needs_migration(path):
        return False
    remove_stale(path)
    con = connect_rw(path)
    try:
        if not needs_migration(path):  # another process migrated it while we waited for the lock
            return False
        con.execute("CHECKPOINT")  # everything in the old file, nothing left in its WAL
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        _copy(con, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # still holding the old file's lock: no writer in between
        fsync_dir(path.parent)
        return True
    finally:
        con.close()
        for leftover in _temps(path, os.getpid()):
            leftover.unlink(missing_ok=True)


def _copy(con: duckdb.DuckDBPyConnection, tmp: Path) -> None:
    """Copy the open database into ``tmp`` (1.5 format) and check that nothing was lost."""
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    source = con.execute("SELECT current_database()").fetchone()[0]
    quoted = str(tmp).replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS explorer_compat (STORAGE_VERSION '{COMPAT_VERSION}')")
    try:
        con.execute(f'COPY FROM DATABASE "{source}" TO explorer_compat')
        before, after = describe(con, source), describe(con, "explorer_compat")
    finally:
        con.execute("DETACH explorer_compat")
    if before != after:
        lost = sorted(k for k in before if before[k] != after.get(k))
        tmp.unlink(missing_ok=True)
        raise ExplorerError(f"converting the catalog for older DuckDB readers lost {', '.join(lost)}; the catalog is unchanged")


def describe(con: duckdb.DuckDBPyConnection, database: str) -> dict:
    """What must survive a copy: objects with their definitions and comments, row counts,
    column comments, sequences' next values and the schema version."""
    db = database.replace("'", "''")

    def rows(sql: str) -> list:
        return sorted(map(repr, con.execute(sql.format(db=db)).fetchall()))

    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = '{db}'".format(db=db)
    ).fetchall()
    counts = {
        f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{database}"."{s}"."{t}"').fetchone()[0] for s, t in tables
    }
    out = {
        "tables": rows("SELECT schema_name, table_name, comment, sql FROM duckdb_tables() WHERE database_name = '{db}'"),
        "views": rows("SELECT schema_name, view_name, comment, sql FROM duckdb_views() WHERE database_name = '{db}' AND NOT internal"),
        "indexes": rows("SELECT schema_name, index_name, table_name, sql FROM duckdb_indexes() WHERE database_name = '{db}'"),
        "sequences": rows("SELECT schema_name, sequence_name, coalesce(last_value + increment_by, start_value) "
                          "FROM duckdb_sequences() WHERE database_name = '{db}'"),
        "column comments": rows("SELECT table_name, column_name, comment FROM duckdb_columns() "
                                "WHERE database_name = '{db}' AND comment IS NOT NULL"),
        "macros": rows("SELECT schema_name, function_name FROM duckdb_functions() "
                       "WHERE database_name = '{db}' AND function_type IN ('macro', 'table_macro')"),
        "row counts": sorted(counts.items()),
    }
    if "main.schema_migrations" in counts:
        out["schema version"] = con.execute(f'SELECT max(version) FROM "{database}".main.schema_migrations').fetchone()[0]
    return out


def _temps(path: Path, pid: int | None = None) -> list[Path]:
    """``<catalog>.tmp-PID`` files (and their WALs), of one process or of any."""
    out = []
    for p in path.parent.glob(f"{path.name}.tmp-*"):
        digits = p.name[len(path.name) + 5 :].split(".", 1)[0]
        if digits.isdigit() and (pid is None or int(digits) == pid):
            out.append(p)
    return out


def remove_stale(path: Path) -> None:
    """Delete migration temp files left by killed processes."""
    for p in _temps(path):
        digits = p.name[len(path.name) + 5 :].split(".", 1)[0]
        if int(digits) != os.getpid() and not pid_alive(int(digits)):
            p.unlink(missing_ok=True)
