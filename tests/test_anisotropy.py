"""Anisotropy of stored hidden states: states-stats, and neighbours --center with the
layer's mean stored once and reused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from clitools import one_line_error
from explorer.cli.main import app
from explorer.query.anisotropy import CenteredRows, anisotropy_of_layer, layer_mean
from explorer.services.states import export_states
from explorer.store.catalog import Catalog
from test_states import DOCS

runner = CliRunner()


@pytest.fixture(scope="module")
def aniso_root(tiny_root, tmp_path_factory):
    """The test_states corpus, exported into a copy of the shared tiny root (which other
    modules expect unchanged)."""
    import shutil

    d = tmp_path_factory.mktemp("aniso")
    p = d / "aniso.txt"
    p.write_text("\n".join(DOCS) + "\n")
    root = shutil.copytree(tiny_root, d / "root")
    export_states("tiny-llama", root, corpus=p, batch_size=4)
    return root


def _cli(root, *args):
    return runner.invoke(app, ["--root", str(root), *args])


def test_states_stats_json_shows_anisotropy(aniso_root):
    r = _cli(aniso_root, "states-stats", "--model", "tiny-llama", "--corpus", "aniso", "--pairs", "3000", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert [v["layer"] for v in out["layers"]] == [0, 1, 2] and out["pairs"] == 3000
    for v in out["layers"]:
        for key in ("mean_cos_raw", "mean_cos_centered"):
            assert -1.0 <= v[key] <= 1.0
        assert 0.0 < v["top1_variance"] <= v["top10_variance"] <= 1.0 and v["norm_mean"] > 0
    middle = out["layers"][1]
    assert middle["mean_cos_centered"] < middle["mean_cos_raw"]
    again = _cli(aniso_root, "states-stats", "--model", "tiny-llama", "--corpus", "aniso", "--pairs", "3000", "--json")
    assert json.loads(again.stdout) == out  # seeded
    some = _cli(aniso_root, "states-stats", "--model", "tiny-llama", "--corpus", "aniso", "--layer", "2", "--layer", "0",
                "--layer", "2", "--pairs", "3000", "--json")
    assert [v["layer"] for v in json.loads(some.stdout)["layers"]] == [0, 2]  # in order, each once


def test_pair_cosines_match_a_direct_computation():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(300, 16)) + 4.0).astype(np.float32)  # a shared offset: raw cosines near 1
    mean = layer_mean(x)
    v = anisotropy_of_layer(0, x, np.linalg.norm(x, axis=1), mean, 500, seed=3)
    assert v.mean_cos_raw > 0.9 and abs(v.mean_cos_centered) < 0.05
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-5)
    rows = np.arange(300) % 7 != 0
    np.testing.assert_allclose(layer_mean(x, rows), x[rows].mean(axis=0), rtol=1e-5)


def test_centered_rows_score_centred_cosines():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(50, 8)) + 3.0).astype(np.float32)
    mean = x.mean(axis=0).astype(np.float32)
    xc = x - mean
    q = rng.normal(size=8).astype(np.float32) + 3.0
    qc = (q - mean) / np.linalg.norm(q - mean)
    got = CenteredRows(x, mean, np.linalg.norm(xc, axis=1)).cosines(qc)[:, 0]
    np.testing.assert_allclose(got, xc @ qc / np.linalg.norm(xc, axis=1), rtol=1e-4, atol=1e-5)


def _neighbours(root, *extra):
    r = _cli(root, "neighbours", "--layer", "1", "Paris France Berlin Germany water", "--position", "1",
             "--model", "tiny-llama", "--corpus", "aniso", "-k", "20", "--json", *extra)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_center_changes_scores_and_the_mean_is_stored_once(aniso_root, monkeypatch):
    from explorer.store import centering

    cat = Catalog(aniso_root)
    with cat.write() as con:  # as if never centred (states-stats may have stored layer 1's mean already)
        con.execute("DELETE FROM state_files WHERE role IN ('mean', 'centered_norms')")
    calls = []
    real = centering.layer_mean
    monkeypatch.setattr(centering, "layer_mean", lambda *a: calls.append(1) or real(*a))
    raw = _neighbours(aniso_root)
    centred = _neighbours(aniso_root, "--center")
    assert centred["centered"] is True and raw["centered"] is False
    assert centred["results"][0]["token"] == " France" and centred["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    raw_scores = {h["state_id"]: h["score"] for h in raw["results"]}
    c_scores = [h["score"] for h in centred["results"]]
    assert all(-1.0001 <= s <= 1.0001 for s in c_scores)
    assert np.mean(c_scores[1:]) < np.mean(list(raw_scores.values())[1:])
    common = [h for h in centred["results"][1:] if h["state_id"] in raw_scores]
    assert any(abs(h["score"] - raw_scores[h["state_id"]]) > 1e-3 for h in common)
    recorded = cat.query("SELECT role, sha256, mtime_ns FROM state_files JOIN corpora USING (corpus_id) "
                         "WHERE name = 'aniso' AND layer = 1 AND role IN ('mean', 'centered_norms') ORDER BY role")
    assert [r[0] for r in recorded] == ["centered_norms", "mean"]
    assert len(calls) == 1  # computed once
    assert _neighbours(aniso_root, "--center") == centred
    assert len(calls) == 1  # then reused, not recomputed
    assert cat.query("SELECT role, sha256, mtime_ns FROM state_files JOIN corpora USING (corpus_id) "
                     "WHERE name = 'aniso' AND layer = 1 AND role IN ('mean', 'centered_norms') ORDER BY role") == recorded
    verify = _cli(aniso_root, "index", "verify")
    assert verify.exit_code == 0, verify.stderr


def _layer_rows(root, layer: int):
    """(layer matrix, token id and position of every state) of the aniso corpus, from the files and catalog."""
    from explorer.store.states import StateStore, layer_file

    cat = Catalog(root)
    (c,) = [c for c in StateStore(cat).corpora() if c.name == "aniso"]
    meta = np.array(cat.query("SELECT token_id, position FROM hidden_states WHERE corpus = 'aniso' ORDER BY state_id"))
    return np.load(root / c.path / layer_file(layer)).astype(np.float64), meta[:, 0], meta[:, 1]


def _query(root, *extra):
    r = _cli(root, "query", "queen - man + woman", "--layer", "1", "--model", "tiny-llama", "--corpus", "aniso",
             "-k", "8", "--json", *extra)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_centred_analogy_is_the_centred_cosine_of_token_means(aniso_root):
    raw, centred = _query(aniso_root), _query(aniso_root, "--center")
    assert raw["centered"] is False and centred["centered"] is True and "BOS" in centred["mean_of"]
    x, tokens, positions = _layer_rows(aniso_root, 1)
    mean = x[positions > 0].mean(axis=0)  # the layer mean leaves out position 0 (BOS)
    ids = np.unique(tokens)
    means = {int(t): x[tokens == t].mean(axis=0) - mean for t in ids}
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    q = sum(w * unit(means[r["token_ids"][0]]) for r, w in zip(centred["resolutions"], (1.0, -1.0, 1.0)))
    expected = {t: float(unit(v) @ unit(q)) for t, v in means.items()}
    inputs = {r["token_ids"][0] for r in centred["resolutions"]}
    ranked = sorted((t for t in expected if t not in inputs), key=lambda t: -expected[t])[:8]
    assert [h["token_id"] for h in centred["results"]] == ranked
    for h in centred["results"]:
        assert h["score"] == pytest.approx(expected[h["token_id"]], abs=1e-5)
    raw_scores = {h["token_id"]: h["score"] for h in raw["results"]}
    assert [h["token_id"] for h in raw["results"]] != ranked or any(
        abs(h["score"] - raw_scores[h["token_id"]]) > 1e-3 for h in centred["results"])


def test_center_without_layer_is_a_usage_error(aniso_root):
    one_line_error(_cli(aniso_root, "query", "king", "--model", "tiny-llama", "--center"), 2)


def _index(root, kind, *extra):
    r = _cli(root, "states-index", "--kind", kind, "--layer", "1", "--model", "tiny-llama", "--corpus", "aniso", "--json", *extra)
    assert r.exit_code == 0, r.stderr
    (out,) = json.loads(r.stdout)["indexes"]
    return out


@pytest.mark.parametrize("kind", ["sq8", "ivfpq"])
def test_centred_index_sits_beside_the_raw_one_and_answers_as_exact_centred_search(aniso_root, kind):
    from explorer.services.engine import Engine
    from explorer.services.states import Runners, StateQuery, neighbours_of_text

    raw, centred = _index(aniso_root, kind), _index(aniso_root, kind, "--center")
    assert (raw["centered"], centred["centered"]) == (False, True) and centred["recall_queries"] == "held-out rows"
    assert 0.0 <= centred["recall_at_10"] <= 1.0
    stored = Catalog(aniso_root).query(
        "SELECT kind, state_indexes.path, recall_at_10, params FROM state_indexes JOIN corpora USING (corpus_id) "
        "WHERE name = 'aniso' AND layer = 1 AND kind LIKE ? ORDER BY kind", [kind + "%"])
    assert [r[0] for r in stored] == [kind, f"{kind}.centered"]
    assert [json.loads(r[3])["centered"] for r in stored] == [False, True] and stored[1][2] == centred["recall_at_10"]
    assert stored[0][1].endswith(f"layer_01.{kind}.faiss") and stored[1][1].endswith(f"layer_01.{kind}.centered.faiss")
    assert all((aniso_root / r[1]).exists() for r in stored)
    engine, runners = Engine(aniso_root, backend="numpy"), Runners(Engine(aniso_root, backend="numpy"))
    texts = ["Paris France", "king queen man", "boy girl prince", "water fire", "король королева", "apple banana"]
    same = 0
    for text in texts:
        ask = lambda index: neighbours_of_text(engine, StateQuery(text, (1,), None, "tiny-llama", "aniso", 3, None, index, True),  # noqa: E731
                                               runners)[0].results
        approx, exact = ask(kind), ask("exact")
        # the corpus repeats each document 3 times, so tied duplicate states may come back in another order
        same += np.allclose([h.score for h in approx], [h.score for h in exact], atol=1e-5)
        exact_all = {h.state_id: h.score for h in neighbours_of_text(
            engine, StateQuery(text, (1,), None, "tiny-llama", "aniso", 200, None, "exact", True), runners)[0].results}
        for h in approx:  # re-ranked exactly: the index's scores are centred cosines
            assert h.score == pytest.approx(exact_all[h.state_id], abs=1e-5)
    assert same >= len(texts) - 1
    verify = _cli(aniso_root, "index", "verify")
    assert verify.exit_code == 0, verify.stderr


def test_a_missing_centred_index_names_the_command_that_builds_it(aniso_root):
    line = one_line_error(_cli(aniso_root, "neighbours", "--layer", "2", "king", "--model", "tiny-llama", "--corpus", "aniso",
                               "--center", "--index", "ivfpq"))
    assert "states-index" in line and "--center" in line


async def test_tui_centre_switch_scores_states_centred(aniso_root):
    pytest.importorskip("textual")
    from textual.widgets import DataTable, Input, Select, Switch

    from explorer.services.engine import Engine
    from explorer.services.states import StateQuery, neighbours_of_text
    from explorer.tui.app import make_app

    app = make_app(aniso_root, "numpy", model="tiny-llama")

    def shown():
        t = app.query_one(".nb-table", DataTable)
        return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]

    async def search_done(pilot):
        for _ in range(3):
            await pilot.pause(0.1)
            await app.workers.wait_for_complete()
        await pilot.pause(0.1)

    text = "Paris France Berlin"
    ref = {c: neighbours_of_text(Engine(aniso_root, backend="numpy"), StateQuery(text, (1,), None, "tiny-llama", k=12, center=c))[0]
           for c in (False, True)}
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("3")
        for _ in range(100):
            await pilot.pause(0.1)
            if not app.query_one("#nb-model", Select).is_blank():
                break
        app.query_one("#nb-layers", Input).value = "1"
        app.query_one("#nb-query", Input).value = text
        app.query_one("#nb-mode", Select).value = "state"  # starts the search
        await search_done(pilot)
        assert [r[2] for r in shown()] == [f"{h.score:.4f}" for h in ref[False].results]
        app.query_one("#nb-center", Switch).value = True  # searches again, centred
        await search_done(pilot)
        assert [r[2] for r in shown()] == [f"{h.score:.4f}" for h in ref[True].results]
        assert [r[2] for r in shown()] != [f"{h.score:.4f}" for h in ref[False].results]


@pytest.mark.parametrize("args", [
    ["states-stats", "--model", "tiny-llama", "--corpus", "nope"],
    ["states-stats", "--model", "tiny-llama", "--corpus", "aniso", "--layer", "7"],
    ["neighbours", "--layer", "7", "king", "--model", "tiny-llama", "--corpus", "aniso", "--center"],
    ["neighbours", "--layer", "1", "king", "--model", "tiny-llama", "--corpus", "aniso", "--index", "flat"],
    ["neighbours", "king", "--model", "tiny-llama", "--center"],
    ["states-index", "--kind", "ivfpq", "--layer", "9", "--model", "tiny-llama", "--corpus", "aniso", "--center"],
])
def test_bad_input_is_one_line(aniso_root, args):
    one_line_error(_cli(aniso_root, *args))
