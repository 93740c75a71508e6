"""The catalog stays readable by PyPI's DuckDB CLI 1.5.x (and Harlequin): new catalogs are
written in the 1.5 storage format, newer ones are converted once, losing nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from explorer.errors import ExplorerError
from explorer.store import compat
from explorer.store.catalog import CATALOG_FILE, Catalog
from explorer.store.connections import apply_migrations
from explorer.store.schema import SCHEMA_VERSION

from conftest import first_model


def _duckdb_cli() -> str | None:
    """The `duckdb` CLI of this environment (the test extras' duckdb-cli), else one on PATH."""
    local = Path(sys.executable).with_name("duckdb")
    return str(local) if local.exists() else shutil.which("duckdb")


def _cli_json(path: Path, sql: str) -> list[dict]:
    cli = _duckdb_cli()
    if cli is None:
        pytest.skip("the `duckdb` CLI is not installed (pip install duckdb-cli, in the test extras)")
    r = subprocess.run([cli, "-readonly", "-json", str(path), "-c", sql], capture_output=True, text=True, timeout=60)
    version = subprocess.run([cli, "--version"], capture_output=True, text=True).stdout.strip()
    assert r.returncode == 0, f"duckdb CLI {version}: {r.stderr}"
    return json.loads(r.stdout or "[]")


def _old_style_catalog(root: Path) -> Path:
    """A catalog as earlier explorers wrote it: the library's default storage version,
    every migration, data, and objects a user may have added with `explorer sql --write`."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / CATALOG_FILE
    con = duckdb.connect(str(path))
    try:
        apply_migrations(con)
        con.execute("INSERT INTO models (model_id, name, source, source_kind) VALUES (1, 'old-model', 'src', 'test')")
        con.execute(
            "INSERT INTO tokens SELECT 1, i, 'tok' || i, 'tok' || i, false, 'latin', false, false, 'tok' || i "
            "FROM range(5000) t(i)"
        )
        con.execute("CREATE SEQUENCE my_seq START 7; SELECT nextval('my_seq'); SELECT nextval('my_seq')")
        con.execute("CREATE TABLE notes (id INTEGER DEFAULT nextval('my_seq'), note VARCHAR)")
        con.execute("INSERT INTO notes (note) VALUES ('kept')")
        con.execute("CREATE VIEW my_view AS SELECT name FROM models")
        con.execute("COMMENT ON COLUMN notes.note IS 'a user comment'")
    finally:
        con.close()
    if not compat.needs_migration(path):
        pytest.skip(f"duckdb {duckdb.__version__} writes storage version {compat.storage_version(path)}, "
                    f"which the 1.5 CLI reads: nothing to convert")
    return path


def _describe(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return compat.describe(con, con.execute("SELECT current_database()").fetchone()[0])
    finally:
        con.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_catalog_stays_in_the_15_format_after_writes(tmp_path):
    cat = Catalog(tmp_path)
    cat.migrate()
    assert compat.storage_version(cat.path) <= compat.READABLE_STORAGE
    cat.upsert_model(name="m", source="m", source_kind="test")  # later, default connections write
    assert compat.storage_version(cat.path) <= compat.READABLE_STORAGE
    assert _cli_json(cat.path, "SELECT name FROM models") == [{"name": "m"}]


def test_duckdb_cli_reads_an_exported_catalog(tiny_root):
    name = first_model(tiny_root)
    rows = _cli_json(tiny_root / CATALOG_FILE, f"SELECT name, vocab_size FROM models WHERE name = '{name}'")
    assert [r["name"] for r in rows] == [name] and rows[0]["vocab_size"] > 0
    tokens = _cli_json(tiny_root / CATALOG_FILE, "SELECT count(*) AS n FROM tokens")
    assert tokens[0]["n"] > 0


def test_old_catalog_is_converted_without_loss(tmp_path):
    path = _old_style_catalog(tmp_path)
    before = _describe(path)
    cat = Catalog(tmp_path)
    assert [m.name for m in cat.models()] == ["old-model"]
    assert compat.storage_version(path) <= compat.READABLE_STORAGE
    after = _describe(path)
    assert after == before
    assert after["schema version"] == SCHEMA_VERSION
    assert dict(after["row counts"])["main.tokens"] == 5000
    assert not list(tmp_path.glob("*.tmp-*"))
    assert _cli_json(path, "SELECT note, id FROM notes") == [{"note": "kept", "id": 9}]
    assert _cli_json(path, "SELECT comment FROM duckdb_columns() WHERE table_name = 'notes' AND column_name = 'note'") == [{"comment": "a user comment"}]


def test_conversion_that_loses_something_keeps_the_old_catalog(tmp_path, monkeypatch):
    path = _old_style_catalog(tmp_path)
    digest = _sha(path)
    real = compat.describe
    monkeypatch.setattr(compat, "describe", lambda con, db: {**real(con, db), "probe": db})
    with pytest.raises(ExplorerError, match="lost probe"):
        Catalog(tmp_path).models()
    assert _sha(path) == digest
    assert not list(tmp_path.glob("*.tmp-*"))


def test_conversion_killed_midway_loses_nothing(tmp_path):
    """A process killed after the copy, before the rename: the old catalog is untouched,
    and the next run converts it and removes the dead process's temp file."""
    path = _old_style_catalog(tmp_path)
    digest = _sha(path)
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from explorer.store import compat
        from explorer.store.catalog import Catalog
        real = compat._copy
        def copy_then_die(con, tmp):
            real(con, tmp)
            os._exit(9)
        compat._copy = copy_then_die
        Catalog(Path({str(tmp_path)!r})).models()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stderr
    assert list(tmp_path.glob("*.tmp-*")), "the killed conversion should have left its temp file"
    assert _sha(path) == digest
    cat = Catalog(tmp_path)
    assert [m.name for m in cat.models()] == ["old-model"]
    assert compat.storage_version(path) <= compat.READABLE_STORAGE
    assert not list(tmp_path.glob("*.tmp-*"))
