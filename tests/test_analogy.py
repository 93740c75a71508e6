"""Analogy arithmetic on a hand-built vector set with known answers, and against gensim."""

import json

import numpy as np
import pytest

from explorer.query.analogy import run_query
from explorer.query.vocab import Resolved
from explorer.store.vectorset import VectorSet

# dims: royalty, gender, person-ness, fruit.  woman - man + king == queen exactly, all four
# people have the same norm (sqrt 6), so the unit-vector arithmetic is exact too.
WORDS = ["man", "woman", "king", "queen", "apple", "banana"]
TOY = np.array(
    [
        [-1, 2, 1, 0],  # man
        [-1, -2, 1, 0],  # woman
        [1, 2, 1, 0],  # king
        [1, -2, 1, 0],  # queen
        [0, 0, -1, 1],  # apple
        [0, 0, -1, 0.5],  # banana
    ],
    dtype=np.float32,
)
MAN, WOMAN, KING, QUEEN, APPLE, BANANA = range(6)
ANALOGY = (1, 0, 2)  # positions of a=man, b=woman, c=king in the terms below


def res(i):
    return Resolved(WORDS[i], (i,), (WORDS[i],), "initial")


def analogy_terms():
    return [(res(WOMAN), 1.0), (res(MAN), -1.0), (res(KING), 1.0)]


def open_set(tmp_path, matrix):
    VectorSet.write(tmp_path, matrix)
    return VectorSet.open(tmp_path)


@pytest.fixture
def toy(tmp_path):
    return open_set(tmp_path, TOY)


def unit(m):
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def ref_cosadd(m, pos, neg):
    q = unit(m[pos]).sum(0) - unit(m[neg]).sum(0)
    return unit(m.astype(np.float64)) @ unit(q.astype(np.float64))


def ref_cosmul(m, weighted):
    u = unit(m.astype(np.float64))
    num, den = np.ones(len(m)), np.ones(len(m))
    for i, w in weighted:
        s = (1 + u @ u[i]) / 2
        num, den = (num * s**w, den) if w > 0 else (num, den * s ** (-w))
    return num / (den + 1e-6)


def ranking(result):
    return [h.token_id for h in result.results]


def test_3cosadd_top1_is_queen_with_inputs_excluded(toy):
    r = run_query(toy, analogy_terms(), k=10)
    assert ranking(r) == [QUEEN, APPLE, BANANA]
    assert [h.rank for h in r.results] == [1, 2, 3]
    assert r.results[0].score == pytest.approx(1.0, abs=1e-6)
    assert r.results[0].token == str(QUEEN)  # no labeller: the id as text
    # scores: cos(queen, x) = 4/6 for woman, -1/sqrt(12) apple, -1/3 king, -1/sqrt(7.5) banana
    assert [h.score for h in r.results[1:]] == pytest.approx([-1 / 12**0.5, -1 / 7.5**0.5], abs=1e-6)
    assert {i.word: i.rank_if_kept for i in r.inputs} == {"woman": 2, "man": 6, "king": 4}
    assert {i.word: i.score for i in r.inputs} == pytest.approx({"woman": 2 / 3, "man": -2 / 3, "king": -1 / 3}, abs=1e-6)


def test_keep_inputs_ranks_reflect_inputs(toy):
    r = run_query(toy, analogy_terms(), k=4, keep_inputs=True)
    assert ranking(r) == [QUEEN, WOMAN, APPLE, KING]
    assert {i.word: i.rank_if_kept for i in r.inputs} == {"woman": 2, "man": 6, "king": 4}
    assert r.keep_inputs


