"""Connections to a catalog file: opened, migrated, cached, locked and closed here only.

DuckDB lets one process hold either read-only or read-write connections to a file,
never both, and lets one process at a time write. So, per catalog file and process
(:class:`CatalogFile`, one per resolved path, kept in a private registry):

* one re-entrant lock: every use of a connection to the file happens under it, so
  threads (the TUI's workers) never share a connection at the same time;
* one cached read-only connection, opened by the first read. Outside any session a
  read block's connection closes when the outermost block ends; inside sessions (counted
  across threads) it stays open until the last session ends, so other processes can
  write between user operations;
* a write block closes that reader first, opens a read-write connection (retrying while
  another process holds the write lock), runs inside ``BEGIN``/``COMMIT`` (``ROLLBACK``
  on an exception) and closes it;
* whether this process has already applied the migrations to the file;
* the answers read from it that are remembered while it stays unchanged
  (:mod:`explorer.store.readcache`).
"""

from __future__ import annotations

import os
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from explorer.errors import ExplorerError
from explorer.store import compat
from explorer.store.readcache import ReadCache
from explorer.store.schema import MIGRATIONS, SCHEMA_VERSION

Connection = duckdb.DuckDBPyConnection


def is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg or "conflicting" in msg or "being used" in msg


def connect(path: Path, read_only: bool, timeout: float = 30.0) -> Connection:
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
            if not is_lock_error(exc) or time.monotonic() > deadline:
                if is_lock_error(exc):
                    raise ExplorerError(
                        f"catalog {path} is busy (another explorer process is writing); try again"
                    ) from None
                raise ExplorerError(f"cannot open catalog {path}: {str(exc).splitlines()[0]}") from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.5)


def connect_rw(path: Path) -> Connection:
    return connect(path, read_only=False)


class CatalogFile:
    """One catalog file's connections in this process (see the module's docstring)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        self.reader: Connection | None = None  # the cached read-only connection
        self.writer: Connection | None = None  # the connection of the write block in progress
        self.reading = 0  # read blocks open (only the thread holding the lock can be in one)
        self.sessions = 0  # sessions open, across threads
        self.migrated = False  # this process has applied the migrations to the file
        self.answers = ReadCache(path)  # reads remembered while the file is unchanged

    # -- scoped access -------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.lock:
            if self.writer is not None:  # a read inside this thread's write block sees its changes
                yield self.writer
                return
            if self.reader is None:
                self.reader = self._open_reader()
            self.reading += 1
            try:
                yield self.reader
            finally:
                self.reading -= 1
                if not self.reading and not self.sessions:
                    self._close_reader()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.lock:
            if self.writer is not None:  # nested in this thread's write block: one transaction
                yield self.writer
                return
            con = self._open_writer()  # refused inside a read block; closes the cached reader
            self.writer = con
            try:
                con.execute("BEGIN")
                try:
                    yield con
                except BaseException:
                    _rollback(con)
                    raise
                con.execute("COMMIT")
            finally:
                self.writer = None
                con.close()
                self.answers.forget()  # whatever this block changed, the file's stamp changes too

    @contextmanager
    def session(self) -> Iterator[None]:
        with self.lock:
            self.sessions += 1
        try:
            yield
        finally:
            with self.lock:
                self.sessions -= 1
                if not self.sessions and not self.reading:
                    self._close_reader()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the file with no cached reader, for a connection opened by hand with
        settings of its own (``explorer sql``'s sandbox)."""
        with self.lock:
            self._refuse_inside_read("open another connection")
            self._close_reader()
            try:
                yield
            finally:
                self.answers.forget()  # the hand-made connection may have written

    # -- opening and migrating -----------------------------------------------------
    def _open_writer(self) -> Connection:
        """A new read-write connection; migrations applied once per file and process."""
        with self.lock:
            self._refuse_inside_read("open a read-write connection")
            self._close_reader()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            compat.migrate_storage(self.path, connect_rw)  # a catalog written by DuckDB 2.0 defaults
            con = connect(self.path, read_only=False)
            if fresh or not self.migrated:
                try:
                    apply_migrations(con)
                except BaseException:
                    con.close()
                    raise
                self.migrated = True
            return con

    def migrate(self) -> int:
        """Apply any missing migration (always checking the file); the schema version."""
        with self.lock:
            self._refuse_inside_read("migrate")
            self.migrated = False
            con = self._open_writer()
            try:
                return version(con)
            finally:
                con.close()

    def _open_reader(self) -> Connection:
        if not self.path.exists():
            self.migrate()
        if compat.needs_migration(self.path) and _writable(self.path):
            self._refuse_inside_read("convert the catalog")
            self._close_reader()  # the conversion holds the write lock
            compat.migrate_storage(self.path, connect_rw)
        con = connect(self.path, read_only=True)
        found = version(con)
        if found < SCHEMA_VERSION:
            con.close()
            self.migrate()
            con = connect(self.path, read_only=True)
        elif found > SCHEMA_VERSION:
            con.close()
            raise ExplorerError(
                f"catalog {self.path} has schema v{found}, newer than this explorer (v{SCHEMA_VERSION}); upgrade explorer"
            )
        return con

    def _close_reader(self) -> None:
        con, self.reader = self.reader, None
        if con is not None:
            con.close()

    def _refuse_inside_read(self, what: str) -> None:
        if self.reading:
            raise RuntimeError(f"cannot {what} on catalog {self.path} inside a read() block of the same thread")


_FILES: dict[str, CatalogFile] = {}
_FILES_LOCK = threading.Lock()
_INHERITED: list[dict[str, CatalogFile]] = []


def _forget_after_fork() -> None:
    """A forked child starts with no connection and unlocked files (another thread of the
    parent may have held a lock); the parent's connections are left alone, never closed."""
    global _FILES, _FILES_LOCK
    _INHERITED.append(_FILES)
    _FILES, _FILES_LOCK = {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def catalog_file(path: Path) -> CatalogFile:
    """The one :class:`CatalogFile` of this process for ``path`` (by resolved path)."""
    key = str(Path(path).resolve())
    with _FILES_LOCK:
        found = _FILES.get(key)
        if found is None:
            found = _FILES[key] = CatalogFile(Path(path).absolute())
        return found


def version(con: Connection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def apply_migrations(con: Connection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    current = version(con)
    for number, name, sql in MIGRATIONS:
        if number <= current:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
        except BaseException:
            _rollback(con)
            raise
        con.execute("COMMIT")


def _rollback(con: Connection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back (already aborted or ended)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
