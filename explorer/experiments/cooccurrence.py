"""Count-based word vectors: a co-occurrence matrix, optional PPMI, truncated SVD.

* **Corpus.** ``corpus="glitters"`` (the default) is the two-document example
  "all that glitters is not gold" / "all is well that ends well"; any other value is read
  as word2vec's corpora (:func:`explorer.experiments.word2vec.read_sentences`: ``""`` =
  gensim's lee_background.cor, ``"sample"``, or a file, one sentence per line, lowercased
  letters only).
* **Markers.** ``markers="on"`` wraps each document (line) in ``<START>`` and ``<END>``, as
  the example's source does: its matrix is then 10 x 10, and ``<START>``-``all`` counts 2.
  ``"auto"`` (the default) is on for the glitters example and off for other corpora.
* **Vocabulary.** Words seen ``min_count`` times, most frequent first (ties: first
  appearance), at most ``max_vocab`` of them. Other words still take up their position.
* **Counts.** ``X[w, c]`` = how often ``c`` occurs within ``window`` words of ``w`` (left
  or right, within one line): the matrix is symmetric. ``weighting="harmonic"`` adds
  ``1/distance`` instead of 1 per occurrence (GloVe's weighting; ``"flat"`` is the default).
* **PPMI** (``ppmi=true``): ``max(0, log(X[w,c] * N / (X[w,:] * N_cds(c))))`` with
  ``N = sum(X)`` and ``N_cds(c) = N * X[:,c]^cds / sum(X[:,c']^cds)`` (context
  distribution smoothing, Levy, Goldberg & Dagan 2015; ``cds=1``: plain PPMI). Zero
  counts stay zero. The matrix is kept sparse (sorted coordinates, numpy only).
* **SVD.** ``X ~ U_k S_k V_k^T`` with ``k = dim``: ``numpy.linalg.svd`` of the dense
  matrix up to ``full_limit`` words (``svd="auto"``), else a randomized SVD (Halko,
  Martinsson & Tropp 2011: a Gaussian sketch with ``oversample`` extra columns,
  ``power_iters`` QR-stabilised power iterations) on the sparse matrix. Each singular
  vector's sign is fixed so its largest-magnitude entry in ``U`` is positive.
* **Embeddings.** ``U_k * S_k^alpha``. ``alpha=1`` (default): row ``w`` holds the
  coordinates of row ``w`` of the best rank-k approximation ``X_k`` in the basis ``V_k``
  (``E V_k^T = X_k``), so the 2-D plot of the glitters example is exact geometry;
  ``alpha=0.5`` (paper preset) is the symmetric split Levy et al. found better for
  similarity; ``alpha=0`` gives plain ``U_k``.

The run registers the vectors (model ``name``, default ``cooc-<corpus>[-ppmi]``) and
returns the co-occurrence matrix and its whole spectrum (up to 30 words), the first two
coordinates (up to 200 words) and the top ``dim`` singular values; ``summarize`` prints the matrix as a labelled table and
the 2-D coordinates, and draws them (matplotlib, Agg) with word labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from explorer.errors import ExplorerError
from explorer.experiments import rules
from explorer.experiments.base import RunContext, RunOutput, Summary, TrainedVectors

GLITTERS = ("all that glitters is not gold", "all is well that ends well")
START, END = "<START>", "<END>"
TABLE_WORDS = 30  # the matrix is returned (and printed) up to this many words
PLOT_WORDS = 200


@dataclass(frozen=True)
class Config:
    corpus: str = "glitters"  # "glitters" | "" (lee) | "sample" | a file
    window: int = 1
    weighting: str = "flat"  # "flat" | "harmonic" (1/distance)
    min_count: int = 1
    max_vocab: int = 20000
    ppmi: bool = False
    cds: float = 1.0  # context distribution smoothing exponent for PPMI (0.75 in Levy et al.)
    dim: int = 2
    alpha: float = 1.0  # embeddings = U_k * S_k^alpha
    svd: str = "auto"  # "auto" | "full" | "randomized"
    full_limit: int = 2000  # auto: full SVD up to this many words
    oversample: int = 10
    power_iters: int = 4
    seed: int = 0
    name: str = ""  # model name; "" = cooc-<corpus>[-ppmi]
    markers: str = "auto"  # "auto" (on for glitters) | "on" | "off": <START> ... <END> around each document


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"corpus": "glitters", "window": 1, "dim": 2},
    "paper": {"corpus": "", "window": 5, "min_count": 5, "ppmi": True, "cds": 0.75, "dim": 100, "alpha": 0.5},
}


# -- a sparse matrix in numpy ----------------------------------------------------------


class Sparse:
    """An ``n x n`` matrix as coordinates; ``dot`` multiplies dense matrices by it."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int):
        self.rows, self.cols, self.vals, self.n = rows, cols, vals, n
        self._sorted: dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def dense(self) -> np.ndarray:
        out = np.zeros((self.n, self.n))
        out[self.rows, self.cols] = self.vals
        return out

    def dot(self, m: np.ndarray, transpose: bool = False, chunk: int = 1 << 20) -> np.ndarray:
        """``X @ m`` (or ``X.T @ m``) for a dense ``m`` of n rows."""
        if transpose not in self._sorted:
            r, c = (self.cols, self.rows) if transpose else (self.rows, self.cols)
            order = np.argsort(r, kind="stable")
            self._sorted[transpose] = (r[order], c[order], self.vals[order])
        r, c, v = self._sorted[transpose]
        out = np.zeros((self.n, m.shape[1]))
        for s in range(0, len(r), chunk):
            rr, prod = r[s : s + chunk], v[s : s + chunk, None] * m[c[s : s + chunk]]
            starts = np.flatnonzero(np.r_[True, rr[1:] != rr[:-1]])
            out[rr[starts]] += np.add.reduceat(prod, starts, axis=0)
        return out


