"""Exact top-k of score rows: the one selection that dense search, analogy answers and
the gensim-style analogy evaluation share (numpy only)."""

from __future__ import annotations

import numpy as np


def topk_dense(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k per row of ``scores`` (nq, N): (float32 scores, ids), best first, ties
    by lower id; NaN is never chosen before a number, -inf only when a row has fewer
    than k larger values.

    Instead of a full argpartition, take the k-th best of a prefix as a lower bound of
    the true k-th best, keep the (few) entries at or above it and sort those, all rows at
    once. A row whose bound is not a number (NaN in its prefix) is sorted in full.
    """
    nq, n = scores.shape
    k = min(k, n)
    if k == 0:
        return np.empty((nq, 0), np.float32), np.empty((nq, 0), np.int64)
    prefix = min(n, max(n // 16, 8 * k))
    if prefix == n:
        ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    else:
        bound = np.partition(scores[:, :prefix], prefix - k, axis=1)[:, prefix - k]
        rows, cols = np.nonzero(scores >= bound[:, None])
        order = np.lexsort((cols, -scores[rows, cols], rows))
        rows, cols = rows[order], cols[order]
        ids = np.empty((nq, k), np.int64)
        ok = np.bincount(rows, minlength=nq) >= k
        ids[ok] = cols[np.searchsorted(rows, np.flatnonzero(ok))[:, None] + np.arange(k)]
        if not ok.all():
            ids[~ok] = np.argsort(-scores[~ok], axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, 1).astype(np.float32, copy=False), ids
