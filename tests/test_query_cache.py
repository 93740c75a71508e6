"""Warm queries: catalog answers are remembered in memory while the catalog file is
unchanged, the catalog is never held open between queries, and a write by another
process is seen by the next query."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from explorer.services.engine import Engine
from conftest import first_model
from explorer.services.query import QueryOptions, SetChoice, analogy
from explorer.store import connections
from explorer.store.readcache import RACY_S, WAL_SUFFIX, ReadCache

EXPR = "woman - man + king"


def age(path, seconds: float = 60.0) -> None:
    """Set a file's mtime back, as if it had been written ``seconds`` ago."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_remembered_answers_are_dropped_when_the_file_or_its_log_changes(tmp_path):
    f = tmp_path / "catalog.duckdb"
    f.write_bytes(b"x" * 100)
    age(f)
    cache = ReadCache(f)
    cache.current()["a"] = 1
    assert cache.current().get("a") == 1
    with open(f, "r+b") as fh:  # same size, new contents: only the mtime tells
        fh.write(b"y")
    assert "a" not in cache.current()
    age(f)
    cache.current()["a"] = 2
    wal = tmp_path / ("catalog.duckdb" + WAL_SUFFIX)
    wal.write_bytes(b"log")
    age(wal)
    assert "a" not in cache.current()


def test_a_file_changed_just_now_is_not_trusted(tmp_path):
    f = tmp_path / "catalog.duckdb"
    f.write_bytes(b"x")
    t = time.time() - RACY_S / 4  # changed a moment ago: a write in the same mtime tick would go unseen
    os.utime(f, (t, t))
    cache = ReadCache(f)
    cache.current()["a"] = 1
    assert "a" not in cache.current()
    age(f)
    cache.current()["a"] = 1
    assert cache.current().get("a") == 1
    gone = ReadCache(tmp_path / "missing.duckdb")
    gone.current()["a"] = 1
    assert "a" not in gone.current()


@pytest.fixture
def aged_root(tiny_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    age_catalog(root)
    return root


def age_catalog(root) -> None:
    for f in (root / "catalog.duckdb", root / ("catalog.duckdb" + WAL_SUFFIX)):
        if f.exists():
            age(f)


def explorer_sql_write(root, statement: str) -> None:
    p = subprocess.run([sys.executable, "-m", "explorer", "--root", str(root), "sql", "--write", statement],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_a_warm_query_opens_no_connection_and_sees_another_process_write(aged_root, monkeypatch):
    engine = Engine(aged_root)
    options = QueryOptions(SetChoice(first_model(aged_root)), k=3)
    first = analogy(engine, EXPR, options, auto_export=False)
    opened = []
    real_connect = connections.connect
    monkeypatch.setattr(connections, "connect", lambda *a, **kw: opened.append(a) or real_connect(*a, **kw))
    second = analogy(engine, EXPR, options, auto_export=False)
    assert second.to_dict() == first.to_dict()
    assert opened == []  # answered from memory
    assert connections.catalog_file(aged_root / "catalog.duckdb").reader is None  # nothing held open

    top = first.results[0]
    explorer_sql_write(aged_root, f"UPDATE tokens SET text = ' renamed' WHERE token_id = {top.token_id}")
    third = analogy(engine, EXPR, options, auto_export=False)
    assert third.results[0].token_id == top.token_id and third.results[0].token == " renamed"
    assert opened  # the change was noticed, and the catalog read again

    king = third.resolutions[2]
    assert king.variant == "initial"
    explorer_sql_write(aged_root, f"UPDATE tokens SET text = ' kingdom', lookup = 'kingdom', raw = '▁kingdom' "
                                  f"WHERE token_id = {king.token_ids[0]}")
    fourth = analogy(engine, EXPR, options, auto_export=False)
    assert fourth.resolutions[2].token_ids != king.token_ids  # 'king' now resolves to another token


def test_cached_answers_come_back_after_a_write_settles(aged_root, monkeypatch):
    engine = Engine(aged_root)
    options = QueryOptions(SetChoice(first_model(aged_root)), k=3)
    explorer_sql_write(aged_root, "CREATE TABLE notes AS SELECT 1 AS x")
    age_catalog(aged_root)
    analogy(engine, EXPR, options, auto_export=False)
    opened = []
    real_connect = connections.connect
    monkeypatch.setattr(connections, "connect", lambda *a, **kw: opened.append(a) or real_connect(*a, **kw))
    analogy(engine, EXPR, options, auto_export=False)
    assert opened == []
