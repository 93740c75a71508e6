"""Word embeddings from scratch: co-occurrence + SVD, word2vec (sg/CBOW), gensim-equal evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from corpora import topic_corpus
from explorer.cli import evaluate as evaluate_cli
from explorer.cli.common import Globals
from explorer.experiments import cooccurrence as cooc
from explorer.experiments import word2vec as w2v
from explorer.experiments.base import RunContext, apply
from explorer.query import evaluate as ev
from explorer.store.interchange import import_arrays

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402
from gensim.test.utils import datapath  # noqa: E402

QUESTIONS = datapath("questions-words.txt")


# -- co-occurrence and SVD -------------------------------------------------------------


def glitters(**overrides):
    config = apply(cooc.Config(), overrides)
    words, ids, sent, _ = cooc.corpus(config)
    return config, words, cooc.count(ids, sent, len(words), config.window, config.weighting)


def test_glitters_with_markers_is_the_sources_ten_word_example():
    """As the source gives it: each document wrapped in <START> ... <END> (on by default for
    this corpus), 10 words, 14 adjacent pairs, and <START>-all counted twice."""
    _, words, x = glitters()
    assert words == ["<START>", "all", "that", "is", "<END>", "well", "glitters", "not", "gold", "ends"]
    docs = (["<START>", "all", "that", "glitters", "is", "not", "gold", "<END>"],
            ["<START>", "all", "is", "well", "that", "ends", "well", "<END>"])
    i = {w: k for k, w in enumerate(words)}
    expected = np.zeros((10, 10))
    for doc in docs:
        for a, b in zip(doc, doc[1:]):
            expected[i[a], i[b]] += 1
            expected[i[b], i[a]] += 1
    m = x.dense()
    np.testing.assert_array_equal(m, expected)
    assert m.shape == (10, 10) and m.sum() == 28 and m[i["<START>"], i["all"]] == 2
    config, _, _ = glitters()
    out = cooc.EXPERIMENT.run(config, RunContext(1, 0))
    assert out.summary["markers"] is True and out.summary["vocab"] == 10 and out.vectors[0].matrix.shape == (10, 2)
    summary = cooc.EXPERIMENT.summarize(config, [(config, json.loads(json.dumps(out.summary)))])
    header = next(line for line in summary.text.splitlines() if "<START>" in line and "ends" in line)
    assert header.split() == words  # the 10 x 10 table, then singular values and 2-D vectors
    assert "singular values" in summary.text and "2-D vectors" in summary.text
    np.testing.assert_allclose(out.summary["spectrum"], np.linalg.svd(expected, compute_uv=False))
    np.testing.assert_allclose(out.summary["spectrum"][:2], out.summary["singular_values"], rtol=1e-12)
    off = cooc.corpus(apply(cooc.Config(), {"corpus": "sample"}))[0]
    assert "<START>" not in off  # auto: other corpora get no markers


def test_glitters_cooccurrence_matrix_is_the_hand_counted_one():
    _, words, x = glitters(markers="off")
    assert words == ["all", "that", "is", "well", "glitters", "not", "gold", "ends"]  # frequency, then first seen
    neighbours = {  # window 1 in "all that glitters is not gold" / "all is well that ends well"
        "all": {"that", "is"}, "that": {"all", "glitters", "well", "ends"}, "is": {"glitters", "not", "all", "well"},
        "well": {"is", "that", "ends"}, "glitters": {"that", "is"}, "not": {"is", "gold"}, "gold": {"not"},
        "ends": {"that", "well"},
    }
    expected = np.array([[1.0 if c in neighbours[w] else 0.0 for c in words] for w in words])
    m = x.dense()
    np.testing.assert_array_equal(m, expected)
    assert np.array_equal(m, m.T) and m.sum() == 20  # 10 adjacent pairs, counted both ways
    i = {w: k for k, w in enumerate(words)}
    assert m[i["all"], i["that"]] == 1 and m[i["that"], i["ends"]] == 1 and m[i["all"], i["glitters"]] == 0
    _, _, h = glitters(window=2, weighting="harmonic", markers="off")
    assert h.dense()[i["all"], i["glitters"]] == 0.5 and h.dense()[i["glitters"], i["all"]] == 0.5


def test_glitters_svd_vectors_are_the_best_rank_2_approximation():
    config, words, x = glitters(markers="off")
    u, s, vt = cooc.truncated_svd(x, 2, config)
    emb = cooc.embed(u, s, 1.0)
    full_u, full_s, full_vt = np.linalg.svd(x.dense())
    assert full_s[1] > full_s[2] + 1e-6  # the rank-2 approximation is unique
    best = (full_u[:, :2] * full_s[:2]) @ full_vt[:2]
    np.testing.assert_allclose(emb @ vt, best, atol=1e-5)
    np.testing.assert_allclose(s, full_s[:2], rtol=1e-12)
    out = cooc.EXPERIMENT.run(config, RunContext(1, 0))
    (vec,) = out.vectors
    assert vec.name == "cooc-glitters" and vec.words == words and vec.matrix.shape == (8, 2)
    np.testing.assert_allclose(vec.matrix, emb)
    summary = cooc.EXPERIMENT.summarize(config, [(config, json.loads(json.dumps(out.summary)))])
    assert "co-occurrence counts" in summary.text and "glitters" in summary.text
    header = next(line for line in summary.text.splitlines() if "all" in line and "ends" in line)
    assert header.split() == words
    labels = [t.get_text() for t in summary.figure.axes[0].texts]
    assert "all, glitters" in labels and len(labels) == 7  # same contexts, same vector: one label


def test_ppmi_matches_the_dense_formula():
    _, _, x = glitters(window=2)
    for cds in (1.0, 0.75):
        m = x.dense()
        col = m.sum(0) ** cds
        with np.errstate(divide="ignore"):
            pmi = np.log(m / m.sum(1, keepdims=True) / (col / col.sum()))
        np.testing.assert_allclose(cooc.ppmi(x, cds).dense(), np.maximum(pmi, 0), atol=1e-12)


def test_randomized_svd_matches_the_full_one():
    rng = np.random.default_rng(0)
    n = 200
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    dense = (q * (0.7 ** np.arange(n))) @ q.T  # symmetric, decaying spectrum
    r, c = np.nonzero(np.ones((n, n)))
    x = cooc.Sparse(r, c, dense[r, c], n)
    config = apply(cooc.Config(), {"svd": "randomized", "dim": 5})
    u, s, vt = cooc.truncated_svd(x, 5, config)
    fu, fs, fvt = cooc.truncated_svd(x, 5, apply(config, {"svd": "full"}))
    np.testing.assert_allclose(s, fs, rtol=1e-8)
    np.testing.assert_allclose(np.abs(u.T @ fu), np.eye(5), atol=1e-6)  # same vectors (signs fixed alike)
    np.testing.assert_allclose(u, fu, atol=1e-6)


# -- word2vec --------------------------------------------------------------------------


@pytest.mark.parametrize("arch, shared", [("sg", False), ("sg", True), ("cbow", False)])
def test_word2vec_learns_which_words_co_occur(tmp_path, arch, shared):
    """The batched kernel (the numba one: tests/test_exp_w2v_kernel.py). Batch 128: with the
    default 1024 on this 60-word vocabulary a row gets ~17 summed gradients a step, and
    shared negatives diverge for some seeds."""
    corpus = tmp_path / "topics.txt"
    topics = topic_corpus(corpus)
    config = apply(w2v.Config(), {"corpus": str(corpus), "arch": arch, "shared_negatives": shared, "dim": 20,
                                  "window": 3, "epochs": 3, "min_count": 1, "sample": 0.0, "analogies": "-", "pairs": "-",
                                  "kernel": "batched", "batch": 128})
    events: list = []
    out = w2v.EXPERIMENT.run(config, RunContext(1, 3, emit=events.append))
    (vec,) = out.vectors
    assert vec.name == f"w2v-{arch}-topics" and vec.matrix.shape == (60, 20) and vec.matrix.dtype == np.float32
    unit = vec.matrix / np.linalg.norm(vec.matrix, axis=1, keepdims=True)
    row = {w: i for i, w in enumerate(vec.words)}
    label = np.array([next(t for t, ws in enumerate(topics) if w in ws) for w in vec.words])
    cos = unit @ unit.T
    same = (label[:, None] == label[None, :]) & ~np.eye(len(label), dtype=bool)
    within, across = cos[same].mean(), cos[label[:, None] != label[None, :]].mean()
    assert within - across > 0.4, (within, across)
    assert cos[row["aax"], row["abx"]] > cos[row["aax"], row["bax"]] + 0.3
    assert out.summary["vocab"] == 60 and out.summary["words_per_s"] > 0 and 0 < out.summary["loss"] < 3
    assert any(e.kind == "progress" and e.step == e.total for e in events)


def test_word2vec_vocab_subsampling_and_sweep():
    vocab = w2v.build_vocab([["b", "a", "b"], ["c", "a", "b", "d"]], min_count=2)
    assert vocab.words == ["b", "a"] and vocab.counts.tolist() == [3, 2]
    keep = w2v.keep_probability(np.array([1000, 10, 1]), 1e-3)
    assert keep[2] == 1.0 and keep[0] < keep[1] <= 1.0
    assert w2v.word_tokens("Don't STOP, 42 times!") == ["don", "t", "stop", "times"]
    assert w2v.EXPERIMENT.points(w2v.Config(arch="sg,cbow")) == [{"arch": "sg"}, {"arch": "cbow"}]
    assert w2v.EXPERIMENT.points(w2v.Config(arch="sg")) == [{}]
    table = w2v.noise_table(np.array([100, 10, 1]))
    share = np.bincount(table, minlength=3) / len(table)
    np.testing.assert_allclose(share, np.array([100, 10, 1]) ** 0.75 / (np.array([100, 10, 1]) ** 0.75).sum(), atol=1e-5)


def test_default_corpus_without_gensim(monkeypatch):
    monkeypatch.setattr(w2v, "gensim_test_file", lambda name: None)
    path, lang = w2v.resolve_corpus("")
    assert path.name == "sample_corpus.tsv" and lang == "en" and w2v.corpus_stem("") == "sample-en"
    sentences = w2v.read_sentences("")
    assert len(sentences) == 64 and sentences[0][:3] == ["the", "king", "and"]


@pytest.mark.parametrize("name, prefix", [("word2vec", "w2v-sg-"), ("cooccurrence", "cooc-glitters")])
def test_smoke_presets_through_the_runner(tmp_path, name, prefix):
    from dataclasses import asdict

    from explorer.experiments import registry
    from explorer.experiments.point import PointTask, execute

    exp = registry.get(name)
    config = apply(exp.Config(), exp.presets["smoke"])
    got = execute(PointTask(name, asdict(config), 1, 1, "single"), lambda e: None, lambda: False, 1, str(tmp_path))
    assert got.status == "finished", got
    ((vec_name, words, matrix, _),) = got.vectors
    assert vec_name.startswith(prefix) and len(words) == matrix.shape[0] and got.seconds < 60
    summary = exp.summarize(config, [(config, json.loads(json.dumps(got.summary)))])
    assert summary.text and json.dumps(summary.result)


# -- evaluation equals gensim's --------------------------------------------------------


def analogy_vectors(seed: int = 0, d: int = 30) -> tuple[list[str], np.ndarray]:
    """70% of the words of questions-words.txt in random order, some case variants and
    fillers; per section, pair words y = x + offset, so many analogies are solved."""
    rng = np.random.default_rng(seed)
    offset, vec, words = None, {}, []
    for line in open(QUESTIONS):
        if line.startswith(":"):
            offset = rng.normal(size=d) * 1.2
            continue
        a, b, c, e = line.split()
        for x, y in ((a, b), (c, e)):
            vec.setdefault(x, rng.normal(size=d))
            vec.setdefault(y, vec[x] + offset)
        words += [w for w in (a, b, c, e) if w not in words]
    chosen = [w for w in words if rng.random() < 0.7]
    variants = [w.upper() if w != w.upper() else w.lower() for w in chosen[:240:3]]
    vocab = chosen + variants + [f"filler{i}" for i in range(300)]
    vocab = [vocab[i] for i in rng.permutation(len(vocab))]
    matrix = np.array([vec[w] if w in vec and w not in variants else rng.normal(size=d) for w in vocab], np.float32)
    return vocab, matrix


@pytest.mark.parametrize("restrict, case_insensitive", [(300_000, True), (400, True), (300_000, False)])
def test_analogies_equal_gensim_per_section(restrict, case_insensitive):
    words, matrix = analogy_vectors()
    kv = KeyedVectors(matrix.shape[1])
    kv.add_vectors(words, matrix)
    score, sections = kv.evaluate_word_analogies(QUESTIONS, restrict_vocab=restrict, case_insensitive=case_insensitive)
    ours = ev.evaluate_analogies(words, matrix, QUESTIONS, restrict_vocab=restrict, case_insensitive=case_insensitive)
    assert [s["section"] for s in sections] == [s.section for s in (*ours.sections, ours.total)]
    for g, o in zip(sections, (*ours.sections, ours.total)):
        assert g["correct"] == list(o.correct_items) and g["incorrect"] == list(o.incorrect_items), g["section"]
    assert ours.total.accuracy == score and 0.3 < score < 1.0  # non-trivial
    assert ours.to_dict()["total"]["correct"] == len(sections[-1]["correct"])


def test_case_variants_first_row_wins_as_in_gensim(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text(": s\nman king woman queen\nMan King Woman Queen\nman king woman prince\n")
    e = np.eye(6, dtype=np.float32)
    # rows: QUEEN (first variant: stands for QUEEN), queen (later: only a candidate row)
    words = ["man", "king", "woman", "QUEEN", "queen", "prince", "zero"]  # a zero vector: NaN cosines, never chosen
    matrix = np.stack([e[0], e[1], e[2], e[3], e[1] - e[0] + e[2], e[1] - e[0] + e[2] + 0.1 * e[5], 0 * e[0]])
    kv = KeyedVectors(6)
    kv.add_vectors(words, matrix)
    for ci in (True, False):
        with np.errstate(all="ignore"):  # gensim divides by the zero norm
            _, sections = kv.evaluate_word_analogies(str(path), case_insensitive=ci)
        ours = ev.evaluate_analogies(words, matrix, path, case_insensitive=ci)
        assert [(len(s["correct"]), len(s["incorrect"])) for s in sections] == \
            [(s.correct, s.incorrect) for s in (*ours.sections, ours.total)]
    ours = ev.evaluate_analogies(words, matrix, path)
    # the answer row 'queen' reads QUEEN: correct for both spellings; 'prince' is second
    assert (ours.total.correct, ours.total.incorrect, ours.questions, ours.oov) == (2, 1, 3, 0)


@pytest.mark.parametrize("name", ["wordsim353.tsv", "simlex999.txt"])
def test_word_pairs_equal_gensim(name):
    rng = np.random.default_rng(1)
    words: list[str] = []
    for line in open(datapath(name)):
        if not line.startswith("#"):
            words += [w for w in line.split("\t")[:2] if w not in words]
    vocab = [w for w in words if rng.random() < 0.8]
    vocab += [w.upper() for w in vocab[:100:4]]
    matrix = rng.normal(size=(len(vocab), 16)).astype(np.float32)
    kv = KeyedVectors(16)
    kv.add_vectors(vocab, matrix)
    pearson, spearman, oov = kv.evaluate_word_pairs(datapath(name))
    ours = ev.evaluate_pairs(vocab, matrix, datapath(name))
    assert ours.pearson == pytest.approx(pearson[0], abs=1e-6)
    assert ours.spearman == pytest.approx(spearman[0], abs=1e-6)
    assert ours.oov_ratio == pytest.approx(oov, abs=1e-12) and ours.pairs + ours.oov > 300


def test_rank_correlation_with_ties_equals_scipy():
    from scipy import stats

    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 5, 60), rng.integers(0, 3, 60) + 0.5 * rng.integers(0, 2, 60)
    np.testing.assert_allclose(ev.rankdata(x), stats.rankdata(x))
    assert ev.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert ev.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)


# -- the CLI ---------------------------------------------------------------------------


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def callback(ctx: typer.Context, root: Annotated[Optional[Path], typer.Option("--root")] = None) -> None:
        ctx.obj = Globals(root=root)

    evaluate_cli.register(app)
    return app


def test_evaluate_cli_on_an_imported_set(tmp_path):
    root = tmp_path / "root"
    words, matrix = analogy_vectors(seed=3, d=12)
    import_arrays(root, "toy-vectors", words, matrix)
    pairs = tmp_path / "pairs.tsv"
    w = words[:6]
    pairs.write_text(f"# comment\n{w[0]}\t{w[1]}\t7\n{w[2]}\t{w[3]}\t8.5\n{w[4]}\t{w[5]}\t2\nfoo\tbar\t1\n{w[0]}\t{w[5]}\t1\n")
    app, runner = cli_app(), CliRunner()
    args = ["--root", str(root), "evaluate", "toy-vectors", "--analogies", QUESTIONS, "--pairs", str(pairs)]
    r = runner.invoke(app, [*args, "--json", "--restrict", "500"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    want = ev.evaluate_analogies(words, matrix, QUESTIONS, restrict_vocab=500)
    assert out["analogies"]["total"]["correct"] == want.total.correct and out["rows"] == len(words)
    assert [s["correct"] for s in out["analogies"]["sections"]] == [s.correct for s in want.sections]
    kv = KeyedVectors(12)
    kv.add_vectors(words, matrix)
    _, gensim_sections = kv.evaluate_word_analogies(QUESTIONS, restrict_vocab=500)
    assert out["analogies"]["total"]["incorrect"] == len(gensim_sections[-1]["incorrect"])
    (p,) = out["pairs"]
    assert p == ev.evaluate_pairs(words, matrix, pairs, restrict_vocab=500).to_dict()
    r = runner.invoke(app, [*args, "--restrict", "500"])
    assert r.exit_code == 0, r.output
    # table cells are truncated at narrow widths: the headings' first words and the total count
    first_words = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    assert "Analogies:" in first_words and "Word" in first_words
    assert str(out["analogies"]["total"]["correct"]) in r.stdout.replace("│", " ").split()
    r = runner.invoke(app, ["--root", str(root), "evaluate", "toy-vectors", "--pairs", str(tmp_path / "nope.tsv")])
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and "evaluation file not found" in r.output
    r = runner.invoke(app, ["--root", str(root), "evaluate", "no-such-model", "--pairs", str(pairs)])
    assert r.exit_code != 0 and r.output.startswith("error:")
