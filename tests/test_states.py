"""Hidden states: export (batched, resumable, parallel), storage, search, trajectory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.services.states import export_states
from explorer.store.catalog import Catalog
from explorer.store.states import StateStore, layer_file

runner = CliRunner()
DOCS = [
    "king queen man woman",
    "Paris France Berlin Germany water",
    "花 水",
    "король королева king",
    "boy girl prince princess apple banana fire water king",
] * 3


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("corpus") / "docs.txt"
    p.write_text("\n".join(DOCS) + "\n")
    return p


@pytest.fixture(scope="module")
def states_root(tiny_root, corpus_file, tmp_path_factory):
    """A copy of the shared tiny root with corpus "docs" exported: the session's tiny root
    stays as other modules expect it (a "docs" left there made test_as_user's export resume)."""
    import shutil

    root = shutil.copytree(tiny_root, tmp_path_factory.mktemp("states") / "root")
    export_states("tiny-llama", root, corpus=corpus_file, batch_size=4)
    return root


def _layers(root, name="docs"):
    cat = Catalog(root)
    (c,) = [c for c in StateStore(cat).corpora() if c.name == name]
    return c, [np.load(root / c.path / layer_file(i)) for i in range(c.n_layers)]


def test_states_match_a_direct_forward(states_root, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    c, layers = _layers(states_root)
    assert c.status == "done" and c.n_layers == 3 and c.dim == 16
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    cat = Catalog(states_root)
    for doc in (1, 4):
        first, n = cat.query("SELECT first_state, n_tokens FROM documents WHERE corpus_id = ? AND doc_id = ?", [c.corpus_id, doc])[0]
        ids = tok(DOCS[doc], return_tensors="pt").input_ids
        assert ids.shape[1] == n
        with torch.no_grad():
            hs = model(ids, output_hidden_states=True).hidden_states
        for layer in (0, 1):  # hidden_states[-1] is final-normed; ours are block outputs
            np.testing.assert_allclose(layers[layer][first : first + n], hs[layer][0].numpy(), atol=1e-5)
        normed = model.model.norm(torch.from_numpy(layers[2][first : first + n]))
        np.testing.assert_allclose(normed.detach().numpy(), hs[2][0].numpy(), atol=1e-5)


def test_metadata_rows_and_bytes_on_disk(states_root):
    c, layers = _layers(states_root)
    cat = Catalog(states_root)
    n, distinct, docs = cat.query("SELECT count(*), count(DISTINCT state_id), count(DISTINCT doc_id) FROM states WHERE corpus_id = ?", [c.corpus_id])[0]
    assert n == distinct == c.committed == layers[0].shape[0] and docs == len(DOCS)
    row = cat.query("SELECT token, position FROM hidden_states WHERE corpus = 'docs' AND document = 0 ORDER BY position")
    assert row == [("king", 0), (" queen", 1), (" man", 2), (" woman", 3)]
    for i in range(c.n_layers):
        size = (states_root / c.path / layer_file(i)).stat().st_size
        assert size == 128 + n * c.dim * 4  # exactly d x 4 bytes per token, plus one header


def test_killed_export_resumes_without_duplicates(states_root, corpus_file, tmp_path):
    root = tmp_path / "root"
    import shutil

    shutil.copytree(states_root, root, ignore=shutil.ignore_patterns("states"))
    con = __import__("duckdb").connect(str(root / "catalog.duckdb"))
    for t in ("state_indexes", "states", "documents", "corpora"):
        con.execute(f"DELETE FROM {t}")
    con.close()
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from explorer.store.states import StateStore
        real, calls = StateStore.commit, []
        def commit(self, *a, **k):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, *a, **k)
        StateStore.commit = commit
        import explorer.models.states as st
        st.COMMIT_SECONDS = 0  # commit after every batch, so the kill lands mid-corpus
        from explorer.services.states import export_states
        export_states("tiny-llama", Path({str(root)!r}), corpus=Path({str(corpus_file)!r}), batch_size=2)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == -9, proc.stderr[-2000:]
    cat = Catalog(root)
    (c,) = StateStore(cat).corpora()
    assert c.status == "running" and cat.query("SELECT count(*) FROM documents WHERE done")[0][0] == 4
    rep = export_states("tiny-llama", root, corpus=corpus_file, batch_size=2)
    assert rep.resumed_from > 0
    c2, layers = _layers(root)
    _, clean = _layers(states_root)
    assert c2.status == "done" and cat.query("SELECT count(*) - count(DISTINCT state_id) FROM states")[0][0] == 0
    for a, b in zip(layers, clean):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_float16_and_workers_agree(states_root, corpus_file, tmp_path):
    rep = export_states("tiny-llama", states_root, corpus=corpus_file, name="half", dtype="float16", workers=2, batch_size=3)
    assert rep.dtype == "float16" and rep.states == _layers(states_root)[0].committed
    _, half = _layers(states_root, "half")
    _, full = _layers(states_root)
    for a, b in zip(half, full):
        assert a.dtype == np.float16
        np.testing.assert_allclose(a.astype(np.float32), b, rtol=2e-3, atol=2e-3)


def test_cli_state_neighbours_and_where(states_root):
    r = runner.invoke(app, ["--root", str(states_root), "neighbours", "--layer", "1", "Paris France Berlin Germany water",
                            "--position", "1", "--model", "tiny-llama", "--corpus", "docs", "--json"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    top = out["results"][0]
    assert out["token"] == " France" and top["token"] == " France" and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert "[ France]" in top["snippet"]
    r = runner.invoke(app, ["--root", str(states_root), "neighbours", "--layer", "2", "king", "--model", "tiny-llama",
                            "--corpus", "docs", "--where", "document = 2", "--json"])
    assert {h["document"] for h in json.loads(r.stdout)["results"]} == {2}
    bad = runner.invoke(app, ["--root", str(states_root), "neighbours", "--layer", "9", "king", "--model", "tiny-llama"])
    assert bad.exit_code != 0 and bad.stderr.startswith("error: ")


def test_trajectory_json(states_root):
    r = runner.invoke(app, ["--root", str(states_root), "trajectory", "king queen", "--model", "tiny-llama", "-k", "3", "--json"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert [v["layer"] for v in out["layers"]] == [0, 1, 2] and out["token"] == " queen"
    for v in out["layers"]:
        probs = [t["prob"] for t in v["lens_top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
        assert len(v["embedding_top"]) == 3
    assert out["layers"][0]["embedding_top"][0]["token"] == " queen"  # layer 0 is the embedding itself


def test_query_at_a_layer_uses_token_means(states_root):
    r = runner.invoke(app, ["--root", str(states_root), "query", "king", "--layer", "1", "--model", "tiny-llama", "--corpus", "docs", "--json", "-k", "50"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    cat = Catalog(states_root)
    seen = {t for (t,) in cat.query("SELECT DISTINCT token FROM hidden_states WHERE corpus = 'docs'")}
    assert {h["token"] for h in out["results"]} <= seen and "layer 1" in out["vector_set"]
    ok = runner.invoke(app, ["--root", str(states_root), "query", "queen - man + woman", "--layer", "1", "--model", "tiny-llama",
                             "--corpus", "docs", "--expect", "princess", "--json"])
    assert ok.exit_code == 0, ok.stderr
    res = json.loads(ok.stdout)
    assert {" queen", " man", " woman"}.isdisjoint(h["token"] for h in res["results"]) and res["expected"]["rank_kept"] >= 1
    missing = runner.invoke(app, ["--root", str(states_root), "query", "King", "--variant", "initial", "--layer", "1", "--model", "tiny-llama"])
    assert missing.exit_code != 0 and "does not occur" in missing.stderr


@pytest.mark.parametrize("kind, bar", [("sq8", 0.99), ("ivfpq", 0.95)])
def test_compressed_indexes_meet_recall(tmp_path, kind, bar):
    from explorer.store import compressed
    from explorer.store.vectorset import VectorSet

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(50, 64)).astype(np.float32)
    x = centers[rng.integers(0, 50, 20000)] + 0.6 * rng.normal(size=(20000, 64)).astype(np.float32)
    VectorSet.write(tmp_path, x)
    vs = VectorSet.open(tmp_path)
    rep = compressed.build_and_measure(vs, kind, tmp_path / f"{kind}.faiss")
    assert rep.recall_at_10 >= bar, rep
    assert rep.bytes < x.nbytes / 3
    hits = compressed.search_compressed(compressed.load_compressed(tmp_path / f"{kind}.faiss", kind), kind, vs, x[:3], 5)
    assert hits.ids[:, 0].tolist() == [0, 1, 2]


@pytest.fixture(scope="module")
def loud_root(tmp_path_factory):
    """A tiny model whose embedding rows are scaled past float16's range (as Gemma's BOS
    states are in its middle layers), exported to a root of its own."""
    from safetensors.numpy import load_file, save_file

    from conftest import build_tiny_model
    from explorer.models.export import export_model

    d = build_tiny_model(tmp_path_factory.mktemp("models") / "loud-llama")
    w = load_file(str(d / "model.safetensors"))
    w["model.embed_tokens.weight"] = w["model.embed_tokens.weight"] * np.float32(1e7)
    save_file(w, str(d / "model.safetensors"), metadata={"format": "pt"})
    root = tmp_path_factory.mktemp("loud-root")
    export_model(str(d), root)
    return root


def _catalog_rows(root):
    cat = Catalog(root)
    return [cat.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("corpora", "documents", "states")]


def test_float16_overflow_is_refused_and_nothing_is_kept(loud_root, corpus_file):
    from explorer.models.states import StatesOverflow

    with pytest.raises(StatesOverflow, match=r"layer\(s\) 0-2 exceed float16's range .*--dtype float32"):
        export_states("loud-llama", loud_root, corpus=corpus_file, name="half", dtype="float16", batch_size=4)
    assert _catalog_rows(loud_root) == [0, 0, 0]
    assert not (loud_root / "states" / "loud-llama" / "half").exists()
    r = runner.invoke(app, ["--root", str(loud_root), "export-states", "loud-llama", "--corpus", str(corpus_file),
                            "--dtype", "float16"])
    assert r.exit_code == 1 and "Traceback" not in r.output + r.stderr  # stage lines, then one error line
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == r.stderr.rstrip().splitlines()[-1]
    assert "float16" in errors[0] and "float32" in errors[0]
    assert _catalog_rows(loud_root) == [0, 0, 0]
    rep = export_states("loud-llama", loud_root, corpus=corpus_file, name="full", dtype="float32", batch_size=4)
    _, layers = _layers(loud_root, "full")
    peak = max(float(np.abs(a).max()) for a in layers)
    assert rep.states > 0 and np.isfinite(peak) and peak > 65504  # float32 holds them exactly


def test_float16_overflow_in_a_worker_is_refused_too(loud_root, corpus_file):
    from explorer.models.states import StatesOverflow

    before = _catalog_rows(loud_root)
    with pytest.raises(StatesOverflow, match="float16"):
        export_states("loud-llama", loud_root, corpus=corpus_file, name="half2", dtype="float16", workers=2, batch_size=4)
    assert _catalog_rows(loud_root) == before
    assert not (loud_root / "states" / "loud-llama" / "half2").exists()


def test_overflow_check_looks_at_real_tokens_only():
    from explorer.models.states import StatesOverflow, check_fits

    layer = torch.zeros(2, 3, 4)
    layer[1, 2] = 1e6  # a padding position of a 2-token row
    check_fits([layer, layer], [3, 2], "float16")
    layer[0, 1, 0] = -7e4
    with pytest.raises(StatesOverflow, match=r"layer\(s\) 0-1 .*70,000 at layer 0"):
        check_fits([layer, layer], [3, 2], "float16")
    check_fits([layer], [3, 2], "float32")
    layer[0, 0, 0] = float("nan")
    with pytest.raises(StatesOverflow, match="inf or NaN at layer"):
        check_fits([layer], [3, 2], "float32")


def test_throughput_counts_forward_passes_only(tiny_root, tmp_path):
    import shutil

    root = shutil.copytree(tiny_root, tmp_path / "root")
    rep = export_states("tiny-llama", root, prompts=["king queen man woman"], name="one-prompt")
    assert rep.states == 4 and 0 < rep.forward_seconds <= rep.seconds
    assert rep.tokens_per_second == pytest.approx(rep.states / rep.forward_seconds)
    again = export_states("tiny-llama", root, prompts=["king queen man woman"], name="one-prompt")
    assert again.forward_seconds == 0 and again.tokens_per_second == 0  # nothing new ran


def test_neighbour_contexts_keep_square_brackets(states_root):
    r = runner.invoke(app, ["--root", str(states_root), "neighbours", "--layer", "1", "king queen", "--position", "0",
                            "--model", "tiny-llama", "--corpus", "docs", "-k", "3"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.stderr
    assert "[king]" in r.stdout  # the context marks the hit; Rich read it as a style tag and dropped it


@pytest.mark.slow
def test_gemma_float16_overflow_is_refused(gemma_root, model_cache, monkeypatch):
    """The case the issue found: Gemma's BOS states pass 65,504 in layers 8-18."""
    from explorer.models.states import StatesOverflow

    monkeypatch.setenv("EXPLORER_MODEL_CACHE", str(model_cache))
    with pytest.raises(StatesOverflow, match=r"layer\(s\) 8-18 exceed float16's range"):
        export_states("gemma3-270m", gemma_root, prompts=["The capital of France is Paris."], name="half", dtype="float16")
    cat = Catalog(gemma_root)
    assert not [c for c in StateStore(cat).corpora() if c.name == "half"]
