"""Word-vector evaluation exactly as gensim does it, in numpy: analogies and word pairs.

:func:`evaluate_analogies` gives the same per-section correct/incorrect questions as
gensim's ``KeyedVectors.evaluate_word_analogies`` (defaults ``restrict_vocab=300000``,
``case_insensitive=True``, ``dummy4unknown=False``) on the same words and vectors:

* only the first ``restrict_vocab`` rows count (row order = frequency order);
* case-insensitive: every word is uppercased and, of several rows with the same
  uppercased word, the first one stands for it;
* a question ``a b c d`` with a word outside that vocabulary is skipped (counted as
  out-of-vocabulary); a line that is not four words is skipped and not counted;
* the answer is the row most cosine-similar to ``unit(b) + unit(c) - unit(a)`` (3CosAdd)
  among the restricted rows, excluding the rows of a, b and c: from the 5 best remaining
  rows, the first whose (uppercased) word is none of a, b, c (else the 5th); the
  question is correct when that word is d.

Questions are scored in batches through one matrix product per batch. Near-ties closer
than float32 rounding may be ordered differently from gensim's one-question-at-a-time
product (never seen on real vectors).

:func:`evaluate_pairs` matches ``evaluate_word_pairs``: lines ``word1<TAB>word2<TAB>score``
(``#`` comments), pairs with an unknown word skipped, Pearson and Spearman (average ranks
for ties) correlations of the gold scores with the cosines, and the out-of-vocabulary
ratio in percent. p-values are not computed.

The files default to gensim's test data (``questions-words.txt``, ``wordsim353.tsv``,
``simlex999.txt``), found without importing gensim.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from explorer.errors import ExplorerError
from explorer.query.topk import topk_dense

ANALOGY_FILE = "questions-words.txt"
PAIR_FILES = ("wordsim353.tsv", "simlex999.txt")
RESTRICT = 300_000
TOP = 5  # gensim asks most_similar for topn=5
SCORES_PER_BATCH = 1 << 25  # floats of one batch's score matrix (128 MiB)

Quad = tuple[str, str, str, str]
from explorer.core.types import Progress


def gensim_test_file(name: str) -> Path | None:
    """``gensim/test/test_data/<name>`` if gensim is installed (gensim is not imported)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    return path if path.is_file() else None


def default_file(kind: str = "analogies") -> Path | None:
    """gensim's analogy file, or None."""
    return gensim_test_file(ANALOGY_FILE) if kind == "analogies" else next(iter(default_files(kind)), None)


def default_files(kind: str = "pairs") -> list[Path]:
    """gensim's word-pair files (those found)."""
    names = PAIR_FILES if kind == "pairs" else (ANALOGY_FILE,)
    return [p for p in (gensim_test_file(n) for n in names) if p is not None]


@dataclass(frozen=True)
class SectionScore:
    section: str
    correct: int
    incorrect: int
    correct_items: tuple[Quad, ...] = ()
    incorrect_items: tuple[Quad, ...] = ()

    @property
    def accuracy(self) -> float:
        """correct / answered, 0.0 when nothing was answered (as gensim)."""
        n = self.correct + self.incorrect
        return self.correct / n if n else 0.0

    def to_dict(self, items: bool = False) -> dict[str, Any]:
        d = {"section": self.section, "correct": self.correct, "incorrect": self.incorrect, "accuracy": self.accuracy}
        if items:
            d["correct_items"], d["incorrect_items"] = list(self.correct_items), list(self.incorrect_items)
        return d


@dataclass(frozen=True)
class AnalogyResult:
    path: str
    sections: tuple[SectionScore, ...]
    total: SectionScore  # "Total accuracy"
    questions: int  # four-word lines read
    oov: int  # of them skipped for an unknown word
    restrict_vocab: int
    case_insensitive: bool

    @property
    def oov_ratio(self) -> float:
        """Percent of questions skipped (gensim's log line)."""
        return 100.0 * self.oov / self.questions if self.questions else 0.0

    def to_dict(self, items: bool = False) -> dict[str, Any]:
        return {"path": self.path, "accuracy": self.total.accuracy, "questions": self.questions, "oov": self.oov,
                "oov_ratio": self.oov_ratio, "restrict_vocab": self.restrict_vocab,
                "case_insensitive": self.case_insensitive, "total": self.total.to_dict(items),
                "sections": [s.to_dict(items) for s in self.sections]}


@dataclass(frozen=True)
class PairsResult:
    path: str
    pearson: float
    spearman: float
    oov_ratio: float  # percent
    pairs: int  # pairs scored
    oov: int  # pairs skipped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- vocabulary ------------------------------------------------------------------------


