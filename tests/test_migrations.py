"""Migrations: released ones never change, every table and view is described, and ids
come from sequences that start after the largest id already stored."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np

from explorer.store import compat
from explorer.store.catalog import CATALOG_FILE, Catalog
from explorer.store.schema import MIGRATIONS, SCHEMA_VERSION
from explorer.store.states import StateStore

# SHA-256 of each released migration (version, name and SQL text). A new migration adds
# its line here; a released one is never edited (a schema change is a new migration).
RELEASED = {
    1: "7953e12efb09e4dc5e29b88b58b949993546387e367115c6043bed492883c1cd",
    2: "87b27a1941178b5fe02b50c6b0d107a9c7b5aeb228ed66463ff0cc79256a0784",
    3: "c31440425b02c5fe1a7d1017848d54b15a5b06fdf22601a738965d2534a4ef21",
    4: "20c084a7e0c5be1069594a482b1174cd2f3ad8500fb8e18623495855f8b20af6",
    5: "c29a281dbee6a7984b3676f5c2385dd140203ce2c37f14a4df59cbff445a100b",
    6: "cafc7cd243370b4706a1b9eafeb5ccdcdf84cb7e0fec39a8d29764d95a0054c9",
    7: "5db6438404d7d27bc1dd6da2000e2034ec151a83d5d26cd26acd27112d31a032",
    8: "258516de8b1141d8cfbef577a3c880241e8a97f503e6af4ef3ab870b6d72e180",
    9: "b4cb18f42b1841c257144f8e29ed84eb5f308050d5b00da22529c23cf66777e4",
    10: "fb1894cae3b479f785485c375d477b89c40657a58905ef3d81868ce24b20ad41",
    11: "c430f37ad44594ae1d6ec504f7f5a1017d6b9f5db1604620b22cde7fcdc2be38",
    12: "ef5f7326ee194645b98752647ccbb66da5e9c11e9c033e0da0d69b78d425cc99",
    13: "4e7d53bd0c0bf900821767e4f46128b7f184bf4c318b8bf9fe3ed2847c9d31ad",
}

# table -> (id column, ids stored before migration 11, with gaps)
ID_TABLES = {
    "models": ("model_id", [1, 4]),
    "vector_sets": ("set_id", [2, 9]),
    "corpora": ("corpus_id", [3]),
    "lens_runs": ("run_id", [5, 6]),
    "sweeps": ("sweep_id", [7]),
    "runs": ("run_id", [2, 8, 11]),
    "comparisons": ("comparison_id", [6]),
}


def _catalog_at(root, last: int) -> Catalog:
    """A catalog built with migrations 1..last only, as an earlier explorer left it."""
    root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(root / CATALOG_FILE), config=compat.create_config())
    try:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                    "applied_at TIMESTAMP DEFAULT current_timestamp)")
        for number, name, sql in MIGRATIONS[:last]:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
    finally:
        con.close()
    return Catalog(root)


def _fill(root) -> None:
    con = duckdb.connect(str(root / CATALOG_FILE))
    try:
        for mid in ID_TABLES["models"][1]:
            con.execute("INSERT INTO models (model_id, name, source, source_kind) VALUES (?, ?, 's', 'test')", [mid, f"m{mid}"])
        for sid in ID_TABLES["vector_sets"][1]:
            con.execute("INSERT INTO vector_sets (set_id, model_id, name, kind, n_rows, dim, dtype) "
                        "VALUES (?, 1, ?, 'token', 1, 1, 'float32')", [sid, f"s{sid}"])
        for cid in ID_TABLES["corpora"][1]:
            con.execute("INSERT INTO corpora (corpus_id, model_id, name, n_docs, n_layers, dim, dtype, path, status) "
                        "VALUES (?, 1, ?, 0, 1, 1, 'float32', 'p', 'done')", [cid, f"c{cid}"])
        for rid in ID_TABLES["lens_runs"][1]:
            con.execute("INSERT INTO lens_runs (run_id, model_id, task, config, entries) VALUES (?, 1, 'repeat', '{}', 0)", [rid])
        for sid in ID_TABLES["sweeps"][1]:
            con.execute("INSERT INTO sweeps (sweep_id, experiment, config, key, status) VALUES (?, 'e', '{}', 'k', 'finished')", [sid])
        for rid in ID_TABLES["runs"][1]:
            con.execute("INSERT INTO runs (run_id, experiment, point, config, status) VALUES (?, 'e', 'p', '{}', 'finished')", [rid])
        for cid in ID_TABLES["comparisons"][1]:
            con.execute("INSERT INTO comparisons (comparison_id, kind, source, method, vectors, models) "
                        "VALUES (?, 'expression', 'a', '3cosadd', 'input', ['m'])", [cid])
    finally:
        con.close()


def _next_ids(cat: Catalog) -> dict[str, int]:
    with cat.write() as con:
        return {t: con.execute(f"SELECT nextval('seq_{t}')").fetchone()[0] for t in ID_TABLES}


def test_fresh_catalog_ids_start_at_one(tmp_path):
    cat = Catalog(tmp_path)
    assert cat.migrate() == SCHEMA_VERSION
    assert cat.upsert_model(name="a", source="a", source_kind="test") == 1
    assert cat.upsert_model(name="b", source="b", source_kind="test") == 2
    assert cat.upsert_model(name="a", source="a2", source_kind="test") == 1  # an update keeps its id
    assert cat.register_vector_set(1, "input", kind="token", n_rows=1, dim=1, dtype="float32") == 1
    assert _next_ids(cat) == {"models": 3, "vector_sets": 2, "corpora": 1, "lens_runs": 1, "sweeps": 1,
                              "runs": 1, "comparisons": 1}


def test_old_catalog_ids_continue_after_the_largest(tmp_path):
    """A catalog of schema v10 holding rows with gaps: migration 11 starts every sequence
    after the table's largest id, and the store's own inserts take those ids."""
    cat = _catalog_at(tmp_path, 10)
    _fill(tmp_path)
    assert cat.migrate() == SCHEMA_VERSION
    assert cat.upsert_model(name="new", source="n", source_kind="test") == 5
    assert cat.register_vector_set(1, "new", kind="token", n_rows=1, dim=1, dtype="float32") == 10
    assert cat.register_vector_set(1, "s2", kind="token", n_rows=1, dim=1, dtype="float32") == 2  # replaced: same id
    corpus = StateStore(cat).plan(1, "new", "prompts", [("en", "a b", 2)], n_layers=1, dim=2, dtype="float32",
                                  model_name="m1")
    assert corpus.corpus_id == 4
    assert np.load(tmp_path / corpus.path / "layer_00.npy", mmap_mode="r").shape == (2, 2)
    assert _next_ids(cat) == {"models": 6, "vector_sets": 11, "corpora": 5, "lens_runs": 7, "sweeps": 8,
                              "runs": 12, "comparisons": 7}


def test_ids_are_not_reused_after_a_delete(tmp_path):
    cat = Catalog(tmp_path)
    first = cat.upsert_model(name="a", source="a", source_kind="test")
    cat.delete_model(first)
    assert cat.upsert_model(name="a", source="a", source_kind="test") == first + 1


def test_released_migrations_never_change():
    got = {n: hashlib.sha256(f"{n}\n{name}\n{sql}".encode()).hexdigest() for n, name, sql in MIGRATIONS}
    assert [n for n, _, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))
    changed = sorted(n for n in RELEASED if got.get(n) != RELEASED[n])
    assert changed == [], f"released migrations {changed} were edited; add a new migration instead"
    assert sorted(got) == sorted(RELEASED), "a new migration: add its SHA-256 to RELEASED"


def test_every_table_and_view_is_described(tmp_path):
    """What `explorer schema` shows: a description for every table and view of a fresh catalog."""
    cat = Catalog(tmp_path)
    cat.migrate()
    rows = cat.query("SELECT table_name, comment FROM duckdb_tables() "
                     "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal")
    assert len(rows) == 27  # 20 tables and 7 views
    assert [name for name, comment in rows if not comment] == []
    seqs = cat.query("SELECT sequence_name, comment FROM duckdb_sequences() ORDER BY sequence_name")
    assert [s for s, _ in seqs] == sorted(f"seq_{t}" for t in ID_TABLES) and all(c for _, c in seqs)


def test_upgrade_from_every_released_version_gives_the_fresh_schema(tmp_path):
    """A catalog left at any earlier version and migrated has the same objects, definitions
    and comments as a fresh one."""
    from explorer.store.compat import describe

    def schema(cat: Catalog) -> dict:
        with cat.read() as con:
            found = describe(con, con.execute("SELECT current_database()").fetchone()[0])
        return {k: v for k, v in found.items() if k in ("tables", "views", "indexes", "sequences", "column comments")}

    fresh = Catalog(tmp_path / "fresh")
    fresh.migrate()
    want = schema(fresh)
    for last in (1, 4, 5, 10):
        cat = _catalog_at(tmp_path / f"v{last}", last)
        assert cat.migrate() == SCHEMA_VERSION
        assert schema(cat) == want, last