def test_expected_ranks_differ(toy):
    # apple: 3rd with inputs kept, 2nd without (woman above it), 1st among king's own neighbours
    # once the inputs are excluded (king's neighbours: king, man, apple, queen, banana, woman).
    r = run_query(toy, analogy_terms(), expected=res(APPLE), analogy=ANALOGY)
    e = r.expected
    assert (e.token_id, e.rank_kept, e.rank_excluded, e.baseline_rank) == (APPLE, 3, 2, 1)
    assert e.score == pytest.approx(-1 / 12**0.5, abs=1e-6)
    r = run_query(toy, analogy_terms(), expected=res(QUEEN), analogy=ANALOGY)
    assert (r.expected.rank_kept, r.expected.rank_excluded, r.expected.baseline_rank) == (1, 1, 2)
    r = run_query(toy, analogy_terms(), expected=res(KING), analogy=ANALOGY)
    assert (r.expected.rank_kept, r.expected.rank_excluded) == (4, None)


@pytest.mark.parametrize("d", [QUEEN, APPLE, BANANA])
def test_diagnostics_match_numpy(toy, d):
    a, b, c, dv = (TOY[i].astype(np.float64) for i in (MAN, WOMAN, KING, d))

    def cos(u, v):
        return u @ v / np.linalg.norm(u) / np.linalg.norm(v)

    diag = run_query(toy, analogy_terms(), expected=res(d), analogy=ANALOGY).diagnostics
    assert diag["offset_cosine"] == pytest.approx(cos(b - a, dv - c), abs=1e-6)
    assert diag["reverse_cosine"] == pytest.approx(cos(a, b - dv + c), abs=1e-6)
    assert diag["cos_a_b"] == pytest.approx(cos(a, b), abs=1e-6)
    assert diag["cos_c_d"] == pytest.approx(cos(c, dv), abs=1e-6)
    if d == QUEEN:
        assert diag["offset_cosine"] == pytest.approx(1.0) and diag["reverse_cosine"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "weighted", [[(WOMAN, 1.0), (MAN, -1.0), (KING, 1.0)], [(KING, 0.5), (WOMAN, 2.0), (APPLE, -1.5)]]
)
def test_3cosmul_matches_formula(toy, weighted):
    r = run_query(toy, [(res(i), w) for i, w in weighted], method="3cosmul", keep_inputs=True, k=6)
    ref = ref_cosmul(TOY, weighted)
    assert ranking(r) == list(np.argsort(-ref, kind="stable"))
    assert [h.score for h in r.results] == pytest.approx(ref[ranking(r)], rel=1e-5)
    assert ranking(run_query(toy, [(res(i), w) for i, w in weighted], method="3cosmul"))[0] == QUEEN


def test_allowed_mask_filters_results_and_ranks(toy):
    allowed = np.ones(6, dtype=bool)
    allowed[QUEEN] = False
    r = run_query(toy, analogy_terms(), allowed=allowed, expected=res(APPLE), analogy=ANALOGY)
    assert ranking(r) == [APPLE, BANANA]
    assert (r.expected.rank_kept, r.expected.rank_excluded) == (2, 1)
    r = run_query(toy, analogy_terms(), allowed=allowed, keep_inputs=True)
    assert QUEEN not in ranking(r) and ranking(r)[:2] == [WOMAN, APPLE]


def test_averaged_input_is_not_excluded(toy):
    fruit = Resolved("fruit", (APPLE, BANANA), ("apple", "banana"), "pieces", notice="averaged")
    r = run_query(toy, [(fruit, 1.0)], k=2)
    assert ranking(r) == [APPLE, BANANA]  # the mean lies between them, nearer apple
    assert r.inputs[0].token_id is None and r.inputs[0].rank_if_kept is None
    assert r.notices == ("averaged",)


