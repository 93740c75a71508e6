"""word2vec's kernels: the numba per-pair kernel trains like the batched torch one, the
``kernel`` setting is checked, and a missing numba is one line naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clitools import one_line_error
from corpora import topic_corpus
from explorer.cli.main import app
from explorer.errors import ExplorerError
from explorer.experiments import runner
from explorer.experiments import word2vec as w2v
from explorer.experiments.base import RunContext, apply

needs_numba = pytest.mark.skipif(w2v.numba_problem() is not None, reason="numba is not installed")
ROOT = Path(__file__).resolve().parents[1]


def topic_gap(words: list[str], matrix: np.ndarray, topics: list[list[str]]) -> float:
    """Mean cosine of two words of one topic minus that of two words of different topics."""
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    label = np.array([next(t for t, ws in enumerate(topics) if w in ws) for w in words])
    cos = unit @ unit.T
    same = (label[:, None] == label[None, :]) & ~np.eye(len(label), dtype=bool)
    return float(cos[same].mean() - cos[label[:, None] != label[None, :]].mean())


def toy_run(corpus: Path, seed: int, **settings):
    # batch 128: on a 60-word vocabulary the batched kernel's default 1024 sums ~17
    # gradients per row and step, which can diverge (shared negatives) for some seeds
    config = apply(w2v.Config(), {"corpus": str(corpus), "dim": 20, "window": 3, "epochs": 3, "min_count": 1,
                                  "sample": 0.0, "batch": 128, "analogies": "-", "pairs": "-", **settings})
    return w2v.EXPERIMENT.run(config, RunContext(1, seed))


@needs_numba
@pytest.mark.parametrize("arch", ["sg", "cbow"])
def test_numba_kernel_learns_topics_as_well_as_the_batched_one(tmp_path, arch):
    corpus = tmp_path / "topics.txt"
    topics = topic_corpus(corpus)
    got = {}
    for kernel in ("numba", "batched"):
        runs = [toy_run(corpus, seed, arch=arch, kernel=kernel) for seed in (1, 2, 3)]
        assert {r.summary["kernel"] for r in runs} == {kernel}
        got[kernel] = ([topic_gap(r.vectors[0].words, r.vectors[0].matrix, topics) for r in runs],
                       [r.summary["loss"] for r in runs])
    gaps, losses = got["numba"]
    assert min(gaps) > 0.4, gaps  # words of a topic end up near each other
    assert abs(np.mean(gaps) - np.mean(got["batched"][0])) < 0.15, got
    assert abs(np.mean(losses) - np.mean(got["batched"][1])) < 0.15 * np.mean(got["batched"][1]), got
    a, b = (toy_run(corpus, 1, arch=arch, kernel="numba").vectors[0].matrix for _ in range(2))
    assert a.dtype == np.float32 and a.shape == (60, 20)
    np.testing.assert_array_equal(a, b)  # the seed fixes the run


def reference_sgd(cbow, w_in, w_out, ids, sent, window, negative, keep, alias, lr, seed):
    """word2vec.c's loop in plain Python (the kernel's generator, noise sampler and
    sigmoid table)."""
    from explorer.experiments.w2v_kernel import SIGMOID, TABLE_SIZE

    rnd, seen = seed, {"pairs": 0, "off_table": 0}

    def draw(n):
        nonlocal rnd
        rnd = (rnd * 25214903917 + 11) % 2**64
        return ((rnd >> 32) * n) >> 32

    def noise():
        word = draw(len(keep))
        return word if draw(2**24) / 2**24 < keep[word] else int(alias[word])  # the top 24 bits

    def targets(h, centre):
        work = np.zeros_like(h)
        for k in range(negative + 1):
            t, label = (centre, 1.0) if k == 0 else (noise(), 0.0)
            if k and t == centre:
                continue
            f = float(h @ w_out[t])
            slot = 0 if f <= -6 else TABLE_SIZE + 1 if f >= 6 else 1 + int((f + 6) * TABLE_SIZE / 12)
            seen["off_table"] += slot in (0, TABLE_SIZE + 1)
            g = (label - SIGMOID[slot]) * lr
            work += g * w_out[t]
            w_out[t] += g * h
        seen["pairs"] += 1
        return work

    for p in range(len(ids)):
        b = draw(window) + 1
        ctx = [j for j in range(max(0, p - b), min(len(ids), p + b + 1)) if j != p and sent[j] == sent[p]]
        if cbow and ctx:
            work = targets(w_in[ids[ctx]].mean(axis=0), ids[p])
            for j in ctx:
                w_in[ids[j]] += work  # the whole error to every context word
        for j in [] if cbow else ctx:
            w_in[ids[j]] += targets(w_in[ids[j]].copy(), ids[p])
    return seen


@needs_numba
def test_alias_table_is_the_unigram_075_distribution():
    from explorer.experiments import w2v_kernel as k

    counts = np.array([1000, 300, 300, 41, 7, 5, 5, 1])
    keep, alias = k.alias_table(counts)
    drawn = keep / len(counts)  # a word: drawn itself, or as the alias of another word
    np.add.at(drawn, alias, (1 - keep) / len(counts))
    np.testing.assert_allclose(drawn, counts**0.75 / (counts**0.75).sum(), rtol=1e-6)
    assert keep.dtype == np.float32 and alias.dtype == np.int32 and np.all((keep >= 0) & (keep <= 1))


@needs_numba
@pytest.mark.parametrize("cbow", [False, True])
def test_kernel_is_word2vec_c_loop(cbow):
    """Pair by pair, the compiled kernel does what the plain loop does."""
    from explorer.experiments import w2v_kernel as k

    rng = np.random.default_rng(5)
    ids = rng.integers(0, 12, 40).astype(np.int64)
    sent = np.repeat(np.arange(4), 10).astype(np.int64)
    keep, alias = k.alias_table(np.bincount(ids, minlength=12) + 1)
    init = w2v.initial_vectors(12, 16, 0) * 40  # large enough for scores beyond +-6 too
    out0 = rng.normal(size=(12, 16)).astype(np.float32) * 2
    w_in, w_out = k.aligned_rows(12, 16), k.aligned_rows(12, 16)
    w_in[:], w_out[:] = init, out0
    chunk = k.cbow_chunk if cbow else k.sg_chunk
    stats = np.zeros(2)
    chunk(w_in, w_out, ids, sent, 0, len(ids), 3, 4, keep, alias, np.array([0.05, 0.05, 0.0, 1.0, 1.0]),
          np.array([7], np.uint64), stats)
    ref_in, ref_out = init.astype(np.float64), out0.astype(np.float64)
    seen = reference_sgd(cbow, ref_in, ref_out, ids, sent, 3, 4, keep, alias, 0.05, 7)
    np.testing.assert_allclose(w_in, ref_in, atol=2e-4)
    np.testing.assert_allclose(w_out, ref_out, atol=2e-4)
    assert stats[1] == seen["pairs"] and seen["off_table"] > 0  # scores beyond +-6 were met


@needs_numba
@pytest.mark.parametrize("cbow", [False, True])
def test_kernel_loss_falls_from_log_2_per_target(tmp_path, cbow):
    from explorer.experiments import w2v_kernel as k

    topic_corpus(tmp_path / "t.txt")
    sentences = w2v.read_sentences(str(tmp_path / "t.txt"))
    vocab = w2v.build_vocab(sentences, 1)
    ids, sent = w2v.encode(sentences, vocab.words)
    engine = k.NumbaEngine(w2v.initial_vectors(60, 20, 0), vocab.counts, cbow, 3, 5, 0)
    sched = np.array([0.025, 0.025, 0.0, 1.0, 1.0])  # a constant rate
    losses = []
    for _ in range(4):
        engine.new_epoch()
        engine.train(ids, sent, 0, 50 if not losses else len(ids), sched, np.random.default_rng(0), lambda done: None)
        losses.append(engine.loss()[0] / engine.loss()[1])
    # at the start output vectors are 0: every target scores 0, a loss of log 2 each
    # (up to the table's slot width); a noise word equal to the centre is skipped
    assert 5.0 * np.log(2) < losses[0] < 6 * np.log(2) + 0.02, losses
    assert losses[3] < losses[2] < losses[1] < losses[0] and losses[3] < 0.5 * losses[0], losses
    assert np.all(engine.w_in[:, 20:] == 0) and np.all(engine.w_out[:, 20:] == 0)  # the padding stays zero
    assert engine.w_in.ctypes.data % 64 == 0 and engine.w_in.shape[1] % 16 == 0


@needs_numba
def test_training_never_compiles_again(tmp_path):
    """compile_kernels compiles for the very argument types training uses, so the
    compile time it reports is all of it (none inside words/s)."""
    from explorer.experiments import w2v_kernel as k

    topic_corpus(tmp_path / "t.txt")
    for arch in ("sg", "cbow"):
        out = toy_run(tmp_path / "t.txt", 1, arch=arch, kernel="numba")
        assert out.summary["compile_s"] > 0 and out.summary["words_per_s"] > 0
    assert len(k.sg_chunk.signatures) == 1 and len(k.cbow_chunk.signatures) == 1


@needs_numba
def test_kernel_compiles_without_a_cache_location(tmp_path):
    """Where no cache directory can be written the kernels compile in every process."""
    code = ("import numba.core.caching as c\n"
            "impl = getattr(c, 'CacheImpl', None) or getattr(c, '_CacheImpl')\n"
            "impl._locator_classes = []\n"
            "from explorer.experiments import w2v_kernel as k\n"
            "assert k.sg_chunk._cache.__class__.__name__ == 'NullCache'\n"
            "print('compiled', k.compile_kernels() > 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and "compiled True" in done.stdout, done.stderr[-2000:]


def test_kernel_setting_is_checked():
    with pytest.raises(ExplorerError, match=r"^setting kernel=fast"):
        runner.make_plan("word2vec", None, {"kernel": "fast"})
    with pytest.raises(ExplorerError, match=r"^setting kernel=numba: .*shared_negatives"):
        runner.make_plan("word2vec", None, {"kernel": "numba", "shared_negatives": "true"})
    if w2v.numba_problem() is None:
        with pytest.raises(ExplorerError, match=r"^setting batch=64: has no effect"):
            runner.make_plan("word2vec", None, {"kernel": "numba", "batch": "64"})
    plan = runner.make_plan("word2vec", None, {"kernel": "batched", "batch": "64"})
    assert plan.config.kernel == "batched"


def test_auto_picks_numba_on_the_cpu_when_it_imports():
    config = w2v.Config()
    expected = "numba" if w2v.numba_problem() is None else "batched"
    assert w2v.choose_kernel(config, "cpu") == expected
    assert w2v.choose_kernel(config, "cuda") == "batched"
    assert w2v.choose_kernel(apply(config, {"shared_negatives": True}), "cpu") == "batched"
    with pytest.raises(ExplorerError, match="kernel must be one of"):
        w2v.choose_kernel(apply(config, {"kernel": "gpu"}), "cpu")


def test_without_numba_auto_falls_back_and_numba_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    monkeypatch.delitem(sys.modules, "explorer.experiments.w2v_kernel", raising=False)
    assert w2v.numba_problem() is not None
    assert w2v.choose_kernel(w2v.Config(), "cpu") == "batched"
    with pytest.raises(ExplorerError, match=r"explorer\[fast\]") as err:
        w2v.choose_kernel(apply(w2v.Config(), {"kernel": "numba"}), "cpu")
    assert "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["--root", str(tmp_path), "experiment", "run", "word2vec", "--preset", "smoke",
                                      "--set", "kernel=numba"])
    line = one_line_error(result)
    assert "kernel=numba" in line and "explorer[fast]" in line
    topic_corpus(tmp_path / "t.txt")
    out = toy_run(tmp_path / "t.txt", 1)  # auto: the batched kernel, and it says so
    assert out.summary["kernel"] == "batched" and out.summary["compile_s"] == 0


@needs_numba
def test_a_diverging_run_ends_without_crashing(tmp_path):
    """lr=10 (the largest the rules allow) blows the vectors up to inf and NaN; scores
    that are NaN read the table's first slot instead of an index out of bounds."""
    topic_corpus(tmp_path / "t.txt")
    out = toy_run(tmp_path / "t.txt", 1, kernel="numba", lr=10.0, dim=16)
    assert not np.isfinite(out.vectors[0].matrix).all()  # it did diverge
    assert np.isfinite(out.summary["loss"]) and out.summary["pairs"] > 0