def count(ids: np.ndarray, sent: np.ndarray, n: int, window: int, weighting: str = "flat") -> Sparse:
    """Symmetric window co-occurrence counts of word ids (``-1``: not in the vocabulary)."""
    if weighting not in ("flat", "harmonic"):
        raise ExplorerError(f"weighting must be flat or harmonic, not {weighting!r}")
    keys, vals = np.zeros(0, np.int64), np.zeros(0)
    for o in range(1, window + 1):
        a, b = ids[:-o], ids[o:]
        ok = (sent[:-o] == sent[o:]) & (a >= 0) & (b >= 0)
        a, b = a[ok], b[ok]
        w = 1.0 if weighting == "flat" else 1.0 / o
        keys = np.concatenate([keys, a * n + b, b * n + a])
        vals = np.concatenate([vals, np.full(2 * len(a), w)])
        keys, inverse = np.unique(keys, return_inverse=True)
        vals = np.bincount(inverse, weights=vals, minlength=len(keys))
    return Sparse(keys // n, keys % n, vals, n)


def ppmi(x: Sparse, cds: float = 1.0) -> Sparse:
    """Positive PMI of the nonzero entries (see the module docstring)."""
    row = np.bincount(x.rows, weights=x.vals, minlength=x.n)
    col = np.bincount(x.cols, weights=x.vals, minlength=x.n) ** cds
    pmi = np.log(x.vals) - np.log(row[x.rows]) - np.log(col[x.cols] / col.sum())  # log P(w,c) / P(w) P_cds(c)
    keep = pmi > 0
    return Sparse(x.rows[keep], x.cols[keep], pmi[keep], x.n)


# -- SVD -------------------------------------------------------------------------------


def _fix_signs(u: np.ndarray, s: np.ndarray, vt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flip = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    flip[flip == 0] = 1
    return u * flip, s, vt * flip[:, None]


def randomized_svd(matmul: Callable[[np.ndarray, bool], np.ndarray], n: int, k: int, oversample: int = 10,
                   power_iters: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k SVD of an n x n operator given ``matmul(m, transpose)`` = ``X @ m`` / ``X.T @ m``."""
    rng = np.random.default_rng(seed)
    width = min(n, k + oversample)
    q, _ = np.linalg.qr(matmul(rng.standard_normal((n, width)), False))
    for _ in range(power_iters):
        q, _ = np.linalg.qr(matmul(q, True))
        q, _ = np.linalg.qr(matmul(q, False))
    ub, s, vt = np.linalg.svd(matmul(q, True).T, full_matrices=False)  # B = Q^T X
    return _fix_signs((q @ ub)[:, :k], s[:k], vt[:k])


def truncated_svd(x: Sparse, k: int, config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(U_k, S_k, V_k^T) of ``x``, full or randomized (see the module docstring)."""
    if not 1 <= k <= x.n:
        raise ExplorerError(f"dim must be between 1 and the vocabulary size {x.n}, not {k}")
    method = config.svd if config.svd != "auto" else ("full" if x.n <= config.full_limit else "randomized")
    if method == "full":
        u, s, vt = np.linalg.svd(x.dense())
        return _fix_signs(u[:, :k], s[:k], vt[:k])
    if method != "randomized":
        raise ExplorerError(f"svd must be auto, full or randomized, not {config.svd!r}")
    return randomized_svd(x.dot, x.n, k, config.oversample, config.power_iters, config.seed)


def embed(u: np.ndarray, s: np.ndarray, alpha: float) -> np.ndarray:
    return (u * s**alpha).astype(np.float32)


# -- corpus ----------------------------------------------------------------------------


def corpus(config: Config) -> tuple[list[str], np.ndarray, np.ndarray, str]:
    """(vocabulary, word ids with -1 outside it, sentence ids, corpus stem)."""
    from explorer.experiments import word2vec as w2v

    if config.corpus == "glitters":
        sentences, stem = [w2v.word_tokens(s) for s in GLITTERS], "glitters"
    else:
        sentences, stem = w2v.read_sentences(config.corpus), w2v.corpus_stem(config.corpus)
    if uses_markers(config):
        sentences = [[START, *s, END] for s in sentences]
    words = w2v.build_vocab(sentences, config.min_count).words[: max(1, config.max_vocab)]
    return (words, *w2v.encode(sentences, words, keep_oov=True), stem)


def uses_markers(config: Config) -> bool:
    return config.markers == "on" or (config.markers == "auto" and config.corpus == "glitters")


def run(config: Config, ctx: RunContext) -> RunOutput:
    from explorer.store.interchange.encoding import check_model_name

    start = time.perf_counter()
    words, ids, sent, stem = corpus(config)
    name = check_model_name(config.name or f"cooc-{stem}" + ("-ppmi" if config.ppmi else ""))
    ctx.progress(1, 3)
    counts = count(ids, sent, len(words), config.window, config.weighting)
    matrix = ppmi(counts, config.cds) if config.ppmi else counts
    ctx.check()
    ctx.progress(2, 3)
    u, s, vt = truncated_svd(matrix, config.dim, config)
    vectors = embed(u, s, config.alpha)
    ctx.progress(3, 3)
    summary: dict[str, Any] = {"name": name, "vocab": len(words), "nnz": int(len(matrix.vals)), "markers": uses_markers(config),
                               "singular_values": s.tolist(), "seconds": time.perf_counter() - start,
                               "words": words[:PLOT_WORDS], "coords": vectors[:PLOT_WORDS, :2].tolist()}
    if len(words) <= TABLE_WORDS:
        summary["cooccurrence"] = counts.dense().tolist()
        summary["spectrum"] = np.linalg.svd(matrix.dense(), compute_uv=False).tolist()  # all of them, small matrices only
        if config.ppmi:
            summary["ppmi"] = matrix.dense().tolist()
    note = f"co-occurrence window {config.window} ({config.weighting}){' PPMI' if config.ppmi else ''}, SVD k={config.dim}, alpha={config.alpha}"
    return RunOutput(summary=summary, vectors=[TrainedVectors(name, words, vectors, note)])


# -- summary ---------------------------------------------------------------------------


def table(words: list[str], matrix: list[list[float]]) -> str:
    """A labelled square table (numbers in ``%g``)."""
    cells = [[f"{v:g}" for v in row] for row in matrix]
    width = max([len(w) for w in words] + [len(c) for row in cells for c in row])
    head = " " * width + " " + " ".join(w.rjust(width) for w in words)
    return "\n".join([head] + [w.ljust(width) + " " + " ".join(c.rjust(width) for c in row)
                               for w, row in zip(words, cells)])


def coordinates(words: list[str], coords: list[list[float]]) -> str:
    width = max(len(w) for w in words)
    return "\n".join(w.ljust(width) + "  " + "  ".join(f"{x:8.4f}" for x in xy) for w, xy in zip(words, coords))


def figure(runs: list[tuple[Any, dict[str, Any]]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from explorer.viz.fonts import choose

    fonts = choose(w for _, s in runs for w in s["words"][:60])  # CJK words need a CJK font
    with matplotlib.rc_context({"font.family": list(fonts.families)}):
        return _draw(Figure(figsize=(5 * len(runs), 4.5)), runs)


def _draw(fig: Any, runs: list[tuple[Any, dict[str, Any]]]) -> Any:
    for ax, (cfg, s) in zip(np.atleast_1d(fig.subplots(1, len(runs))), runs):
        xy = np.array(s["coords"], dtype=float).reshape(len(s["words"]), -1)
        ys = xy[:, 1] if xy.shape[1] > 1 else np.zeros(len(xy))
        ax.scatter(xy[:, 0], ys, s=12)
        labels: dict[tuple[float, float], list[str]] = {}  # words with the same vector share a label
        for w, x, y in list(zip(s["words"], xy[:, 0], ys))[:60]:
            labels.setdefault((round(x, 6), round(y, 6)), []).append(w)
        for (x, y), ws in labels.items():
            ax.annotate(", ".join(ws), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set(title=f"{s['name']}: first two SVD dimensions", xlabel="dim 1", ylabel="dim 2")
    fig.tight_layout()
    return fig


def summarize(config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
    parts, result = [], {"runs": []}
    for cfg, s in finished:
        sv = ", ".join(f"{v:.4g}" for v in s["singular_values"][:10])
        parts.append(f"{s['name']}: {s['vocab']} words, {s['nnz']} nonzero entries, singular values {sv}")
        if "cooccurrence" in s:
            parts.append(f"co-occurrence counts (window {cfg.window}):\n" + table(s["words"], s["cooccurrence"]))
        if "ppmi" in s:
            parts.append("PPMI:\n" + table(s["words"], s["ppmi"]))
        if "spectrum" in s:
            parts.append("all singular values: " + ", ".join(f"{v:.4g}" for v in s["spectrum"]))
        shown = min(len(s["words"]), TABLE_WORDS)
        parts.append(f"2-D vectors (U_k * S_k^{cfg.alpha}, first two columns):\n"
                     + coordinates(s["words"][:shown], s["coords"][:shown]))
        result["runs"].append({k: s[k] for k in ("name", "vocab", "nnz", "singular_values")})
    return Summary(result, "\n\n".join(parts), figure(finished) if finished else None)


class CooccurrenceExperiment:
    """Co-occurrence counts + PPMI + SVD (see the module docstring) as an experiment object."""

    name = "cooccurrence"
    description = "count-based word vectors: window co-occurrences, optional PPMI, truncated SVD (U S^alpha)"
    Config = Config
    presets = PRESETS
    rules = rules.COOCCURRENCE

    def points(self, config: Config) -> list[dict[str, Any]]:
        return [{}]

    def run(self, config: Config, ctx: RunContext) -> RunOutput:
        return run(config, ctx)

    def summarize(self, config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
        return summarize(config, finished)


EXPERIMENT = CooccurrenceExperiment()
