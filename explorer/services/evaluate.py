"""``explorer evaluate`` (gensim's analogy and word-pair benchmarks over a stored set) and
``explorer directions`` (concept directions of a vocabulary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.query import evaluate as ev
from explorer.query.directions import (
    ConceptPairs, VocabularyDirections, align, concept_directions, default_pairs_path, load_pairs,
)
from explorer.query.vocab import VARIANTS
from explorer.services.engine import Engine
from explorer.store.tokens import token_texts

__all__ = ["evaluate_set", "evaluation_files", "vocabulary_directions"]


def evaluation_files(analogies: Path | None, pairs: list[Path] | None) -> tuple[Path | None, list[Path]]:
    """The files to score with; gensim's when none is given. Missing or malformed files
    (binary, not UTF-8, wrong columns) are one-line errors before any set is opened."""
    if analogies is None and not pairs:
        found_a, found_p = ev.default_file("analogies"), ev.default_files("pairs")
        if found_a is None and not found_p:
            raise ExplorerError("no evaluation files: give --analogies FILE and/or --pairs FILE (gensim's test files were not found)")
        return found_a, found_p
    for p in ([analogies] if analogies else []) + list(pairs or []):
        if not p.is_file():
            raise ExplorerError(f"evaluation file not found: {p}")
    if analogies is not None and not any(qs for _, qs in ev.read_analogies(analogies)):
        raise ExplorerError(f"{analogies}: no analogy questions (': section' lines, then 'a b c d' lines)")
    for p in pairs or []:
        if not ev.read_pairs(p):
            raise ExplorerError(f"{p}: no word pairs (lines 'word1<TAB>word2<TAB>score')")
    return analogies, list(pairs or [])


def evaluate_set(engine: Engine, model: str | None, vectors: str, analogy_file: Path | None, pair_files: list[Path],
             restrict: int, *, report: Report = lambda s: None, progress: Progress | None = None) -> dict[str, Any]:
    """Scores as gensim computes them: ``analogies`` (an AnalogyResult or absent) and
    ``pairs`` (a PairsResult per file, or ``{"path", "error"}`` when none can be scored)."""
    with engine.catalog.session():
        s = engine.open_set(model, vectors, report=report, progress=progress)
        report(f"reading the {s.vectors.n_rows:,} token texts of {s.model.name}")
        words = _words(engine, s.model.model_id, s.vectors.n_rows)
    out: dict[str, Any] = {"model": s.model.name, "vectors": s.row.name, "rows": s.vectors.n_rows, "restrict_vocab": restrict}
    if analogy_file is not None:
        report(f"scoring the questions of {analogy_file.name} against {min(restrict, s.vectors.n_rows):,} rows")
        out["analogies"] = ev.evaluate_analogies(words, s.vectors.vectors, analogy_file, restrict_vocab=restrict,
                                                 progress=progress)
    if pair_files:
        report(f"scoring the word pairs of {', '.join(p.name for p in pair_files)}")
    out["pairs"] = [_pairs(words, s.vectors.vectors, p, restrict) for p in pair_files]
    return out


def _pairs(words: list[str], vectors: Any, path: Path, restrict: int) -> Any:
    try:
        return ev.evaluate_pairs(words, vectors, path, restrict_vocab=restrict)
    except ExplorerError as exc:
        if not path.is_file():
            raise
        return {"path": str(path), "error": str(exc)}


def _words(engine: Engine, model_id: int, n_rows: int) -> list[str]:
    """Row i's word: token i's text without surrounding whitespace (``<row i>`` if absent)."""
    rows = token_texts(engine.catalog, model_id, n_rows)
    words = [f"<row {i}>" for i in range(n_rows)]
    for i, text in rows:
        words[i] = (text or "").strip()
    return words


def vocabulary_directions(engine: Engine, model: str | None = None, pairs: Path | str | None = None,
                          variant: str = "auto", *, report: Report | None = None,
                          progress: Progress | None = None) -> VocabularyDirections:
    """Resolve the pair words of ``pairs`` (default: the bundled list) with ``engine`` and
    measure every concept in the model's ``input`` and ``output`` sets.

    A word that is not a single token (or unknown) drops its pair; a pair whose two words
    are the same token is dropped too.
    """
    if variant not in VARIANTS:
        raise ExplorerError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    path = Path(pairs) if pairs else default_pairs_path()
    words = load_pairs(path)
    with engine.catalog.session():
        s_in = engine.open_set(model, "input", report=report, progress=progress)
        try:
            s_out = engine.open_set(s_in.model.name, "output")
        except ExplorerError:
            s_out = None
    cache: dict[str, int | str] = {}

    def token(word: str) -> int | str:  # a token id, or why not
        if word not in cache:
            try:
                r = engine.resolve(s_in, word, variant, "refuse")
                cache[word] = r.token_ids[0] if r.single else f"{word!r} is {len(r.token_ids)} tokens"
            except ExplorerError as exc:
                cache[word] = str(exc).split(";")[0]
        return cache[word]

    concepts = []
    for name, plist in words.items():
        used, skipped = [], []
        for a, b in plist:
            ta, tb = token(a), token(b)
            if isinstance(ta, str) or isinstance(tb, str):
                skipped.append(f"{a}/{b}: {ta if isinstance(ta, str) else tb}")
            elif ta == tb:
                skipped.append(f"{a}/{b}: same token {ta}")
            else:
                used.append((a, b, int(ta), int(tb)))
        concepts.append(ConceptPairs(name, len(plist), tuple(used), tuple(skipped)))
    ids = {c.name: [(p[2], p[3]) for p in c.pairs] for c in concepts}
    notes = []
    rep_in = concept_directions(s_in.vectors.vectors, ids)
    tied = bool(s_out is not None and (s_out.row.same_as is not None or s_out.row.set_id == s_in.row.set_id))
    if s_out is None:
        rep_out, alignment = None, None
        notes.append(f"{s_in.model.name} has no output vector set; input only")
    elif tied:
        rep_out = rep_in
        alignment = align(s_in.vectors.vectors, s_in.vectors.vectors, ids, tied=True, reports=(rep_in, rep_in))
        notes.append(f"{s_in.model.name} ties its embeddings: the output set is the input set, numbers are identical")
    else:
        rep_out = concept_directions(s_out.vectors.vectors, ids)
        alignment = align(s_in.vectors.vectors, s_out.vectors.vectors, ids, reports=(rep_in, rep_out))
    few = [c.name for c in concepts if len(c.pairs) < 2]
    if few:
        notes.append(f"fewer than 2 usable pairs (no consistency): {', '.join(few)}")
    return VocabularyDirections(s_in.model.name, str(path), tied, tuple(concepts), rep_in, rep_out, alignment,
                                tuple(notes))
