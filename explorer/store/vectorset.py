"""A stored vector set: a memory-mapped float32 matrix, its row norms, exact scoring.

Rows are exactly what was exported (no normalisation), so diagnostics that need raw
vectors (offset cosines) see the model's numbers. Cosines divide by cached norms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.errors import CorruptFile
from explorer.core.numeric import unit_rows

VECTORS = "vectors.npy"
NORMS = "norms.npy"
INDEX = "index.faiss"
FEW_QUERIES = 8  # up to this many queries, cosines() goes through the matrix in cache-sized blocks
# Multiply-adds per block (rows x dim x queries): the block stays in a core's cache, and
# OpenBLAS runs a product this small on one thread (a larger one spawns threads per block,
# 4x slower on 2 cores; measured on Gemma 3 270M, d = 640, 3 queries).
BLOCK_WORK = 800_000


def row_norms(matrix: np.ndarray, chunk: int = 65536) -> np.ndarray:
    out = np.empty(matrix.shape[0], dtype=np.float32)
    for i in range(0, matrix.shape[0], chunk):
        block = np.asarray(matrix[i : i + chunk], dtype=np.float32)
        out[i : i + chunk] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


@dataclass
class VectorSet:
    """A matrix of ``n_rows x dim`` float32 vectors; row id = FAISS id = token id."""

    directory: Path
    vectors: np.ndarray  # memory-mapped, read-only
    norms: np.ndarray

    @classmethod
    def open(cls, directory: Path, vectors_file: str = VECTORS, norms_file: str = NORMS) -> "VectorSet":
        directory = Path(directory)
        try:
            vectors = np.load(directory / vectors_file, mmap_mode="r")
            norms = np.load(directory / norms_file)
        except FileNotFoundError as exc:
            raise CorruptFile(f"vector set file missing: {exc.filename}") from None
        except (ValueError, OSError) as exc:
            raise CorruptFile(f"vector set in {directory} is unreadable ({exc})") from None
        if vectors.ndim != 2 or vectors.dtype not in (np.float32, np.float16) or norms.shape != (vectors.shape[0],):
            raise CorruptFile(f"vector set in {directory} has inconsistent shapes or dtype")
        return cls(directory, vectors, norms)

    @classmethod
    def write(cls, directory: Path, matrix: np.ndarray) -> None:
        """Write ``matrix`` (float32) and its norms into ``directory``."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        np.save(directory / VECTORS, matrix)
        np.save(directory / NORMS, row_norms(matrix))

    @property
    def n_rows(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def rows(self, ids: np.ndarray | list[int]) -> np.ndarray:  # always float32
        return np.asarray(self.vectors[np.asarray(ids, dtype=np.int64)], dtype=np.float32)

    def safe_norms(self) -> np.ndarray:
        """Norms with zeros replaced by 1 (a zero row then scores 0), computed once."""
        cached = self.__dict__.get("_safe")
        if cached is None:
            n = self.norms
            cached = self.__dict__["_safe"] = np.where(n == 0, np.float32(1), n).astype(np.float32, copy=False)
        return cached

    def cosines(self, queries: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """Cosine of every row with each unit query: shape ``(n_rows, n_queries)``.

        One pass over the matrix serves all queries. For a few queries it goes through
        the matrix in blocks that stay in the CPU cache (``BLOCK_WORK``): BLAS's matrix
        product of a tall matrix with 2 or 3 columns is slower than that many separate
        matrix-vector passes, each of which reads the whole matrix from memory again.
        """
        q = unit_rows(np.atleast_2d(queries)).T  # (dim, nq)
        m = np.asarray(self.vectors if rows is None else self.vectors[rows])
        norms = self.safe_norms() if rows is None else self.safe_norms()[rows]
        if m.dtype == np.float32 and q.shape[1] == 1:
            scores = (m @ q[:, 0])[:, None]  # matrix-vector product: no temporary copies
        elif m.dtype == np.float32 and q.shape[1] > FEW_QUERIES:
            scores = m @ q
        else:  # a few queries, or float16 on disk (widened a block at a time: numpy's half matmul is slow)
            scores = np.empty((m.shape[0], q.shape[1]), dtype=np.float32)
            step = max(16, BLOCK_WORK // (m.shape[1] * q.shape[1])) if q.shape[1] <= FEW_QUERIES else 65536
            q = np.ascontiguousarray(q)  # np.dot(..., out=) is 5x slower with q in Fortran order
            for i in range(0, m.shape[0], step):
                np.dot(np.asarray(m[i : i + step], dtype=np.float32), q, out=scores[i : i + step])
        scores /= norms[:, None]
        return scores