def _vocab(words: Sequence[str], restrict: int, case_insensitive: bool) -> tuple[dict[str, int], np.ndarray]:
    """(key -> first row, canonical row of every restricted row)."""
    ok: dict[str, int] = {}
    keys = [w.upper() if case_insensitive else w for w in list(words)[:restrict]]
    for i, k in enumerate(keys):
        ok.setdefault(k, i)
    return ok, np.array([ok[k] for k in keys], dtype=np.int64)


def _matrix(words: Sequence[str], vectors: Any, restrict: int) -> np.ndarray:
    if len(words) != len(vectors):
        raise ExplorerError(f"{len(words)} words for {len(vectors)} vectors")
    if restrict < 1:
        raise ExplorerError("restrict_vocab must be at least 1")
    return np.asarray(vectors[:restrict], dtype=np.float32)


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExplorerError(f"{what} file not found: {path}")
    return path


# -- analogies -------------------------------------------------------------------------


def read_analogies(path: str | Path, case_insensitive: bool = True) -> list[tuple[str, list[Quad]]]:
    """Sections of a questions-words file, each with its four-word questions."""
    path = _existing(path, "analogy")
    sections: list[tuple[str, list[Quad]]] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ExplorerError(f"{path}, line {line_no + 1}: not UTF-8 text") from None
            if line.startswith(": "):
                sections.append((line.lstrip(": ").strip(), []))
                continue
            if not sections:
                raise ExplorerError(f"{path}, line {line_no + 1}: a question before the first ': section' line")
            parts = [w.upper() for w in line.split()] if case_insensitive else line.split()
            if len(parts) == 4:
                sections[-1][1].append(tuple(parts))  # type: ignore[arg-type]
    return sections


