"""Concept directions in a vector space: are counterfactual pair offsets one direction?

A binary concept (male -> female, singular -> plural, ...) is given as token-id pairs
``(a, b)``; its offsets are ``E(b) - E(a)`` for each pair. If the concept is represented
linearly the offsets are parallel:

* **consistency**: mean pairwise cosine among the offsets (all ordered pairs ``k != l``);
  1 for exactly parallel offsets, about 0 for random ones. This is the same measure as
  the ``linearity`` of :mod:`explorer.experiments.concepts`.
* **leave-one-out**: cosine of each offset with the mean of the *other* offsets (how well
  the concept direction estimated without a pair predicts that pair).
* **orthogonality**: the concept x concept cosine matrix of the mean offsets (unit
  normalised per pair first, so one long offset does not dominate), and the mean
  ``|cos|`` off its diagonal (near 0: different concepts point in unrelated directions).

Two matrices (input embedding vs unembedding) live in different bases unless the model
ties them, so comparing a concept's direction across them is meaningless. :func:`align`
compares *structure* instead: correlations between the cosine matrices each space gives
(concept x concept, offset x offset within each concept, word x word).

Pure numpy (no torch): works on arrays and memory-mapped stored vector sets.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

Pairs = Sequence[tuple[int, int]]


# -- primitives -------------------------------------------------------------------------


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float64)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n == 0, 1.0, n)


def differences(matrix: Any, pairs: Pairs) -> np.ndarray:
    """``E(b) - E(a)`` for each ``(a, b)``, float64, shape ``(len(pairs), dim)``."""
    if len(pairs) == 0:
        return np.zeros((0, int(np.shape(matrix)[1])))
    ids = np.asarray(pairs, dtype=np.int64)
    rows = np.asarray(matrix[np.unique(ids)], dtype=np.float64)  # one gather from a memmap
    pos = {int(t): i for i, t in enumerate(np.unique(ids))}
    a = rows[[pos[int(t)] for t in ids[:, 0]]]
    b = rows[[pos[int(t)] for t in ids[:, 1]]]
    return b - a


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosines between all rows, ``(n, n)``."""
    u = unit(vectors)
    return u @ u.T


def consistency(diffs: np.ndarray) -> float:
    """Mean pairwise cosine among the rows (``k != l``); NaN with fewer than 2 rows."""
    n = len(diffs)
    if n < 2:
        return float("nan")
    c = cosine_matrix(diffs)
    return float((c.sum() - np.trace(c)) / (n * (n - 1)))


def leave_one_out(diffs: np.ndarray) -> np.ndarray:
    """Cosine of each row with the mean of the other (unit) rows; NaN with fewer than 2."""
    n = len(diffs)
    if n < 2:
        return np.full(n, np.nan)
    u = unit(diffs)
    others = (u.sum(axis=0, keepdims=True) - u) / (n - 1)
    return np.einsum("ij,ij->i", u, unit(others))


def mean_direction(diffs: np.ndarray) -> np.ndarray:
    """Mean of the unit offsets (zero vector when there are none)."""
    if len(diffs) == 0:
        return np.zeros(diffs.shape[1])
    return unit(diffs).mean(axis=0)


