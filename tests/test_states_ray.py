"""``export-states --ray local``: the same store as a one-process export (rows, metadata,
neighbours), a partly committed export finished on Ray, and one-line errors for a bad
address or a missing Ray. Skipped where Ray is not installed (extra ``explorer[ray]``)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from clitools import one_line_error
from test_states import DOCS as STATE_DOCS
from typer.testing import CliRunner

from explorer.cli.main import app
from explorer.core.cluster import worker_share
from explorer.services.states import export_states
from explorer.store.catalog import Catalog
from explorer.store.states import StateStore, layer_file

runner = CliRunner()
DOCS = STATE_DOCS[:10]  # the five documents of test_states, twice
REF = "ray-ref"


@pytest.fixture(scope="module", autouse=True)
def _threads_as_a_worker():
    """A Ray worker here gets the local cluster's CPUs as torch threads (worker_share); the
    one-process exports in this module use as many, whatever earlier tests in this process
    left set (experiment points set one thread), so the same kernels give the same bits."""
    import os

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("ray-corpus") / "docs.txt"
    p.write_text("\n".join(DOCS) + "\n")
    return p


@pytest.fixture(scope="module")
def root(tiny_root, corpus, tmp_path_factory):
    """A copy of the tiny model's root (the session's stays unchanged) with a one-process
    export of the corpus, batches of 3."""
    import shutil

    pytest.importorskip("ray")
    root = shutil.copytree(tiny_root, tmp_path_factory.mktemp("ray-root") / "root")
    export_states("tiny-llama", root, corpus=corpus, name=REF, batch_size=3)
    return root


def _cli(root, *args):
    return runner.invoke(app, ["--root", str(root), *map(str, args)])


def _store(root, name):
    """(corpus row, layer arrays, per-state metadata, per-document metadata)."""
    cat = Catalog(root)
    (c,) = [c for c in StateStore(cat).corpora() if c.name == name]
    layers = [np.load(root / c.path / layer_file(i)) for i in range(c.n_layers)]
    states = cat.query("SELECT state_id, doc_id, position, token_id, token FROM states WHERE corpus_id = ? ORDER BY state_id",
                       [c.corpus_id])
    docs = cat.query("SELECT doc_id, lang, text, n_tokens, first_state, done FROM documents WHERE corpus_id = ? ORDER BY doc_id",
                     [c.corpus_id])
    return c, layers, states, docs


def _neighbours(root, name, layer=1):
    r = _cli(root, "neighbours", "--layer", layer, "Paris France Berlin Germany water", "--position", 1,
             "--model", "tiny-llama", "--corpus", name, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["results"]


def _export_on_ray(root, corpus, name, *extra):
    r = _cli(root, "export-states", "tiny-llama", "--corpus", corpus, "--name", name, "--batch-size", 3,
             "--ray", "local", "--json", *extra)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_ray_local_gives_the_one_process_store(root, corpus):
    rep = _export_on_ray(root, corpus, "ray-one")
    ref, got = _store(root, REF), _store(root, "ray-one")
    assert rep["states"] == ref[0].committed == got[0].committed and got[0].status == "done"
    # one worker gets the cluster's 2 CPUs as torch threads, as the one process has:
    # the same batches through the same kernels give the same bits
    for a, b in zip(ref[1], got[1]):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert got[2] == ref[2] and got[3] == ref[3]
    for layer in (0, 2):
        assert _neighbours(root, "ray-one", layer) == _neighbours(root, REF, layer)


def test_ray_workers_share_the_corpus(root, corpus):
    rep = _export_on_ray(root, corpus, "ray-two", "--workers", 2)
    ref, got = _store(root, REF), _store(root, "ray-two")
    assert rep["states"] == ref[0].committed
    # two workers run one torch thread each: reductions may split differently than with
    # two threads in one process (measured: max |diff| 3.7e-9 on values of order 1)
    for a, b in zip(ref[1], got[1]):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert got[2] == ref[2] and got[3] == ref[3]
    near, want = _neighbours(root, "ray-two"), _neighbours(root, REF)
    assert [h["state_id"] for h in near] == [h["state_id"] for h in want]
    assert [h["score"] for h in near] == pytest.approx([h["score"] for h in want], abs=1e-5)


def test_a_partly_committed_export_is_finished_on_ray(root, corpus, monkeypatch):
    import explorer.models.states as st

    real, calls = StateStore.commit, []

    def commit(self, *a, **k):  # the run dies at its third commit: two batches are committed
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(self, *a, **k)

    monkeypatch.setattr(StateStore, "commit", commit)
    monkeypatch.setattr(st, "COMMIT_SECONDS", 0)
    with pytest.raises(RuntimeError, match="killed"):
        export_states("tiny-llama", root, corpus=corpus, name="ray-resume", batch_size=3)
    monkeypatch.undo()
    c, _, states, docs = _store(root, "ray-resume")
    assert c.status == "running" and sum(d[5] for d in docs) == 6 and len(states) == c.committed > 0
    rep = _export_on_ray(root, corpus, "ray-resume")
    assert rep["resumed_from"] == c.committed
    ref, got = _store(root, REF), _store(root, "ray-resume")
    assert got[0].status == "done"
    for a, b in zip(ref[1], got[1]):
        assert np.array_equal(a, b)
    assert got[2] == ref[2] and got[3] == ref[3]


def test_bad_address_or_no_ray_is_one_line_and_keeps_the_store(root, corpus, monkeypatch):
    before = _store(root, REF)
    for address in ("127.0.0.1:1", "no-port"):  # --force: a run that got as far as the store would delete it
        r = _cli(root, "export-states", "tiny-llama", "--corpus", corpus, "--name", REF, "--force", "--ray", address)
        assert address in one_line_error(r)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    r = _cli(root, "export-states", "tiny-llama", "--corpus", corpus, "--name", REF, "--force", "--ray", "local")
    assert "pip install" in one_line_error(r)
    after = _store(root, REF)
    assert after[0] == before[0] and after[2] == before[2] and all(np.array_equal(a, b) for a, b in zip(after[1], before[1]))


class _Cluster:
    """What worker_share reads of Ray: total resources and the nodes'."""

    def __init__(self, nodes: list[dict]):
        self._nodes = nodes

    def nodes(self):
        return [{"Alive": True, "Resources": n} for n in self._nodes]

    def cluster_resources(self):
        return {k: sum(n.get(k, 0) for n in self._nodes) for k in ("CPU", "GPU")}


def test_workers_share_the_cluster_and_fit_on_a_node():
    two_nodes = _Cluster([{"CPU": 8}, {"CPU": 8}])
    assert worker_share(two_nodes, 1) == (8.0, 0.0, 8)  # not 16: one actor runs on one node
    assert worker_share(two_nodes, 4) == (4.0, 0.0, 4)
    assert worker_share(two_nodes, 32) == (0.5, 0.0, 1)  # more workers than CPUs: a share, one thread
    gpus = _Cluster([{"CPU": 16, "GPU": 2}])
    assert worker_share(gpus, 4)[1] == 0.5 and worker_share(gpus, 2)[1] == 1.0 and worker_share(gpus, 1)[1] == 1.0