def _answers(vectors: np.ndarray, canon: np.ndarray, q: np.ndarray, progress: Progress | None = None) -> np.ndarray:
    """Canonical row of gensim's answer for each question row (a, b, c) of ``q`` (-1: none);
    ``progress("analogies", done, total)`` after each batch."""
    with np.errstate(divide="ignore", invalid="ignore"):
        norms = np.linalg.norm(vectors, axis=1)
        unit = vectors / norms[:, None]
    r = len(vectors)
    out = np.full(len(q), -1, dtype=np.int64)
    step = max(1, min(4096, SCORES_PER_BATCH // r))
    buf = np.empty((min(step, len(q)), r), dtype=np.float32)  # reused: fresh pages cost more than the product
    for s in range(0, len(q), step):
        a, b, c = q[s : s + step].T
        scores = np.matmul((unit[b] + unit[c]) - unit[a], vectors.T, out=buf[: len(a)])
        with np.errstate(divide="ignore", invalid="ignore"):
            scores /= norms  # as gensim: dot with the raw vectors, then divide by their norms
        out[s : s + step] = _pick(topk_dense(scores, TOP + 3)[1], canon, a, b, c)
        if progress:
            progress("analogies", min(s + step, len(q)), len(q))
    return out


def _pick(top: np.ndarray, canon: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """gensim's choice among the best rows ``top`` (best first) of each question."""
    inputs = (top == a[:, None]) | (top == b[:, None]) | (top == c[:, None])
    kept = ~inputs & (np.cumsum(~inputs, axis=1) <= TOP)  # most_similar's topn=5 results
    words = canon[top]
    ok = kept & (words != a[:, None]) & (words != b[:, None]) & (words != c[:, None])
    first = np.argmax(ok, axis=1)
    last = top.shape[1] - 1 - np.argmax(kept[:, ::-1], axis=1)
    pos = np.where(ok.any(axis=1), first, last)
    rows = np.arange(len(top))
    return np.where(kept.any(axis=1), words[rows, pos], -1)


def evaluate_analogies(
    words: Sequence[str], vectors: Any, path: str | Path | None = None, *,
    restrict_vocab: int = RESTRICT, case_insensitive: bool = True, progress: Progress | None = None,
) -> AnalogyResult:
    """Analogy accuracy of row i = ``words[i]`` (see the module docstring); ``progress(label,
    done, total)`` is called as the questions are scored."""
    path = path or default_file("analogies")
    if path is None:
        raise ExplorerError(f"no analogy file given and gensim's {ANALOGY_FILE} is not installed")
    sections = read_analogies(path, case_insensitive)
    matrix = _matrix(words, vectors, restrict_vocab)
    ok, canon = _vocab(words, restrict_vocab, case_insensitive)
    quads = [(k, quad) for k, (_, qs) in enumerate(sections) for quad in qs]
    known = [(k, quad) for k, quad in quads if all(w in ok for w in quad)]
    ids = np.array([[ok[w] for w in quad] for _, quad in known], dtype=np.int64).reshape(-1, 4)
    answers = _answers(matrix, canon, ids[:, :3], progress) if len(ids) else np.zeros(0, np.int64)
    results: list[list[tuple[Quad, bool]]] = [[] for _ in sections]
    for (k, quad), right in zip(known, answers == ids[:, 3]):
        results[k].append((quad, bool(right)))
    scores = [_section(name, r) for (name, _), r in zip(sections, results)]
    total = _section("Total accuracy", [(q, True) for s in scores for q in s.correct_items]
                     + [(q, False) for s in scores for q in s.incorrect_items])
    return AnalogyResult(str(path), tuple(scores), total, len(quads), len(quads) - len(known),
                         restrict_vocab, case_insensitive)


def _section(name: str, results: list[tuple[Quad, bool]]) -> SectionScore:
    good = tuple(q for q, r in results if r)
    bad = tuple(q for q, r in results if not r)
    return SectionScore(name, len(good), len(bad), good, bad)


# -- word pairs ------------------------------------------------------------------------


def read_pairs(path: str | Path, delimiter: str = "\t", case_insensitive: bool = True) -> list[tuple[str, str, float]]:
    """(word1, word2, gold score) of the valid lines; comments and malformed lines skipped."""
    path = _existing(path, "word-pair")
    out = []
    try:
        lines = path.read_text(encoding="utf8").split("\n")  # universal newlines, as gensim reads it
    except UnicodeDecodeError:
        raise ExplorerError(f"{path}: not UTF-8 text") from None
    for line in lines:
        if not line or line.startswith("#"):
            continue
        parts = line.split(delimiter)
        if len(parts) != 3:
            continue
        a, b, sim = (p.upper() for p in parts) if case_insensitive else parts
        try:
            out.append((a, b, float(sim)))
        except ValueError:
            continue
    return out


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties getting the mean of their ranks (scipy's ``method='average'``)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]] if len(xs) else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(xs)]
    ranks = np.empty(len(xs), dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r (nan for a constant input)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0 or ny == 0:
        return float("nan")
    return float(np.clip(np.dot(xm / nx, ym / ny), -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(rankdata(x), rankdata(y))


def evaluate_pairs(
    words: Sequence[str], vectors: Any, path: str | Path | None = None, *,
    restrict_vocab: int = RESTRICT, case_insensitive: bool = True, delimiter: str = "\t",
) -> PairsResult:
    """Correlation of the cosines of word pairs with human scores (``evaluate_word_pairs``)."""
    path = path or default_file("pairs")
    if path is None:
        raise ExplorerError(f"no word-pair file given and gensim's {PAIR_FILES[0]} is not installed")
    pairs = read_pairs(path, delimiter, case_insensitive)
    matrix = _matrix(words, vectors, restrict_vocab)
    ok, _ = _vocab(words, restrict_vocab, case_insensitive)
    known = [(ok[a], ok[b], s) for a, b, s in pairs if a in ok and b in ok]
    if not known:
        raise ExplorerError(f"no valid similarity judgements in {path}: bad format, or every pair out of vocabulary")
    ia, ib, gold = (np.array(col) for col in zip(*known))
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    model = np.einsum("ij,ij->i", unit[ia], unit[ib])
    oov = len(pairs) - len(known)
    return PairsResult(str(path), pearson(gold, model), spearman(gold, model), 100.0 * oov / len(pairs),
                       len(known), oov)


def evaluate_files(words: Sequence[str], vectors: Any, analogies: str = "", pairs: str = "") -> dict[str, Any]:
    """Short results for the analogy file and each word-pair file (comma-separated): ``""``
    = gensim's files if installed, ``"-"`` = none. Keys ``analogy`` and each pair file's
    stem; a pair file with no pair in the vocabulary gets ``{"error": ...}``."""
    out: dict[str, Any] = {}
    path = None if analogies == "-" else (analogies or default_file("analogies"))
    if path:
        r = evaluate_analogies(words, vectors, path)
        out["analogy"] = {"accuracy": r.total.accuracy, "correct": r.total.correct,
                          "questions": r.total.correct + r.total.incorrect, "oov_ratio": r.oov_ratio}
    files = [] if pairs == "-" else ([p for p in pairs.split(",") if p] if pairs else default_files("pairs"))
    for p in files:
        try:
            q = evaluate_pairs(words, vectors, p)
            out[Path(p).stem] = {"pearson": q.pearson, "spearman": q.spearman, "oov_ratio": q.oov_ratio}
        except ExplorerError as exc:
            if not Path(p).expanduser().is_file():
                raise
            out[Path(p).stem] = {"error": str(exc)}
    return out
