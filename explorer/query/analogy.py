"""Vector arithmetic over a vector set: 3CosAdd, 3CosMul, ranks and diagnostics.

Definitions (as in gensim, so answers can be checked against it):

* 3CosAdd: q = sum_i w_i * unit(E(word_i)); score(t) = cos(E(t), q).
* 3CosMul (Levy & Goldberg 2014): s_i(t) = (1 + cos(E(t), E(word_i))) / 2;
  score(t) = prod_{w_i>0} s_i^w_i / (prod_{w_i<0} s_i^|w_i| + 1e-6).

Input words are excluded from the answers by default (as gensim does) and kept with
``keep_inputs``; either way each input's rank "if kept" is reported, so the effect of the
exclusion is visible. For ``b - a + c`` with an expected ``d`` the diagnostics include the
offset parallelism cos(E(b)-E(a), E(d)-E(c)) and the reverse cosine
cos(E(a), E(b)-E(d)+E(c)), on the raw (un-normalised) rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from explorer.errors import ExplorerError
from explorer.query.topk import topk_dense
from explorer.query.vocab import Resolved

METHODS = ("3cosadd", "3cosmul")
COSMUL_EPS = 1e-6


class Vectors(Protocol):
    n_rows: int

    def rows(self, ids: Sequence[int]) -> np.ndarray: ...

    def cosines(self, queries: np.ndarray) -> np.ndarray: ...


# What each diagnostic measures (for ``b - a + c`` with the expected word d), as front ends explain it.
DIAGNOSTICS = {
    "offset_cosine": "cos(E(b)-E(a), E(d)-E(c)): are the two offsets parallel?",
    "reverse_cosine": "cos(E(a), E(b)-E(d)+E(c))",
    "offset_cosine_unit": "offset cosine on unit-normalised vectors",
    "offset_cosine_top1": "cos(E(b)-E(a), E(top1)-E(c)) for the answer found",
    "offset_norm_ratio": "|E(b)-E(a)| / |E(d)-E(c)|",
    "cos_a_b": "cos(E(a), E(b))",
    "cos_c_d": "cos(E(c), E(d))",
}


@dataclass(frozen=True)
class Hit:
    token: str
    token_id: int
    score: float
    rank: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InputInfo:
    word: str
    token: str
    token_id: int | None  # None for a word averaged over several tokens
    token_ids: tuple[int, ...]
    weight: float
    rank_if_kept: int | None
    score: float
    variant: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["token_ids"] = list(self.token_ids)
        return d


@dataclass(frozen=True)
class Expected:
    word: str
    token: str
    token_id: int | None
    score: float
    rank_excluded: int | None  # None when the expected word is itself an input
    rank_kept: int
    baseline_rank: int | None  # rank among neighbours of the last term alone (inputs excluded)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class QueryResult:
    expression: str
    method: str
    keep_inputs: bool
    vector_set: str
    results: tuple[Hit, ...]
    inputs: tuple[InputInfo, ...]
    diagnostics: dict[str, float] = field(default_factory=dict)
    expected: Expected | None = None
    notices: tuple[str, ...] = ()
    resolutions: tuple[Resolved, ...] = ()
    centering: dict | None = None  # over hidden states: {"centered": bool, "mean_of": ...}; None for vocabulary sets

    def to_dict(self) -> dict:
        return {
            "expression": self.expression,
            "vector_set": self.vector_set,
            **(self.centering or {}),
            "method": self.method,
            "keep_inputs": self.keep_inputs,
            "results": [h.to_dict() for h in self.results],
            "inputs": [i.to_dict() for i in self.inputs],
            "diagnostics": dict(self.diagnostics),
            "expected": self.expected.to_dict() if self.expected else None,
            "notices": list(self.notices),
            "resolutions": [r.to_dict() for r in self.resolutions],
        }


def cos(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu == 0 or nv == 0:
        return float("nan")
    return float(np.dot(u, v) / (nu * nv))


def word_vector(vs: Vectors, r: Resolved) -> np.ndarray:
    return vs.rows(list(r.token_ids)).mean(axis=0).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n else v


def run_query(
    vs: Vectors,
    terms: Sequence[tuple[Resolved, float]],
    *,
    method: str = "3cosadd",
    k: int = 10,
    keep_inputs: bool = False,
    expected: Resolved | None = None,
    analogy: tuple[int, int, int] | None = None,
    allowed: np.ndarray | None = None,
    label: Callable[[Sequence[int]], dict[int, str]] | None = None,
    index: Any = None,
    expression: str = "",
    vector_set: str = "",
) -> QueryResult:
    """Score every row for the weighted terms; ``analogy`` gives the term positions (a, b, c).

    Ranks and diagnostics always come from one exact dense pass. The top-k answers of
    3CosAdd come from ``index`` (an ``explorer.store.index.SearchIndex``) when it chooses
    FAISS for this query (``--backend faiss``, or a GPU); over-fetching by the number of
    excluded inputs keeps exclusion exact there too. 3CosMul is always dense.
    """
    if method not in METHODS:
        raise ExplorerError(f"unknown method {method!r}; choose 3cosadd or 3cosmul")
    if not terms:
        raise ExplorerError("a query needs at least one word")
    vecs = [word_vector(vs, r) for r, _ in terms]
    weights = np.array([w for _, w in terms], dtype=np.float64)
    units = np.stack([_unit(v) for v in vecs])
    sc = _score(vs, units, weights, method, baseline=analogy[2] if expected is not None and analogy else None)
    full = sc.scores  # unfiltered: an input or expected word outside the filter keeps its score
    scores = full if allowed is None else np.where(allowed, full, -np.inf)

    input_ids = sorted({r.token_ids[0] for r, _ in terms if r.single})
    excluded = np.array([] if keep_inputs else input_ids, dtype=np.int64)
    if method == "3cosadd" and index is not None and index.choose(1, allowed is not None) == "faiss":
        top_ids, top_scores = _index_top(index, sc.query, k, excluded, allowed)
    else:
        top_ids = _top(scores, k, excluded)
        top_scores = scores[top_ids]
    labels = label(list(top_ids) + [i for r, _ in terms for i in r.token_ids]) if label else {}
    results = tuple(
        Hit(labels.get(int(i), str(int(i))), int(i), float(v), n + 1) for n, (i, v) in enumerate(zip(top_ids, top_scores))
    )
    inputs = tuple(_input_info(r, w, scores, full) for r, w in terms)
    exp, d_vec = None, None
    if expected is not None:
        d_vec = word_vector(vs, expected)
        exp = _expected(expected, d_vec, sc, scores, full, input_ids, allowed)
    diagnostics = _diagnostics(vs, vecs, analogy, top_ids, d_vec) if analogy is not None else {}
    notices = tuple(r.notice for r, _ in terms if r.notice) + ((expected.notice,) if expected and expected.notice else ())
    resolutions = tuple(r for r, _ in terms) + ((expected,) if expected else ())
    return QueryResult(
        expression, method, keep_inputs, vector_set, results, inputs, diagnostics, exp, notices, resolutions
    )


@dataclass(frozen=True)
class _Scores:
    scores: np.ndarray  # one per row, unfiltered
    query: np.ndarray | None  # the 3CosAdd query vector (None for 3CosMul)
    baseline: np.ndarray | None  # cosines to the last analogy term alone (for the baseline rank)


def _score(vs: Vectors, units: np.ndarray, weights: np.ndarray, method: str, baseline: int | None) -> _Scores:
    """Every row's score in one dense pass; ``baseline`` is the position of the term c."""
    if method == "3cosadd":
        q = (weights[:, None] * units).sum(axis=0)
        if not np.any(q):
            raise ExplorerError("the expression sums to the zero vector; nothing to rank against")
        cols = [q] if baseline is None else [q, units[baseline]]
        sims = vs.cosines(np.stack(cols).astype(np.float32))
        return _Scores(sims[:, 0], q, None if baseline is None else sims[:, 1])
    sims = vs.cosines(units.astype(np.float32))
    s = sims.T.astype(np.float64)  # one contiguous row per term
    s += 1.0
    s /= 2.0
    num = _product(s, weights, 1)
    scores = num / (_product(s, weights, -1) + COSMUL_EPS) if np.any(weights < 0) else num
    return _Scores(scores, None, None if baseline is None else sims[:, baseline])


