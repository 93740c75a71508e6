"""2-D projections of vectors (pure numpy): exact PCA, custom axes, optional UMAP.

Definitions
-----------
PCA (exact)
    The rows are centred on their mean; the components are the top right-singular
    vectors of the centred matrix Xc (numpy SVD when the matrix is small or wide; for
    many more rows than columns the eigenvectors of the d x d Gram matrix Xc^T Xc in
    float64, which are the same vectors). Coordinates are Xc @ V_k, i.e. U_k S_k. The
    explained-variance ratio of component i is s_i^2 / sum_j s_j^2 over *all*
    components. Each component's sign is fixed so that its largest-magnitude loading is
    positive (deterministic output). Nothing is approximated: unlike the Embedding
    Projector, no dimensions are sampled and no randomized solver is used.
Custom axes
    An axis is a weighted sum of **raw** word vectors, e.g. ``woman - man`` is
    d = E(woman) - E(man) (the same raw vectors as the offset cosine of
    ``explorer query``). A point's coordinate is its scalar projection on the unit
    axis: x = <v, d / |d|>. The Embedding Projector uses <v, d> (and unit-normalises
    and centres v when "sphereize" is on): our x is its value divided by the constant
    |d|, so the picture has the same shape, and each axis is in the units of the
    vectors. With ``unit_points`` every v is unit-normalised first, so x = cos(v, d).
    The axes are not orthogonalised (the picture is an oblique projection); the cosine
    between them is reported: for x = b - a and y = d - c it equals the analogy's
    offset cosine, so "are the two offsets parallel?" is one number next to the picture.
UMAP (optional)
    ``umap-learn`` with cosine distance, ``n_neighbors = min(15, n - 1)`` and the
    given seed; without the package, a one-line error names the extra to install.
Sampling
    More than ``limit`` selected points are sampled uniformly without replacement with
    a seed, keeping the points that must stay (named words, axis words). The result
    says so: ``selected``, ``shown``, ``sampled`` -- never a silent cap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from explorer.errors import ExplorerError

DEFAULT_LIMIT = 20_000
METHODS = ("pca", "umap", "axes")
UMAP_EXTRA = "umap"
_GRAM_ROWS = 4  # use the Gram matrix when rows > this many times the columns


@dataclass(frozen=True)
class Sample:
    """Which of ``selected`` points are shown (row indices into the selection, sorted)."""

    indices: np.ndarray
    selected: int
    limit: int
    seed: int

    @property
    def shown(self) -> int:
        return int(len(self.indices))

    @property
    def sampled(self) -> bool:
        return self.shown < self.selected

    def note(self) -> str | None:
        if not self.sampled:
            return None
        return (f"{self.selected} points selected, more than the limit of {self.limit}: showing a random sample "
                f"of {self.shown} (seed {self.seed}); raise --limit to see more")

    def to_dict(self) -> dict:
        return {"sampled": self.sampled, "selected": self.selected, "shown": self.shown,
                "limit": self.limit, "seed": self.seed}


def sample(n: int, limit: int, seed: int = 0, keep: Sequence[int] = ()) -> Sample:
    """At most ``limit`` of ``n`` rows: all of them, or ``keep`` plus a seeded uniform sample."""
    if limit < 1:
        raise ExplorerError("--limit must be at least 1")
    if n <= limit:
        return Sample(np.arange(n, dtype=np.int64), n, limit, seed)
    kept = np.unique(np.asarray(keep, dtype=np.int64))
    kept = kept[(kept >= 0) & (kept < n)][:limit]
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), kept)
    rng = np.random.default_rng(seed)
    drawn = rng.choice(rest, size=limit - len(kept), replace=False)
    return Sample(np.sort(np.concatenate([kept, drawn])), n, limit, seed)


@dataclass(frozen=True)
class PCAFit:
    coords: np.ndarray  # (n, k)
    components: np.ndarray  # (k, d), unit rows
    mean: np.ndarray  # (d,)
    explained_ratio: tuple[float, ...]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Coordinates of other rows in the fitted components."""
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T


