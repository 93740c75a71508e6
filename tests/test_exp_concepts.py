"""The latent binary-concept experiment (Jiang et al. 2024) and concept directions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.experiments import concepts as C
from explorer.experiments.base import RunContext, apply
from explorer.query import directions as D

# -- (a) the latent model ------------------------------------------------------------------


def _acyclic(adj: np.ndarray) -> bool:
    """Kahn's algorithm: every node can be removed in topological order."""
    indeg = adj.sum(0).astype(int)
    todo = [i for i in range(len(adj)) if indeg[i] == 0]
    seen = 0
    while todo:
        i = todo.pop()
        seen += 1
        for j in np.flatnonzero(adj[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                todo.append(j)
    return seen == len(adj)


@pytest.mark.parametrize("seed", range(5))
def test_dag_and_conditionals(seed):
    rng = np.random.default_rng(seed)
    lm = C.random_latent_model(6, 0.6, rng)
    assert _acyclic(lm.adjacency)
    pos = {c: k for k, c in enumerate(lm.order)}
    assert all(pos[p] < pos[i] for i, ps in enumerate(lm.parents) for p in ps)  # order is topological
    for i, table in enumerate(lm.cpt):
        assert table.shape == (2 ** len(lm.parents[i]),)
        assert np.all((table >= 0.3) & (table <= 0.7))
    assert lm.joint().sum() == pytest.approx(1.0)


def test_ancestral_samples_match_enumeration():
    lm = C.random_latent_model(4, 0.8, np.random.default_rng(3))
    assert lm.adjacency.sum() >= 2  # some dependence to get right
    n = 200_000
    c = lm.sample(n, np.random.default_rng(0))
    y = (c.astype(np.int64) << np.arange(4)).sum(1)
    p = lm.joint()
    freq = np.bincount(y, minlength=16) / n
    assert np.abs(freq - p).max() < 4 * np.sqrt(p.max() / n) + 1e-3
    marg = C.token_bits(4).T @ p  # exact P(Ci = 1)
    assert np.allclose(c.mean(0), marg, atol=0.005)


@pytest.mark.parametrize("incomplete", [False, True])
def test_task_contexts(incomplete):
    cfg = C.Config(m=5, incomplete=incomplete, graph_seed=1)
    task = C.make_task(cfg)
    assert task.p_context.sum() == pytest.approx(1.0)
    live = task.p_context > 0
    assert np.allclose(task.conditional[live].sum(1), 1.0)
    v, y = task.sample(20_000, np.random.default_rng(0))
    bits = 2 * C.token_bits(5)[y] - 1
    assert np.all((v == 0) | (v == bits))  # the next token agrees with every revealed concept
    assert np.all(live[C.context_index(v)])
    if incomplete:
        sizes = {len(s) for s in task.family}
        assert max(sizes) <= 2 and len(task.family) == 5
        assert set().union(*task.family) == set(range(5))  # every concept revealed somewhere
        assert (v != 0).sum(1).max() <= 2  # never "all concepts but one"
    else:
        assert (v != 0).sum(1).max() == 5


# -- (b) training -------------------------------------------------------------------------


def test_training_makes_concepts_linear():
    cfg = apply(C.Config(), {"m": 4, "d": 8, "steps": 3000, "batch": 128, "hidden": 32, "eval_every": 1000})
    seen: list = []
    out = C.run(cfg, RunContext(1, seed=0, emit=seen.append, threads=1))
    s = out.summary
    assert abs(s["linearity_init"]) < 0.3  # random init: offsets point anywhere
    assert s["linearity"] > 0.8
    assert s["excess_loss"] < 0.1 and s["loss"] >= s["entropy"] - 1e-9
    assert s["orthogonality"] < 0.2
    metrics = {(m.step, m.name) for m in seen if m.kind == "metric"}
    names = {"loss", "linearity", "orthogonality"} | {f"linearity/c{i}" for i in range(4)}
    for step in (0, 3000):  # both measures at the same steps as the loss
        assert {(step, n) for n in names} <= metrics
    json.dumps(s)  # JSON-safe
    text = C.summarize(cfg, [(cfg, s)])
    assert "complete d=8" in text.text and text.figure is not None


def test_points_and_presets():
    cfg = apply(C.Config(), C.EXPERIMENT.presets["paper"])
    pts = C.EXPERIMENT.points(cfg)
    assert {(p["incomplete"], p["d"]) for p in pts} == {(i, d) for i in (False, True) for d in (4, 8, 16)}
    assert C.EXPERIMENT.name == "concepts"
    assert apply(C.Config(), {"d_grid": "2,4", "incomplete_grid": "false"}).d_grid == (2, 4)


def test_measure_on_exactly_linear_unembedding():
    rng = np.random.default_rng(0)
    m, d = 4, 8
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    g = 0.5 + C.token_bits(m) @ q[:m]  # g(y) = a + sum_i c_i delta_i, orthonormal deltas
    meas = C.measure(g)
    assert meas["linearity"] == pytest.approx(1.0) and meas["orthogonality"] == pytest.approx(0.0, abs=1e-9)
    assert C.measure(rng.normal(size=(16, 64)))["linearity"] < 0.3


# -- (c) directions on synthetic matrices ------------------------------------------------------


def _synthetic(dim=64, n=10, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(2 * n, dim))
    q, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    d1, d2 = 3 * q[:, 0], 2 * q[:, 1]  # orthogonal concept directions
    rows = np.vstack([base, base[:n] + d1, base[n:] + d2])
    concepts = {"one": [(k, 2 * n + k) for k in range(n)], "two": [(n + k, 3 * n + k) for k in range(n)]}
    return rows.astype(np.float32), concepts


def test_directions_exact_concepts():
    matrix, concepts = _synthetic()
    rep = D.concept_directions(matrix, concepts)
    for c in rep.concepts:
        assert c.consistency == pytest.approx(1.0, abs=1e-5) and c.loo_mean == pytest.approx(1.0, abs=1e-5)
        assert c.n_pairs == 10
    assert rep.orthogonality == pytest.approx(0.0, abs=1e-5)
    assert np.allclose(np.diag(rep.cosines), 1.0, atol=1e-6)
    out = rep.to_dict()
    assert out["names"] == ["one", "two"] and len(out["concepts"][0]["loo"]) == 10
    assert D.align(matrix, matrix, concepts).tied


def test_directions_random_vectors(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "m.npy", rng.normal(size=(200, 256)).astype(np.float16))
    matrix = np.load(tmp_path / "m.npy", mmap_mode="r")  # stored sets are memory-mapped
    concepts = {f"c{j}": [(int(a), int(b)) for a, b in rng.choice(200, size=(15, 2), replace=False)] for j in range(3)}
    rep = D.concept_directions(matrix, concepts)
    assert all(abs(c.consistency) < 0.1 for c in rep.concepts)
    # the structure survives a change of basis: a rotated copy aligns perfectly, noise does not
    q, _ = np.linalg.qr(rng.normal(size=(256, 256)))
    rotated = np.asarray(matrix, dtype=np.float64) @ q
    al = D.align(matrix, rotated, concepts)
    assert not al.tied and al.word_structure == pytest.approx(1.0, abs=1e-3)
    assert al.concept_structure == pytest.approx(1.0, abs=1e-3)
    assert all(v == pytest.approx(1.0, abs=1e-3) for v in al.difference_structure.values())
    assert abs(D.align(matrix, rng.normal(size=(200, 256)), concepts).word_structure) < 0.3
    assert D.consistency(np.zeros((1, 4))) != D.consistency(np.zeros((1, 4)))  # NaN below 2 pairs


def test_load_pairs(tmp_path):
    p = tmp_path / "pairs.csv"
    p.write_text("concept,a,b\n# comment\ng,man,woman\ng,king,queen\nn,cat,cats\n")
    assert D.load_pairs(p) == {"g": [("man", "woman"), ("king", "queen")], "n": [("cat", "cats")]}
    bundled = D.load_pairs()
    assert len(bundled) >= 6 and all(len(v) >= 10 for v in bundled.values())
    from explorer.errors import ExplorerError

    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ExplorerError, match="concept,a,b"):
        D.load_pairs(tmp_path / "bad.csv")


# -- (d) the CLI command on the tiny model --------------------------------------------------------


@pytest.fixture(scope="module")
def cli_app():
    import typer

    from explorer.cli import directions as cmd
    from explorer.cli.main import app, callback

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    if "directions" in names:
        return app
    local = typer.Typer()
    local.callback()(callback)
    cmd.register(local)
    return local


def test_directions_cli(tiny_root, tmp_path, cli_app):
    from typer.testing import CliRunner

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "concept,a,b\ngender,man,woman\ngender,king,queen\ngender,boy,girl\ngender,prince,princess\n"
        "gender,qqqq,zzzz\ncapital,France,Paris\ncapital,Germany,Berlin\n"
    )
    runner = CliRunner()
    args = ["--root", str(tiny_root), "directions", "--model", "tiny-llama", "--pairs", str(pairs)]
    r = runner.invoke(cli_app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    by = {c["name"]: c for c in out["concepts"]}
    assert by["gender"]["pairs_given"] == 5 and by["gender"]["pairs_used"] == 4
    assert "qqqq" in by["gender"]["skipped"][0] and by["capital"]["pairs_used"] == 2
    assert out["tied"] is False and out["output"] is not None
    for rep in (out["input"], out["output"]):
        assert rep["names"] == ["gender", "capital"] and len(rep["cosines"]) == 2
        assert -1 <= rep["concepts"][0]["consistency"] <= 1
    assert out["alignment"]["tied"] is False
    human = runner.invoke(cli_app, args)
    assert human.exit_code == 0 and "Concept directions" in human.stdout and "gender" in human.stdout
    bundled = runner.invoke(cli_app, ["--root", str(tiny_root), "directions", "--model", "tiny-llama", "--json"])
    assert bundled.exit_code == 0, bundled.output  # mostly unknown words: skipped, no crash
    bad = runner.invoke(cli_app, [*args[:-1], str(tmp_path / "missing.csv")])
    assert bad.exit_code == 1 and "cannot read pairs file" in bad.stderr