def _product(s: np.ndarray, weights: np.ndarray, sign: int) -> np.ndarray:
    """prod_i s_i ** |w_i| over the terms whose weight has ``sign`` (1 for none)."""
    out = None
    for row, w in zip(s, weights):
        if np.sign(w) != sign:
            continue
        term = row if abs(w) == 1 else row ** abs(w)
        out = term.copy() if out is None else np.multiply(out, term, out=out)
    return np.ones(s.shape[1]) if out is None else out


def _index_top(index: Any, q: np.ndarray, k: int, excluded: np.ndarray, allowed: np.ndarray | None):
    """The top k from the index, over-fetched by the excluded inputs and then skipping them."""
    hits = index.search(q[None, :].astype(np.float32), k + len(excluded), allowed)
    skip = set(excluded.tolist())
    keep = [(int(i), float(v)) for i, v in zip(hits.ids[0], hits.scores[0]) if i >= 0 and int(i) not in skip][:k]
    return np.array([i for i, _ in keep], dtype=np.int64), np.array([v for _, v in keep])


def _input_info(r: Resolved, weight: float, scores: np.ndarray, full: np.ndarray) -> InputInfo:
    if not r.single:
        return InputInfo(r.word, r.token, None, r.token_ids, float(weight), None, float("nan"), r.variant)
    tid = r.token_ids[0]
    return InputInfo(r.word, r.token, tid, r.token_ids, float(weight), _rank_of_score(scores, full[tid]),
                     float(full[tid]), r.variant)