def mean_abs_offdiag(c: np.ndarray) -> float:
    """Mean ``|c_ij|`` over ``i != j`` (NaN for a 1x1 or empty matrix)."""
    n = len(c)
    if n < 2:
        return float("nan")
    mask = ~np.eye(n, dtype=bool)
    vals = np.abs(c[mask])
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def _offdiag_corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of the strictly upper-triangular entries of two square matrices."""
    iu = np.triu_indices(len(x), k=1)
    a, b = x[iu], y[iu]
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


# -- reports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConceptDirection:
    """The offsets of one concept in one matrix."""

    name: str
    n_pairs: int
    consistency: float  # mean pairwise cosine among the offsets
    loo: tuple[float, ...]  # cosine of each offset with the mean of the others
    mean_norm: float  # mean offset length (scale of the space, for context)

    @property
    def loo_mean(self) -> float:
        vals = [v for v in self.loo if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n_pairs": self.n_pairs, "consistency": self.consistency,
                "loo_mean": self.loo_mean, "loo": list(self.loo), "mean_norm": self.mean_norm}


@dataclass(frozen=True)
class DirectionReport:
    """Per-concept consistency plus the concept x concept cosines of mean directions."""

    concepts: tuple[ConceptDirection, ...]
    cosines: tuple[tuple[float, ...], ...]  # cos(mean direction i, mean direction j)
    orthogonality: float  # mean |cos| off the diagonal of ``cosines``
    diff_cosines: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.concepts)

    @property
    def mean_consistency(self) -> float:
        vals = [c.consistency for c in self.concepts if np.isfinite(c.consistency)]
        return float(np.mean(vals)) if vals else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"concepts": [c.to_dict() for c in self.concepts], "names": list(self.names),
                "cosines": [list(r) for r in self.cosines], "orthogonality": self.orthogonality,
                "mean_consistency": self.mean_consistency}


def concept_directions(matrix: Any, concepts: Mapping[str, Pairs]) -> DirectionReport:
    """Measure every concept (name -> token-id pairs) in ``matrix`` (array or memmap)."""
    items, dirs, diff_cos = [], [], []
    for name, pairs in concepts.items():
        d = differences(matrix, pairs)
        items.append(ConceptDirection(
            name, len(d), consistency(d), tuple(float(x) for x in leave_one_out(d)),
            float(np.linalg.norm(d, axis=1).mean()) if len(d) else float("nan"),
        ))
        dirs.append(mean_direction(d))
        diff_cos.append(cosine_matrix(d))
    c = cosine_matrix(np.array(dirs)) if dirs else np.zeros((0, 0))
    for i, d in enumerate(dirs):  # a concept with no pairs has no direction
        if not np.any(d):
            c[i, :] = c[:, i] = np.nan
    return DirectionReport(tuple(items), tuple(tuple(float(x) for x in r) for r in c),
                           mean_abs_offdiag(c), tuple(diff_cos))


@dataclass(frozen=True)
class Alignment:
    """How alike two spaces' concept geometry is, compared through cosine structure.

    ``concept_structure``: correlation of the off-diagonal concept x concept cosines;
    ``difference_structure``: per concept, correlation of the offset x offset cosines
    (do the same pairs agree or disagree in both spaces?); ``word_structure``:
    correlation of the word x word cosines over all tokens used. For a tied model the
    two matrices are one and every correlation is 1 by construction (``tied``).
    """

    tied: bool
    concept_structure: float
    difference_structure: dict[str, float]
    word_structure: float
    consistency_correlation: float  # across concepts: consistency in A vs in B
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"tied": self.tied, "concept_structure": self.concept_structure,
                "difference_structure": dict(self.difference_structure), "word_structure": self.word_structure,
                "consistency_correlation": self.consistency_correlation, "note": self.note}


def align(a: Any, b: Any, concepts: Mapping[str, Pairs], tied: bool | None = None,
          reports: tuple[DirectionReport, DirectionReport] | None = None) -> Alignment:
    """Compare the concept geometry of matrices ``a`` and ``b`` (same token ids).

    ``tied=None`` detects a tied pair: the same object, or identical rows for every token
    the concepts use.
    """
    ids = sorted({int(t) for pairs in concepts.values() for p in pairs for t in p})
    ra = np.asarray(a[ids], dtype=np.float64) if ids else np.zeros((0, 1))
    rb = np.asarray(b[ids], dtype=np.float64) if ids else np.zeros((0, 1))
    if tied is None:
        tied = a is b or (ra.shape == rb.shape and np.array_equal(ra, rb))
    ra_rep, rb_rep = reports or (concept_directions(a, concepts), concept_directions(b, concepts))
    diff = {n: (1.0 if tied else _offdiag_corr(x, y))
            for n, x, y in zip(ra_rep.names, ra_rep.diff_cosines, rb_rep.diff_cosines)}
    if tied:
        return Alignment(True, 1.0, diff, 1.0, 1.0,
                         "tied embeddings: input and output are the same matrix, so the structures are identical")
    ca = np.array([c.consistency for c in ra_rep.concepts])
    cb = np.array([c.consistency for c in rb_rep.concepts])
    ok = np.isfinite(ca) & np.isfinite(cb)
    cc = float(np.corrcoef(ca[ok], cb[ok])[0, 1]) if ok.sum() >= 2 and ca[ok].std() and cb[ok].std() else float("nan")
    return Alignment(
        False, _offdiag_corr(np.array(ra_rep.cosines), np.array(rb_rep.cosines)), diff,
        _offdiag_corr(cosine_matrix(ra), cosine_matrix(rb)), cc,
        "separate matrices: compared through cosine structure, not coordinates",
    )


# -- pair files -------------------------------------------------------------------------


def default_pairs_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("explorer.data").joinpath("concept_pairs.csv")))


def load_pairs(path: Path | str | None = None) -> dict[str, list[tuple[str, str]]]:
    """``concept,a,b`` rows -> ``{concept: [(a, b), ...]}`` in file order (``#`` comments)."""
    from explorer.errors import ExplorerError

    p = Path(path) if path else default_pairs_path()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ExplorerError(f"cannot read pairs file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ExplorerError(f"pairs file {p} is not UTF-8 text (byte {exc.start})") from None
    if "\0" in text:
        raise ExplorerError(f"pairs file {p} is not a CSV text file (it holds NUL bytes)")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    try:
        out = _pair_rows(p, csv.DictReader(lines))
    except csv.Error as exc:
        raise ExplorerError(f"pairs file {p}: not a valid CSV ({exc})") from None
    if not out:
        raise ExplorerError(f"pairs file {p} has no pairs")
    return out


def _pair_rows(p: Path, reader: csv.DictReader) -> dict[str, list[tuple[str, str]]]:
    from explorer.errors import ExplorerError

    if not reader.fieldnames or not {"concept", "a", "b"} <= {f.strip() for f in reader.fieldnames}:
        raise ExplorerError(f"pairs file {p} needs a header with columns concept,a,b")
    out: dict[str, list[tuple[str, str]]] = {}
    for n, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}
        if not row.get("concept") or not row.get("a") or not row.get("b"):
            raise ExplorerError(f"pairs file {p}: row {n} has an empty field")
        out.setdefault(row["concept"], []).append((row["a"], row["b"]))
    return out


# -- a model's vocabulary ---------------------------------------------------------------


@dataclass(frozen=True)
class ConceptPairs:
    """The word pairs of one concept and what survived resolution to single tokens."""

    name: str
    given: int
    pairs: tuple[tuple[str, str, int, int], ...]  # (a, b, a_id, b_id) used
    skipped: tuple[str, ...]  # why each dropped pair was dropped

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pairs_given": self.given, "pairs_used": len(self.pairs),
                "pairs": [{"a": a, "b": b, "a_id": i, "b_id": j} for a, b, i, j in self.pairs],
                "skipped": list(self.skipped)}


@dataclass(frozen=True)
class VocabularyDirections:
    """Concept directions of one model in its input and output vector sets."""

    model: str
    pairs_file: str
    tied: bool
    concepts: tuple[ConceptPairs, ...]
    input: DirectionReport
    output: DirectionReport | None  # None: no output set; same numbers as input when tied
    alignment: Alignment | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "pairs_file": self.pairs_file, "tied": self.tied,
                "concepts": [c.to_dict() for c in self.concepts], "input": self.input.to_dict(),
                "output": self.output.to_dict() if self.output else None,
                "alignment": self.alignment.to_dict() if self.alignment else None, "notes": list(self.notes)}
