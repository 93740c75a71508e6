"""The catalog owns its connections: scoped reads and writes, sessions, threads, and
other processes writing between user operations."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from explorer.store.catalog import Catalog


def _other_process_writes(cat: Catalog, name: str) -> bool:
    """Whether another process can write to the catalog right now (one try, no retries)."""
    script = textwrap.dedent(f"""
        import sys, duckdb
        try:
            con = duckdb.connect({str(cat.path)!r})
        except duckdb.Error:
            sys.exit(3)
        con.execute("INSERT INTO models (model_id, name, source, source_kind) VALUES (1000 + (SELECT count(*) FROM models), ?, 'x', 'test')", [{name!r}])
        con.close()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode in (0, 3), r.stderr
    return r.returncode == 0


def _names(cat: Catalog) -> set[str]:
    return {m.name for m in cat.models()}


def test_write_commits_and_an_exception_rolls_back(tmp_path):
    cat = Catalog(tmp_path)
    cat.upsert_model(name="kept", source="k", source_kind="test")
    with pytest.raises(RuntimeError):
        with cat.write() as con:
            con.execute("DELETE FROM models")
            con.execute("INSERT INTO models (model_id, name, source, source_kind) VALUES (7, 'lost', 's', 'test')")
            raise RuntimeError("killed mid-write")
    assert _names(cat) == {"kept"}
    with cat.write() as con:
        con.execute("INSERT INTO models (model_id, name, source, source_kind) VALUES (7, 'added', 's', 'test')")
    assert _names(cat) == {"kept", "added"}


def test_reads_release_the_file_between_operations(tmp_path):
    """Outside a session a read block leaves no connection behind; inside one the
    connection stays (another process cannot write) until the last session ends."""
    cat = Catalog(tmp_path)
    cat.migrate()
    assert cat.query("SELECT count(*) FROM models") == [(0,)]
    assert _other_process_writes(cat, "between")
    with cat.session():
        with cat.read() as first:
            assert first.execute("SELECT count(*) FROM models").fetchone() == (1,)
        with cat.session():  # re-entrant
            with cat.read() as second:
                assert second is first
        assert not _other_process_writes(cat, "refused")
        assert _names(cat) == {"between"}
    assert _other_process_writes(cat, "after")
    assert _names(cat) == {"between", "after"}


def test_write_inside_a_session_and_read_inside_a_write(tmp_path):
    cat = Catalog(tmp_path)
    with cat.session():
        assert cat.models() == []
        with cat.write() as con:
            con.execute("INSERT INTO models (model_id, name, source, source_kind) VALUES (1, 'a', 's', 'test')")
            assert [m.name for m in cat.models()] == ["a"]  # the write block's own connection
            with cat.write() as inner:  # joins the same transaction
                assert inner is con
        assert _names(cat) == {"a"}
    assert _other_process_writes(cat, "b")


def test_write_inside_a_read_block_is_refused(tmp_path):
    cat = Catalog(tmp_path)
    with cat.read():
        with pytest.raises(RuntimeError, match="inside a read"):
            with cat.write():
                pass
    cat.upsert_model(name="fine", source="f", source_kind="test")
    assert _names(cat) == {"fine"}


def test_two_catalog_objects_share_one_file_state(tmp_path):
    """Two Catalog objects for one file (one through a relative-looking path) do not
    conflict: a write through one while the other holds a session."""
    a, b = Catalog(tmp_path), Catalog(tmp_path / "sub" / "..")
    with a.session():
        assert a.models() == []
        b.upsert_model(name="via-b", source="s", source_kind="test")
        assert _names(a) == {"via-b"}


def test_threads_share_the_catalog_safely(tmp_path):
    """Reads and writes from many threads at once, in and out of sessions: no error,
    no lost write."""
    cat = Catalog(tmp_path)
    cat.migrate()
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(15):
                if i % 3 == 0:
                    with cat.write() as con:
                        con.execute("INSERT INTO models (model_id, name, source, source_kind) VALUES (?, ?, 's', 'test')",
                                    [t * 100 + i, f"m{t}-{i}"])
                elif t % 2:
                    with cat.session():
                        cat.models()
                        cat.query("SELECT count(*) FROM tokens")
                else:
                    cat.models()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert cat.query("SELECT count(*) FROM models") == [(6 * 5,)]
    assert _other_process_writes(cat, "after-threads")


def test_write_waits_for_another_writer(tmp_path):
    """A write while another process holds the write lock waits for it, then succeeds."""
    cat = Catalog(tmp_path)
    cat.migrate()
    script = textwrap.dedent(f"""
        import sys, time, duckdb
        con = duckdb.connect({str(cat.path)!r})
        print("locked", flush=True)
        time.sleep(1.0)
        con.close()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cat.upsert_model(name="after-wait", source="s", source_kind="test")
    finally:
        holder.wait(timeout=60)
    assert _names(cat) == {"after-wait"}
