"""Compressed FAISS indexes for large hidden-state sets, with measured recall.

* ``sq8``: 8-bit scalar quantisation of the unit rows (4x smaller than float32); its
  top ``4k`` are re-ranked exactly.
* ``ivfpq``: IVF with product quantisation, one byte per 8-dim sub-vector (d/8 bytes of
  code + an 8-byte id a row: 88 bytes for d = 640, 29x less than 2,560 float32 bytes; the
  file also holds the PQ codebooks, 256 x d floats, and the nlist centroids, so on the
  4,410-token sample it is about 9.3x smaller) and sub-linear search: L2 over the unit
  rows (the same order as cosine), sqrt(n) lists, a quarter of them probed; the candidates
  it returns (``k x refine``) are re-ranked exactly against the float rows, which stay
  memory-mapped on disk, so only the compressed index lives in RAM. Defaults chosen with
  ``scripts/bench_scale.py`` (README).

Recall@10 against exact search is measured at build time with queries that are not in
the index: a seeded held-out split of the stored rows (5 %, at least 20, at most 200) is
left out of training and out of the rows searched (an ID selector; each row is encoded on
its own, so this answers exactly as an index built without them would), and the exact
answers come from the same remaining rows. The kept index then holds every row.

Built on centred rows (``states-index --center``: ``vs`` is a
:class:`explorer.query.anisotropy.CenteredRows`, each row minus the layer's stored mean),
the index holds the unit centred rows, so it ranks by the centred cosine, and
queries are centred by the caller. It is catalogued as kind ``<kind>.centered`` (file
``layer_XX.<kind>.centered.faiss``), beside the raw index of the same layer.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

from explorer.errors import ExplorerError
from explorer.query.topk import topk_dense
from explorer.store.index import Hits, faiss_module, to_gpus
from explorer.core.numeric import unit_rows
from explorer.store.vectorset import VectorSet

KINDS = ("sq8", "ivfpq")
REFINE = {"sq8": 4, "ivfpq": 32}  # re-rank k * REFINE candidates exactly against the float rows
# ivfpq: nlist = NLIST_PER_ROOT * sqrt(n) lists (at most n / 39, FAISS's training minimum),
# nprobe = NPROBE_SHARE of them (at least 32); chosen with scripts/bench_scale.py (README).
NLIST_PER_ROOT = 1.0
NPROBE_SHARE = 0.25
RECALL_QUERIES = "held-out rows"  # how recall is measured (recorded with every index)
CENTERED = ".centered"  # suffix of the catalogued kind (and file name) of an index over centred rows


def catalog_kind(kind: str, centered: bool) -> str:
    """The ``state_indexes.kind`` of an index: ``ivfpq``, or ``ivfpq.centered`` over centred rows."""
    return kind + CENTERED if centered else kind


def split_kind(stored: str) -> tuple[str, bool]:
    """(kind, centered) of a catalogued kind."""
    return (stored[: -len(CENTERED)], True) if stored.endswith(CENTERED) else (stored, False)


@dataclass(frozen=True)
class BuildReport:
    kind: str
    rows: int
    recall_at_10: float
    queries: int
    bytes: int
    seconds: float
    params: dict
    recall_queries: str = RECALL_QUERIES

    def to_dict(self) -> dict:
        return asdict(self)


@contextmanager
def _quiet_stderr(active: bool):
    """Silence C++ writes to fd 2 (FAISS's k-means warnings) for a moment."""
    if not active:
        yield
        return
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _unit_chunks(vs: VectorSet, chunk: int = 65536):
    for i in range(0, vs.n_rows, chunk):  # rows(), not the matrix: centred rows (CenteredRows) subtract their mean
        yield np.ascontiguousarray(unit_rows(vs.rows(np.arange(i, min(i + chunk, vs.n_rows)))), dtype=np.float32)


def held_out_rows(n: int, seed: int = 1) -> np.ndarray:
    """The rows recall is measured with (sorted): 5 % of ``n``, at least 20 and at most
    200, and never more than a quarter of the rows."""
    if n < 2:
        raise ExplorerError(f"{n} stored row(s): a compressed index needs at least 2 (one to hold out for recall)")
    q = min(200, max(20, n // 20), max(1, n // 4))
    return np.sort(np.random.default_rng(seed).choice(n, size=q, replace=False))


def build(vs: VectorSet, kind: str, seed: int = 0, exclude: np.ndarray | None = None):
    """Train a compressed index on a sample of the unit rows not in ``exclude`` and fill
    it with every row (ids = row numbers); return (index, params)."""
    faiss = faiss_module()
    d, n = vs.dim, vs.n_rows
    keep = np.arange(n) if exclude is None else np.setdiff1d(np.arange(n), exclude)
    rng = np.random.default_rng(seed)
    train = unit_rows(vs.rows(np.sort(rng.choice(keep, size=min(len(keep), 100_000), replace=False))))
    if kind == "sq8":
        index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        params = {"quantizer": "QT_8bit", "refine": REFINE[kind]}
    elif kind == "ivfpq":
        nlist = int(max(1, min(NLIST_PER_ROOT * math.sqrt(n), n // 39)))
        m = next(x for x in (d // 8, d // 4, d // 2, d, 1) if x >= 1 and d % x == 0)  # 8-dim sub-vectors
        nbits = 8 if n >= 256 else 4  # 4 bits lose too much; FAISS warns below 9,984 rows
        if len(train) < 2**nbits:
            raise ExplorerError(f"{n} stored rows: an ivfpq index needs at least {2**nbits} to train on; use --kind sq8")
        # L2 on unit rows ranks as cosine does; with inner product (centroids of unequal norm)
        # recall at 100k states was 0.84 and rose only with a much deeper re-rank (bench_scale.py).
        index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, nlist, m, nbits, faiss.METRIC_L2)
        index.nprobe = max(1, min(nlist, max(32, int(nlist * NPROBE_SHARE))))
        params = {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": index.nprobe, "refine": REFINE[kind], "metric": "L2"}
    else:
        raise ExplorerError(f"unknown index kind {kind!r}; choose {', '.join(KINDS)}")
    with _quiet_stderr(n < 256 * 39):  # FAISS prints one warning per sub-quantiser on small sets
        index.train(train)
    for block in _unit_chunks(vs):
        index.add(block)
    return index, params


def _selector(faiss, allowed: np.ndarray):
    """An ID selector for the allowed rows, listing whichever side is shorter: (selector,
    the inner selector it wraps, which must stay alive while it is used, or None)."""
    if allowed.sum() * 2 <= allowed.size:
        inner = faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
        return inner, None
    inner = faiss.IDSelectorBatch(np.flatnonzero(~allowed).astype(np.int64))
    return faiss.IDSelectorNot(inner), inner


def search_compressed(index, kind: str, vs: VectorSet, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
                      refine: int | None = None) -> Hits:
    """Top-k by exact cosine among the index's ``k x refine`` (default :data:`REFINE`) candidates."""
    faiss = faiss_module()
    q = np.ascontiguousarray(unit_rows(np.atleast_2d(queries)), dtype=np.float32)
    fetch = min(k * (refine or REFINE[kind]), vs.n_rows)
    if allowed is not None:
        sel, _keep = _selector(faiss, allowed)
        params = faiss.SearchParametersIVF(sel=sel, nprobe=index.nprobe) if kind == "ivfpq" else faiss.SearchParameters(sel=sel)
        _, ids = index.search(q, fetch, params=params)
    else:
        _, ids = index.search(q, fetch)
    out_s, out_i = [], []
    for r in range(len(q)):  # exact re-ranking against the on-disk float rows
        cand = ids[r][ids[r] >= 0]
        exact = (vs.rows(cand) @ q[r]) / vs.safe_norms()[cand]
        s, i = topk_dense(exact[None, :].astype(np.float32), k)
        pad = k - s.shape[1]
        out_s.append(np.pad(s[0], (0, pad), constant_values=-np.inf))
        out_i.append(np.pad(cand[i[0]], (0, pad), constant_values=-1))
    return Hits(np.stack(out_s), np.stack(out_i))


def _exact_kth(vs: VectorSet, q: np.ndarray, allowed: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
    """The exact k-th best cosine of each query over the allowed rows, a block of rows at a time."""
    best = np.full((len(q), 0), -np.inf, dtype=np.float32)
    for i in range(0, vs.n_rows, chunk):
        scores = vs.cosines(q, slice(i, i + chunk)).T.astype(np.float32)  # (nq, rows)
        scores[:, ~allowed[i : i + chunk]] = -np.inf
        best = topk_dense(np.concatenate([best, scores], axis=1), k)[0]
    return best[:, k - 1]


def measure_recall(index, kind: str, vs: VectorSet, held_out: np.ndarray, k: int = 10) -> float:
    """Recall@k against exact search, with the ``held_out`` rows as queries and every
    other row as the searched set (the index is asked through an ID selector that leaves
    the held-out rows out; they should also have been left out of its training).

    Tie-aware: an answer counts when its exact cosine reaches the exact k-th best (to
    1e-6). Hidden states hold many exact duplicates (every BOS, every repeat of a token
    at layer 0), and which of several tied rows an index returns is not an error.
    """
    allowed = np.ones(vs.n_rows, dtype=bool)
    allowed[held_out] = False
    q = vs.rows(held_out)
    kk = min(k, int(allowed.sum()))
    approx = search_compressed(index, kind, vs, q, kk, allowed)  # scores are exact cosines (re-ranked)
    kth = _exact_kth(vs, q, allowed, kk)
    found = (approx.scores[:, :kk] >= (kth[:, None] - 1e-6)) & (approx.ids[:, :kk] >= 0)
    return float(found.sum(axis=1).mean() / kk)


def build_and_measure(vs: VectorSet, kind: str, path, seed: int = 0) -> BuildReport:
    """Build an index over every row (trained without the held-out rows), measure its
    recall@10 on the held-out rows, and write it to ``path``."""
    from explorer.store.files import atomic_path

    faiss = faiss_module()
    held = held_out_rows(vs.n_rows)
    t0 = time.perf_counter()
    index, params = build(vs, kind, seed, exclude=held)
    seconds = time.perf_counter() - t0
    recall = measure_recall(index, kind, vs, held)
    params = {**params, "recall_queries": RECALL_QUERIES, "held_out": len(held)}
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    return BuildReport(kind, vs.n_rows, recall, len(held), path.stat().st_size, seconds, params)


def load_compressed(path, kind: str):
    from explorer.store.index import read_index

    index = read_index(path)
    if kind == "ivfpq":
        nprobe = index.nprobe
        index = to_gpus(index)
        try:
            index.nprobe = nprobe
        except Exception:
            pass
    else:
        index = to_gpus(index)
    return index
