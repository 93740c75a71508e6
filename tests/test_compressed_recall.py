"""Recall of the compressed state indexes is measured with queries that are not in the index."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.errors import ExplorerError
from explorer.store import compressed
from explorer.store.catalog import Catalog
from explorer.store.vectorset import VectorSet

runner = CliRunner()


@pytest.fixture(scope="module")
def states_root(tmp_path_factory, tiny_model_dir):
    """A root of its own with the tiny model and one stored corpus, 'docs'."""
    from explorer.models.export import export_model
    from explorer.services.states import export_states

    root = tmp_path_factory.mktemp("recall-root")
    export_model(str(tiny_model_dir), root)
    corpus = root / "docs.txt"
    corpus.write_text("\n".join(["king queen man woman", "Paris France Berlin Germany water", "boy girl prince princess"] * 4) + "\n")
    export_states("tiny-llama", root, corpus=corpus, batch_size=4)
    return root


def _isotropic(tmp_path, n=3000, d=32, seed=0) -> VectorSet:
    """Noise without structure: an approximate index misses true neighbours here."""
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    VectorSet.write(tmp_path, x)
    return VectorSet.open(tmp_path)


@pytest.mark.parametrize("n, q", [(4410, 200), (3000, 150), (100, 20), (10, 2), (2, 1)])
def test_held_out_split_size(n, q):
    held = compressed.held_out_rows(n)
    assert len(held) == q and len(np.unique(held)) == q and held.min() >= 0 and held.max() < n
    assert np.array_equal(held, compressed.held_out_rows(n))  # seeded


def test_one_row_is_refused():
    with pytest.raises(ExplorerError):
        compressed.held_out_rows(1)


def test_too_few_rows_for_ivfpq_is_a_user_error(tmp_path):
    vs = _isotropic(tmp_path, n=12)
    with pytest.raises(ExplorerError, match="at least 16"):
        compressed.build_and_measure(vs, "ivfpq", tmp_path / "ivfpq.faiss")
    assert not (tmp_path / "ivfpq.faiss").exists()


def test_held_out_queries_are_not_found_in_the_index(tmp_path):
    """Self-queries find themselves (recall@1 = 1 however bad the index); held-out ones
    do not, and the index searched for the measurement never returns them."""
    vs = _isotropic(tmp_path)
    held = compressed.held_out_rows(vs.n_rows)
    index, _ = compressed.build(vs, "ivfpq", exclude=held)
    selfq = compressed.search_compressed(index, "ivfpq", vs, vs.rows(held), 1)
    assert selfq.ids[:, 0].tolist() == held.tolist()  # what the old measurement counted as hits
    honest = compressed.measure_recall(index, "ivfpq", vs, held, k=1)
    assert 0.0 < honest < 1.0
    allowed = np.ones(vs.n_rows, dtype=bool)
    allowed[held] = False
    hits = compressed.search_compressed(index, "ivfpq", vs, vs.rows(held), 10, allowed)
    assert not np.isin(hits.ids, held).any() and (hits.ids >= 0).all()


def test_selector_answers_as_an_index_without_the_held_out_rows(tmp_path):
    """The measurement searches the kept index through an ID selector; that gives the same
    neighbours as the same trained index filled with the remaining rows only."""
    faiss = pytest.importorskip("faiss")
    vs = _isotropic(tmp_path, n=2000)
    held = compressed.held_out_rows(vs.n_rows)
    rest = np.setdiff1d(np.arange(vs.n_rows), held)
    index, _ = compressed.build(vs, "ivfpq", exclude=held)
    allowed = np.ones(vs.n_rows, dtype=bool)
    allowed[held] = False
    via_selector = compressed.search_compressed(index, "ivfpq", vs, vs.rows(held), 10, allowed)
    alone = faiss.clone_index(index)
    alone.reset()  # keeps the training (coarse centroids, PQ codebooks), drops the rows
    alone.add(np.ascontiguousarray(vs.rows(rest) / vs.norms[rest, None]))
    (tmp_path / "rest").mkdir()
    VectorSet.write(tmp_path / "rest", vs.rows(rest))
    sub = VectorSet.open(tmp_path / "rest")
    direct = compressed.search_compressed(alone, "ivfpq", sub, vs.rows(held), 10)
    assert np.array_equal(rest[direct.ids], via_selector.ids)


def test_held_out_rows_are_left_out_of_training(tmp_path):
    """sq8 learns each dimension's range from its training rows: a held-out row far outside
    that range comes back clipped, so it was not trained on."""
    x = np.random.default_rng(1).normal(size=(400, 8)).astype(np.float32)
    x[:, 0] *= 0.01
    held = compressed.held_out_rows(len(x))
    x[held] = np.eye(8, dtype=np.float32)[0]  # unit rows along dimension 0
    VectorSet.write(tmp_path, x)
    vs = VectorSet.open(tmp_path)
    index, _ = compressed.build(vs, "sq8", exclude=held)
    assert index.reconstruct(int(held[0]))[0] < 0.5
    kept, _ = compressed.build(vs, "sq8")  # trained on every row: the same row survives
    assert kept.reconstruct(int(held[0]))[0] > 0.9


def test_build_report_says_how_recall_was_measured(tmp_path):
    vs = _isotropic(tmp_path, n=1000)
    rep = compressed.build_and_measure(vs, "sq8", tmp_path / "sq8.faiss")
    assert (rep.queries, rep.recall_queries) == (50, "held-out rows")
    assert rep.params["recall_queries"] == "held-out rows" and rep.params["held_out"] == 50
    assert 0.5 < rep.recall_at_10 <= 1.0
    assert compressed.load_compressed(tmp_path / "sq8.faiss", "sq8").ntotal == 1000  # the kept index holds every row


def test_states_index_json_and_catalog_record_the_method(states_root):
    r = runner.invoke(app, ["--root", str(states_root), "states-index", "--model", "tiny-llama", "--corpus", "docs",
                            "--layer", "1", "--json"])
    assert r.exit_code == 0, r.stderr
    (idx,) = json.loads(r.stdout)["indexes"]
    assert idx["recall_queries"] == "held-out rows" and idx["queries"] == len(compressed.held_out_rows(idx["rows"]))
    (params,) = Catalog(states_root).query("SELECT params FROM state_indexes WHERE layer = 1 AND kind = 'sq8'")[0]
    assert json.loads(params)["recall_queries"] == "held-out rows"
    table = runner.invoke(app, ["--root", str(states_root), "states-index", "--model", "tiny-llama", "--corpus", "docs",
                                "--layer", "1"])
    assert table.exit_code == 0 and "held-out" in table.stdout
