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


@pytest.mark.parametrize("args", [
    ["states-stats", "--model", "tiny-llama", "--corpus", "nope"],
    ["states-stats", "--model", "tiny-llama", "--corpus", "aniso", "--layer", "7"],
    ["neighbours", "--layer", "7", "king", "--model", "tiny-llama", "--corpus", "aniso", "--center"],
    ["neighbours", "--layer", "1", "king", "--model", "tiny-llama", "--corpus", "aniso", "--center", "--index", "ivfpq"],
    ["neighbours", "king", "--model", "tiny-llama", "--center"],
])
def test_bad_input_is_one_line(aniso_root, args):
    one_line_error(_cli(aniso_root, *args))
