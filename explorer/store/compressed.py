"""Compressed FAISS indexes for large hidden-state sets, with measured recall.

* ``sq8``: 8-bit scalar quantisation of the unit rows (4x smaller than float32); its
  top ``4k`` are re-ranked exactly.
* ``ivfpq``: IVF with product quantisation (~16x smaller and sub-linear search); the
  candidates it returns (``k x refine``) are re-ranked exactly against the float rows,
  which stay memory-mapped on disk, so only the compressed index lives in RAM.

Recall@10 against exact search is measured on a sample of stored rows at build time
and recorded in the catalog.
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


@dataclass(frozen=True)
class BuildReport:
    kind: str
    rows: int
    recall_at_10: float
    queries: int
    bytes: int
    seconds: float
    params: dict

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
    for i in range(0, vs.n_rows, chunk):
        yield np.ascontiguousarray(unit_rows(vs.vectors[i : i + chunk]), dtype=np.float32)


def build(vs: VectorSet, kind: str, seed: int = 0):
    """Train and fill a compressed index over the unit rows; return (index, params)."""
    faiss = faiss_module()
    d, n = vs.dim, vs.n_rows
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, 100_000), replace=False))
    train = unit_rows(vs.rows(sample))
    if kind == "sq8":
        index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        params = {"quantizer": "QT_8bit", "refine": REFINE[kind]}
    elif kind == "ivfpq":
        nlist = int(max(1, min(4 * math.sqrt(n), n // 39)))
        m = next(x for x in (d // 8, d // 4, d // 2, d, 1) if x >= 1 and d % x == 0)  # 8-dim sub-vectors
        nbits = 8 if n >= 256 else 4  # 4 bits lose too much; FAISS warns below 9,984 rows
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = max(1, min(nlist, max(16, nlist // 4)))
        params = {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": index.nprobe, "refine": REFINE[kind]}
    else:
        raise ExplorerError(f"unknown index kind {kind!r}; choose {', '.join(KINDS)}")
    with _quiet_stderr(n < 256 * 39):  # FAISS prints one warning per sub-quantiser on small sets
        index.train(train)
    for block in _unit_chunks(vs):
        index.add(block)
    return index, params


def search_compressed(index, kind: str, vs: VectorSet, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits:
    faiss = faiss_module()
    q = np.ascontiguousarray(unit_rows(np.atleast_2d(queries)), dtype=np.float32)
    fetch = min(k * REFINE[kind], vs.n_rows)
    if allowed is not None:
        sel = faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
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


def measure_recall(index, kind: str, vs: VectorSet, queries: int = 200, k: int = 10, seed: int = 1) -> tuple[float, int]:
    """Recall@k against exact search, over stored rows used as queries.

    Tie-aware: an answer counts when its exact cosine reaches the exact k-th best (to
    1e-6). Hidden states hold many exact duplicates (every BOS, every repeat of a token
    at layer 0), and which of several tied rows an index returns is not an error.
    """
    rng = np.random.default_rng(seed)
    n = min(queries, vs.n_rows)
    ids = rng.choice(vs.n_rows, size=n, replace=False)
    q = vs.rows(ids)
    approx = search_compressed(index, kind, vs, q, k)  # scores are exact cosines (re-ranked)
    exact_scores = topk_dense(vs.cosines(q).T.astype(np.float32), k)[0]
    kk = min(k, vs.n_rows)
    kth = exact_scores[:, kk - 1]
    found = (approx.scores[:, :kk] >= (kth[:, None] - 1e-6)) & (approx.ids[:, :kk] >= 0)
    return float(found.sum(axis=1).mean() / kk), n


def build_and_measure(vs: VectorSet, kind: str, path, seed: int = 0) -> BuildReport:
    from explorer.store.files import atomic_path

    faiss = faiss_module()
    t0 = time.perf_counter()
    index, params = build(vs, kind, seed)
    seconds = time.perf_counter() - t0
    recall, nq = measure_recall(index, kind, vs)
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    return BuildReport(kind, vs.n_rows, recall, nq, path.stat().st_size, seconds, params)


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
