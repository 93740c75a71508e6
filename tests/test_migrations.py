"""Migrations: ids come from sequences that start after the largest id already stored."""

from __future__ import annotations

import duckdb
import numpy as np

from explorer.store import compat
from explorer.store.catalog import CATALOG_FILE, Catalog
from explorer.store.schema import MIGRATIONS, SCHEMA_VERSION
from explorer.store.states import StateStore

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
