"""Small numeric helpers shared by the math, storage and capability layers (numpy only)."""

from __future__ import annotations

import numpy as np


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); a zero row stays zero, and a row whose norm
    overflows becomes zeros rather than NaN."""
    m = np.asarray(matrix, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # huge rows: inf norm -> zeros, by design
        n = np.linalg.norm(m, axis=-1, keepdims=True)
        return m / np.where(n == 0, 1, n)