def _expected(
    expected: Resolved, d_vec: np.ndarray, sc: _Scores, scores: np.ndarray, full: np.ndarray, input_ids: list[int],
    allowed: np.ndarray | None,
) -> Expected:
    """The expected word's score, its ranks with inputs kept and excluded, and the baseline rank."""
    if not expected.single:  # averaged over several tokens: scored directly, it has no row to exclude
        d_score = float(np.dot(_unit(d_vec), _unit(sc.query))) if sc.query is not None else float("nan")
        return Expected(expected.word, expected.token, None, d_score, None, _rank_of_score(scores, d_score), None)
    did = expected.token_ids[0]
    d_score = float(full[did])
    rank_kept = _rank_of_score(scores, d_score)
    rank_excl = None if did in input_ids else rank_kept - int(np.sum(scores[input_ids] > d_score))
    base = None
    if sc.baseline is not None:
        bs_full = sc.baseline.astype(np.float64)
        bs = bs_full if allowed is None else np.where(allowed, bs_full, -np.inf)
        base = _rank_of_score(bs, bs_full[did]) - int(np.sum(bs[input_ids] > bs_full[did]))
    return Expected(expected.word, expected.token, did, d_score, rank_excl, rank_kept, base)


def _diagnostics(
    vs: Vectors, vecs: list[np.ndarray], analogy: tuple[int, int, int], top_ids: np.ndarray, d_vec: np.ndarray | None
) -> dict[str, float]:
    """The geometry of ``b - a + c`` on raw rows (see DIAGNOSTICS); the d-terms need the expected word."""
    a, b, c = (vecs[i] for i in analogy)
    out = {"cos_a_b": cos(a, b)}
    if len(top_ids):
        out["offset_cosine_top1"] = cos(b - a, vs.rows([int(top_ids[0])])[0] - c)
    if d_vec is not None:
        out["offset_cosine"] = cos(b - a, d_vec - c)
        out["reverse_cosine"] = cos(a, b - d_vec + c)
        ua, ub, uc, ud = (_unit(x) for x in (a, b, c, d_vec))
        out["offset_cosine_unit"] = cos(ub - ua, ud - uc)
        out["cos_c_d"] = cos(c, d_vec)
        out["offset_norm_ratio"] = float(np.linalg.norm(b - a) / max(np.linalg.norm(d_vec - c), 1e-30))
    return out


def _rank_of_score(scores: np.ndarray, value: float) -> int:
    """1 + the number of rows scoring strictly higher than ``value`` (ties go to the word)."""
    return 1 + int(np.count_nonzero(scores > value))


def _top(scores: np.ndarray, k: int, excluded: np.ndarray) -> np.ndarray:
    """Ids of the k best finite scores, best first (ties by lower id), skipping ``excluded``."""
    want = min(k + len(excluded), len(scores))
    if want <= 0:
        return np.array([], dtype=np.int64)
    order = topk_dense(scores[None, :], want)[1][0]
    if len(excluded):
        order = order[~np.isin(order, excluded)]
    order = order[np.isfinite(scores[order])]
    return order[:k]