def test_averaged_expected_word_is_scored_directly(toy):
    # an expected word over two tokens has no row: its score is the cosine of its mean vector
    # to the query (3CosAdd), its rank that score's place among the rows; 3CosMul has no score
    fruit = Resolved("fruit", (APPLE, BANANA), ("apple", "banana"), "pieces", notice="averaged")
    r = run_query(toy, analogy_terms(), expected=fruit, analogy=ANALOGY)
    q = unit(TOY[[WOMAN, KING]].astype(np.float64)).sum(0) - unit(TOY[MAN].astype(np.float64))
    want = float(unit(TOY[[APPLE, BANANA]].mean(0).astype(np.float64)) @ unit(q))
    e = r.expected
    assert (e.token_id, e.rank_excluded, e.baseline_rank) == (None, None, None)
    assert e.score == pytest.approx(want, abs=1e-6)
    assert e.rank_kept == 1 + int(np.sum(ref_cosadd(TOY, [WOMAN, KING], [MAN]) > e.score + 1e-9))
    r = run_query(toy, analogy_terms(), method="3cosmul", expected=fruit, analogy=ANALOGY)
    assert np.isnan(r.expected.score) and r.expected.token_id is None


def test_to_dict_shapes(toy):
    d = run_query(toy, analogy_terms(), k=2, expected=res(QUEEN), analogy=ANALOGY, expression="e").to_dict()
    assert {"results", "inputs", "diagnostics", "expected"} <= d.keys()
    assert d["results"] == [
        {"token": str(QUEEN), "token_id": QUEEN, "score": pytest.approx(1.0, abs=1e-6), "rank": 1},
        {"token": str(APPLE), "token_id": APPLE, "score": pytest.approx(-1 / 12**0.5, abs=1e-6), "rank": 2},
    ]
    assert [i["word"] for i in d["inputs"]] == ["woman", "man", "king"]
    assert set(d["inputs"][0]) == {"word", "token", "token_id", "token_ids", "weight", "rank_if_kept", "score", "variant"}
    assert d["inputs"][1]["token_ids"] == [MAN] and d["inputs"][1]["weight"] == -1.0
    assert all(isinstance(v, float) for v in d["diagnostics"].values())
    assert {"offset_cosine", "reverse_cosine"} <= d["diagnostics"].keys()
    assert d["expected"] == {
        "word": "queen", "token": "queen", "token_id": QUEEN, "score": pytest.approx(1.0, abs=1e-6),
        "rank_excluded": 1, "rank_kept": 1, "baseline_rank": 2,
    }
    json.dumps(d)  # serialisable as is
    assert run_query(toy, analogy_terms()).to_dict()["expected"] is None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's own init_sims call
def test_equivalent_to_gensim(tmp_path):
    gensim = pytest.importorskip("gensim")
    rng = np.random.default_rng(7)
    n, dim = 2000, 50
    m = rng.standard_normal((n, dim)).astype(np.float32)
    m[[3, 10, 500]] *= np.float32(100.0)
    m[[4, 11, 900]] *= np.float32(0.01)
    m[23] = m[21] - m[20] + m[22]  # one planted analogy: w20 : w21 :: w22 : w23
    vs = open_set(tmp_path, m)
    kv = gensim.models.KeyedVectors(dim)
    kv.add_vectors([f"w{i}" for i in range(n)], m)

    triples = [(20, 21, 22), (3, 4, 500), (11, 10, 900)] + [tuple(rng.choice(n, 3, replace=False)) for _ in range(17)]
    for a, b, c in triples:
        terms = [(Resolved(f"w{i}", (int(i),), (f"w{i}",), "initial"), w) for i, w in ((b, 1.0), (a, -1.0), (c, 1.0))]
        for method, fn in (("3cosadd", kv.most_similar), ("3cosmul", kv.most_similar_cosmul)):
            ours = run_query(vs, terms, method=method, k=10)
            theirs = fn(positive=[f"w{b}", f"w{c}"], negative=[f"w{a}"], topn=10)
            assert [f"w{h.token_id}" for h in ours.results] == [key for key, _ in theirs], (method, a, b, c)
            assert [h.score for h in ours.results] == pytest.approx([s for _, s in theirs], abs=1e-5)
            if (a, b, c) == (20, 21, 22):
                assert ours.results[0].token_id == 23
