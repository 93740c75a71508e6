"""Catalog answers remembered between user operations, forgotten when the catalog file changes.

A long-lived process (the TUI, a notebook, a benchmark) asks the catalog the same small
questions on every query: which model a name is, which tokens a word resolves to, what
a token's text is. Opening the catalog to answer them costs as much as scoring every row
of a vocabulary, and keeping it open would lock writers in other processes out. So the
answers are kept in memory per catalog file, under a stamp of the file (device, inode,
size, mtime) and of its write-ahead log: a commit by any process changes the stamp, and
the next look drops every remembered answer.

Racy stamps: a file system stamps mtime from a coarse clock, so a write in the same tick
as the look could leave the stamp as it was. As git does for its index, a stamp whose
newest mtime is less than ``RACY_S`` before the moment it was taken is not trusted:
answers read under it are not kept, and the file is read again next time.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

RACY_S = 2.0  # a file changed this recently may change again within the same mtime tick
WAL_SUFFIX = ".wal"  # DuckDB's write-ahead log: catalog.duckdb.wal

Stamp = tuple[tuple[int, int, int, int] | None, tuple[int, int, int, int] | None]


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def stamp(path: Path | str) -> Stamp:
    """The catalog file's and its write-ahead log's (device, inode, size, mtime_ns)."""
    return _stat(str(path)), _stat(str(path) + WAL_SUFFIX)


def _settled(s: Stamp, now_ns: int) -> bool:
    """The catalog exists and neither file changed within ``RACY_S`` of ``now_ns``."""
    if s[0] is None:
        return False
    newest = max(part[3] for part in s if part is not None)
    return now_ns - newest >= RACY_S * 1e9


class ReadCache:
    """Answers read from one catalog file, valid while its stamp stays the same."""

    def __init__(self, path: Path):
        self.path = str(path)
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._answers: dict = {}
        self._trusted = False

    def current(self) -> dict:
        """The answers remembered for the catalog as it is now; a throwaway dict while
        its stamp is racy (see the module's docstring). Take it BEFORE reading the
        catalog, so that what is stored in it is never older than its stamp."""
        now_ns = time.time_ns()
        s = stamp(self.path)
        with self._lock:
            if s != self._stamp or not self._trusted:
                self._stamp, self._answers, self._trusted = s, {}, _settled(s, now_ns)
            return self._answers if self._trusted else {}

    def forget(self) -> None:
        with self._lock:
            self._stamp, self._answers, self._trusted = None, {}, False
