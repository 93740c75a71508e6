"""The store: vectors round-trip exactly, the catalog migrates, files are checked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from explorer.errors import CorruptFile
from explorer.store import sets
from explorer.store.catalog import Catalog
from explorer.store.schema import SCHEMA_VERSION
from explorer.query.topk import topk_dense
from explorer.store.index import SearchIndex
from explorer.store.vectorset import INDEX, VectorSet


def _store(tmp_path, matrix, name="toy"):
    cat = Catalog(tmp_path)
    mid = cat.upsert_model(name=name, source=name, source_kind="test")
    sets.write_vector_set(cat, mid, name, "input", matrix)
    return cat, mid


@settings(max_examples=25, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 12)), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_vectors_round_trip_bit_for_bit(tmp_path_factory, matrix):
    root = tmp_path_factory.mktemp("rt")
    cat, mid = _store(root, matrix)
    row = cat.vector_set(mid, "input")
    vs = VectorSet.open(root / row.path)
    assert vs.vectors.tobytes() == matrix.tobytes()
    assert row.n_rows == matrix.shape[0] and row.dim == matrix.shape[1]


def test_migrations_are_numbered_and_idempotent(tmp_path):
    cat = Catalog(tmp_path)
    assert cat.migrate() == SCHEMA_VERSION
    assert cat.migrate() == SCHEMA_VERSION
    rows = cat.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    tables = {r[0] for r in cat.query("SELECT table_name FROM information_schema.tables")}
    assert {"models", "vector_sets", "tokens", "files"} <= tables


def test_files_are_checksummed_and_corruption_detected(tmp_path):
    rng = np.random.default_rng(0)
    cat, mid = _store(tmp_path, rng.normal(size=(50, 8)).astype(np.float32))
    row = cat.vector_set(mid, "input")
    sets.verify(cat, row, "toy", full=True)
    index_file = tmp_path / row.path / INDEX
    data = bytearray(index_file.read_bytes())
    data[-5] ^= 0xFF  # same size, one flipped byte
    index_file.write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match="checksum.*index rebuild"):
        sets.verify(cat, row, "toy")
    sets.rebuild_index(cat, row, "toy")
    sets.verify(cat, row, "toy", full=True)


def test_truncated_index_is_refused_not_crashed(tmp_path):
    rng = np.random.default_rng(1)
    cat, mid = _store(tmp_path, rng.normal(size=(30, 4)).astype(np.float32))
    row = cat.vector_set(mid, "input")
    path = tmp_path / row.path / INDEX
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CorruptFile):
        sets.verify(cat, row, "toy")
    idx = SearchIndex(VectorSet.open(tmp_path / row.path), path, backend="faiss")
    with pytest.raises(CorruptFile):
        idx.search(np.ones((1, 4), np.float32), 3)


def test_failed_write_leaves_no_visible_set(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    mid = cat.upsert_model(name="toy", source="toy", source_kind="test")

    def boom(*a, **k):
        raise RuntimeError("killed while building the index")

    monkeypatch.setattr("explorer.store.index.build_index", boom)
    with pytest.raises(RuntimeError):
        sets.write_vector_set(cat, mid, "toy", "input", np.ones((5, 3), np.float32))
    assert cat.vector_set(mid, "input") is None
    assert not (tmp_path / "sets" / "toy" / "input").exists()
    assert not list((tmp_path / "sets" / "toy").glob("*.tmp-*"))


@pytest.mark.parametrize("backend", ["numpy", "faiss"])
def test_backends_agree_with_brute_force(tmp_path, backend):
    rng = np.random.default_rng(2)
    m = rng.normal(size=(3000, 24)).astype(np.float32) * rng.uniform(0.1, 10, size=(3000, 1)).astype(np.float32)
    cat, mid = _store(tmp_path, m)
    row = cat.vector_set(mid, "input")
    idx = SearchIndex(VectorSet.open(tmp_path / row.path), tmp_path / row.path / INDEX, backend=backend)
    q = rng.normal(size=(37, 24)).astype(np.float32)
    hits = idx.search(q, 10)
    un = m / np.linalg.norm(m, axis=1, keepdims=True)
    s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ un.T
    want = np.argsort(-s, axis=1)[:, :10]
    assert (hits.ids == want).mean() > 0.999
    np.testing.assert_allclose(hits.scores, np.take_along_axis(s, want, 1), atol=1e-5)
    allowed = np.zeros(3000, bool)
    allowed[::3] = True
    fh = idx.search(q, 5, allowed=allowed)
    assert np.all(fh.ids % 3 == 0)


def test_numpy_search_blocks_queries_over_many_rows(tmp_path, monkeypatch):
    """Over more rows than the score budget allows for a full query chunk, the numpy path
    scores fewer queries at a time and answers exactly as in one block, filter included."""
    import explorer.store.index as index_module

    rng = np.random.default_rng(3)
    m = rng.normal(size=(500, 8)).astype(np.float32)
    VectorSet.write(tmp_path, m)
    vs = VectorSet.open(tmp_path)
    q = rng.normal(size=(37, 8)).astype(np.float32)
    allowed = rng.random(500) < 0.5
    whole = [SearchIndex(vs, None, "numpy").search(q, 7, a) for a in (None, allowed)]
    seen = []
    real = VectorSet.cosines
    monkeypatch.setattr(VectorSet, "cosines", lambda self, qq, rows=None: seen.append(len(qq)) or real(self, qq, rows))
    monkeypatch.setattr(index_module, "_SCORE_BUDGET", 500 * 5)
    blocked = [SearchIndex(vs, None, "numpy").search(q, 7, a) for a in (None, allowed)]
    assert max(seen) == 5 and sum(seen) == 2 * 37
    for w, b in zip(whole, blocked):
        np.testing.assert_array_equal(w.ids, b.ids)
        np.testing.assert_array_equal(w.scores, b.scores)


def test_topk_dense_ties_and_small_inputs():
    s = np.array([[0.5, 0.9, 0.9, 0.1], [1, 1, 1, 1]], dtype=np.float32)
    scores, ids = topk_dense(s, 3)
    assert ids.tolist() == [[1, 2, 0], [0, 1, 2]]
    scores, ids = topk_dense(s, 10)
    assert ids.shape == (2, 4)


def test_token_lookups_stay_inside_their_model(tmp_path):
    """Candidates and labels come from the asked model only, though another model in the
    same catalog has the same words (the model filter runs after the indexed lookups)."""
    from explorer.store.interchange import import_arrays
    from explorer.store.tokens import CatalogTokens

    rng = np.random.default_rng(0)
    import_arrays(tmp_path, "first", ["king", "queen", "▁king", "man"], rng.normal(size=(4, 3)))
    import_arrays(tmp_path, "second", ["queen", "King", "king"], rng.normal(size=(3, 3)))
    cat = Catalog(tmp_path)
    first, second = (CatalogTokens(cat, cat.model(n).model_id, n) for n in ("first", "second"))
    assert [(r.token_id, r.raw) for r in first.candidates("king")] == [(0, "king")]  # imported: '▁' is a letter
    assert [(r.token_id, r.raw) for r in first.candidates("▁king")] == [(2, "▁king")]
    assert [(r.token_id, r.raw) for r in second.candidates("king")] == [(1, "King"), (2, "king")]
    assert second.candidates("man") == []
    assert first.labels([3, 1, 1]) == {1: "queen", 3: "man"}
    assert second.labels([0, 2, 7]) == {0: "queen", 2: "king"}  # an id the model lacks has no label


def test_models_piped_output_never_cuts_names(tmp_path):
    """`explorer models | cat` at 40 columns: tab-separated lines with every name whole."""
    from typer.testing import CliRunner

    from explorer.cli.main import app
    from explorer.store.interchange import import_arrays

    long_name = "a-rather-long-model-name-that-no-40-column-table-could-hold." + "x" * 40
    import_arrays(tmp_path, long_name, ["king", "queen", "man"], np.eye(3, dtype=np.float32))
    r = CliRunner().invoke(app, ["--root", str(tmp_path), "models"], env={"COLUMNS": "40"})
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split("\t")[0] == "model"
    (row,) = [line.split("\t") for line in lines[1:]]
    assert row[0] == long_name and len(row) == len(lines[0].split("\t"))
    assert "…" not in r.stdout


@pytest.mark.parametrize("width", [40, 200])
def test_models_table_on_a_terminal_never_cuts_names(width):
    """On a terminal too narrow for the table, each model is a block of lines whose values
    wrap; wide enough, one table row per model. Never an ellipsis."""
    import io

    from rich.console import Console

    from explorer.cli.store import _print_models_table

    name = "model-[bold]-" + "y" * 50  # markup characters stay text
    header = ("model", "source", "architecture", "layers", "d", "vocab", "tied", "vector sets")
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    _print_models_table("Models", header, [[name, "/some/path", "Arch", "2", "16", "31", "False", "input"]], console)
    text = buf.getvalue()
    assert "…" not in text
    assert name in "".join(text.split()) if width == 40 else name in text