def pca(x: np.ndarray, k: int = 2) -> PCAFit:
    """Exact PCA of the rows of ``x`` (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ExplorerError(f"PCA needs at least one vector (got shape {x.shape})")
    n, d = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    total = float(np.einsum("ij,ij->", xc, xc))
    if n > _GRAM_ROWS * d:
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        order = np.argsort(evals)[::-1]
        variances = np.clip(evals[order], 0.0, None)
        vt = evecs[:, order].T
    else:
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        variances = s**2
    m = min(k, vt.shape[0])
    comps = np.zeros((k, d))
    comps[:m] = vt[:m]
    for i in range(m):  # deterministic sign: largest |loading| positive
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] = -comps[i]
    ratios = [float(variances[i] / total) if total > 0 and i < m else 0.0 for i in range(k)]
    return PCAFit(xc @ comps.T, comps, mean, tuple(ratios))


@dataclass(frozen=True)
class AxesInfo:
    """The two custom axes: expressions, raw-direction norms, and their cosine."""

    x: str
    y: str
    x_norm: float
    y_norm: float
    cosine: float
    unit_points: bool

    def to_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "x_norm": self.x_norm, "y_norm": self.y_norm,
                "cosine": self.cosine, "unit_points": self.unit_points,
                "definition": ("x = cos(v, dx), y = cos(v, dy)" if self.unit_points
                               else "x = <v, dx/|dx|>, y = <v, dy/|dy|> on raw vectors")}


def axes_coords(x: np.ndarray, x_dir: np.ndarray, y_dir: np.ndarray, unit_points: bool = False) -> np.ndarray:
    """Scalar projections of the rows on the two unit axes (``unit_points``: cosines)."""
    x = np.asarray(x, dtype=np.float64)
    dirs = []
    for name, v in (("x", x_dir), ("y", y_dir)):
        v = np.asarray(v, dtype=np.float64)
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            raise ExplorerError(f"the {name} axis is the zero vector; choose two different words")
        dirs.append(v / norm)
    if unit_points:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms == 0, 1.0, norms)
    return x @ np.stack(dirs, axis=1)


def axes_cosine(x_dir: np.ndarray, y_dir: np.ndarray) -> float:
    a, b = np.asarray(x_dir, dtype=np.float64), np.asarray(y_dir, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na and nb else float("nan")


def umap_coords(x: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D UMAP (cosine distance) with ``umap-learn``, or a one-line error naming the extra."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ParametricUMAP", category=ImportWarning)
            import umap  # type: ignore[import-not-found]
    except ImportError:
        raise ExplorerError(
            f"--method umap needs the optional extra '{UMAP_EXTRA}': pip install 'explorer[{UMAP_EXTRA}]' "
            "(or pip install umap-learn)"
        ) from None
    n = len(x)
    if n < 4:
        raise ExplorerError(f"UMAP needs at least 4 points (got {n}); use --method pca")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), metric="cosine", random_state=seed)
    with warnings.catch_warnings():
        # known and harmless: a seed makes UMAP single-threaded, and it says so on every call
        warnings.filterwarnings("ignore", message=r"n_jobs value .* overridden", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*(deprecated|will be removed)", category=FutureWarning)
        return np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float64)


@dataclass(frozen=True)
class ScatterPoint:
    label: str
    token_id: int | None
    x: float
    y: float
    group: str  # word | expr | where | axis | path | landmark

    def to_dict(self) -> dict:
        return {"label": self.label, "token_id": self.token_id, "x": self.x, "y": self.y, "group": self.group}


@dataclass(frozen=True)
class Projection:
    """A 2-D picture of some vectors, with everything needed to read it honestly."""

    method: str
    vector_set: str
    points: tuple[ScatterPoint, ...]
    axis_titles: tuple[str, str]
    sample: Sample
    explained_ratio: tuple[float, ...] | None = None
    axes: AxesInfo | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "vector_set": self.vector_set,
            "axis_titles": list(self.axis_titles),
            "explained_variance_ratio": list(self.explained_ratio) if self.explained_ratio else None,
            "axes": self.axes.to_dict() if self.axes else None,
            **self.sample.to_dict(),
            "notes": list(self.notes),
            "points": [p.to_dict() for p in self.points],
        }


def pca_titles(ratios: Sequence[float]) -> tuple[str, str]:
    return (f"PC1 ({100 * ratios[0]:.1f}% of variance)", f"PC2 ({100 * ratios[1]:.1f}% of variance)")
