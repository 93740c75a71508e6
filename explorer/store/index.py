"""Top-k search over a vector set: FAISS (GPU when present) and a blocked numpy path.

``(D, I)`` stay inside this module: callers get :class:`Hits`. Exactly what a query
means (which ids to exclude, how to score) is decided above, in ``explorer.query``; the
index answers "the k highest inner products of unit vectors", optionally over allowed
ids only.

Backend choice is measured, not assumed (``scripts/bench_query.py``): on 2 CPU cores
over Gemma's 262,144 x 640 matrix the blocked numpy path below beats FAISS
IndexFlatIP until FAISS switches to BLAS (n_queries * d >= 128,000: 200 queries at
d=640), and FAISS wins above. With a GPU, FAISS serves every batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.errors import CorruptFile
from explorer.query.topk import topk_dense
from explorer.store.files import atomic_path
from explorer.core.numeric import unit_rows
from explorer.store.vectorset import VectorSet

# FAISS IndexFlat takes its BLAS path only when n_queries * d >= 128,000 (200 queries at
# d=640; below that it searches query by query and loses to numpy 2-5x), measured by
# scripts/bench_query.py on 2 cores.
FAISS_BLAS_WORK = 128_000
_QUERY_CHUNK = 256
# Scores held at once by the numpy path: n_rows x queries per block at most this many
# floats (256 MB; 256 queries over Gemma's 262,144-row vocabulary), so a million rows
# are scored 64 queries at a time instead of holding n_rows x 256.
_SCORE_BUDGET = 256 * 262_144
_BUILD_CHUNK = 65536
INDEX_KIND = "IndexFlatIP"


@dataclass(frozen=True)
class Hits:
    """Top-k per query, best first: ``scores[q, j]`` belongs to row ``ids[q, j]``."""

    scores: np.ndarray  # (nq, k) float32
    ids: np.ndarray  # (nq, k) int64


def faiss_module():
    import faiss  # imported lazily: ~0.2 s, needed only for batches and builds

    return faiss


def gpu_count() -> int:
    """GPUs FAISS can use; no NVIDIA device node means none, without importing faiss."""
    import glob
    import os

    if not glob.glob("/dev/nvidia[0-9]*") and not os.environ.get("EXPLORER_ASSUME_GPU"):
        return 0
    try:
        return int(faiss_module().get_num_gpus())
    except Exception:  # a faiss build without GPU symbols
        return 0


def build_index(vs: VectorSet, path: Path, progress=None) -> None:
    """Write an IndexFlatIP over the L2-normalised rows of ``vs`` atomically."""
    faiss = faiss_module()
    index = faiss.IndexFlatIP(vs.dim)
    for start in range(0, vs.n_rows, _BUILD_CHUNK):
        block = unit_rows(vs.vectors[start : start + _BUILD_CHUNK])
        index.add(np.ascontiguousarray(block, dtype=np.float32))
        if progress is not None:
            progress(min(start + _BUILD_CHUNK, vs.n_rows), vs.n_rows)
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def to_gpus(index):
    """Move an index to every visible GPU: sharded (each GPU holds a slice of the rows,
    results merged) when there are several, so an index larger than one GPU's memory
    fits; a plain copy on one GPU. Indexes FAISS cannot place on a GPU stay on the CPU."""
    faiss = faiss_module()
    n = gpu_count()
    if n == 0:
        return index
    try:
        if n == 1:
            return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        co = faiss.GpuMultipleClonerOptions()
        co.shard = True
        return faiss.index_cpu_to_all_gpus(index, co=co)
    except Exception:  # e.g. an index type without a GPU implementation
        return index


def read_index(path: Path):
    faiss = faiss_module()
    try:
        return faiss.read_index(str(path))
    except Exception as exc:  # faiss raises RuntimeError with a C++ trace
        raise CorruptFile(f"FAISS index {path} is unreadable ({str(exc).splitlines()[0][:120]})") from None


class SearchIndex:
    """Exact cosine top-k over one vector set, choosing the faster backend per batch."""

    def __init__(self, vs: VectorSet, index_path: Path | None, backend: str = "auto"):
        if backend not in ("auto", "numpy", "faiss"):
            raise ValueError(f"unknown backend {backend!r}")
        self.vs = vs
        self.index_path = index_path
        self.backend = backend
        self._faiss_index = None
        self._on_gpu = False

    def _faiss(self):
        if self._faiss_index is None:
            if self.index_path is None:
                raise CorruptFile("this vector set has no FAISS index; run `explorer index rebuild`")
            index = read_index(self.index_path)
            if index.ntotal != self.vs.n_rows or index.d != self.vs.dim:
                raise CorruptFile(f"FAISS index {self.index_path} does not match its vector set")
            if gpu_count() > 0:
                index = to_gpus(index)
                self._on_gpu = True
            self._faiss_index = index
        return self._faiss_index

    def choose(self, n_queries: int, filtered: bool) -> str:
        if self.backend != "auto":
            return self.backend
        if filtered:
            return "numpy"
        if self.index_path is not None and (n_queries * self.vs.dim >= FAISS_BLAS_WORK or gpu_count() > 0):
            return "faiss"
        return "numpy"

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits:
        """Top-k rows by cosine for each query; ``allowed`` is a boolean row mask."""
        q = unit_rows(np.atleast_2d(queries))
        k = min(k, self.vs.n_rows)
        if self.choose(len(q), allowed is not None) == "faiss":
            return self._search_faiss(q, k, allowed)
        out_s, out_i = [], []
        step = max(1, min(_QUERY_CHUNK, _SCORE_BUDGET // max(self.vs.n_rows, 1)))
        for start in range(0, len(q), step):
            scores = self.vs.cosines(q[start : start + step]).T
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            s, i = topk_dense(scores, k)
            i[~np.isfinite(s)] = -1  # fewer allowed rows than k: pad as FAISS does
            out_s.append(s)
            out_i.append(i)
        return Hits(np.concatenate(out_s), np.concatenate(out_i))

    def _search_faiss(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> Hits:
        index = self._faiss()
        params = None
        if allowed is not None:
            faiss = faiss_module()
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64)))
        if params is None:
            scores, ids = index.search(np.ascontiguousarray(q, dtype=np.float32), k)
        else:
            scores, ids = index.search(np.ascontiguousarray(q, dtype=np.float32), k, params=params)
        return Hits(scores.astype(np.float32), ids.astype(np.int64))
