"""``explorer evaluate``: gensim-equal analogy accuracy and word-pair correlations of a stored set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from explorer.cli.common import StageProgress, cli_errors, print_json, state


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app`` (once; calling again does nothing)."""
    if any(c.name == "evaluate" for c in app.registered_commands):
        return
    app.command("evaluate")(evaluate)


@cli_errors
def evaluate(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A model in the store (imported, trained by an experiment, or exported).")],
    analogies: Annotated[Optional[Path], typer.Option("--analogies", help="Analogy questions in gensim's questions-words.txt format (': section' lines, then 'a b c d').")] = None,
    pairs: Annotated[Optional[list[Path]], typer.Option("--pairs", help="Word pairs with a human score, 'w1<TAB>w2<TAB>score' (wordsim353.tsv / simlex999.txt format); repeatable.")] = None,
    vectors: Annotated[str, typer.Option("--vectors", help="Vector set: input (embedding) or output (unembedding).")] = "input",
    restrict: Annotated[int, typer.Option("--restrict", help="Only the first N rows (frequency order for trained sets) count, as gensim's restrict_vocab.", min=1)] = 300_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Score a vector set as gensim does: analogies by 3CosAdd, word pairs by Spearman/Pearson.

    Without --analogies or --pairs, gensim's test files are used (questions-words.txt,
    wordsim353.tsv and simlex999.txt; needs gensim installed). Words are matched
    case-insensitively (the first row of a case variant wins) against each token's text
    with surrounding whitespace removed; questions and pairs with an unknown word are
    skipped, as in gensim's KeyedVectors.evaluate_word_analogies / evaluate_word_pairs.
    """
    from explorer.query import evaluate as ev

    analogy_file, pair_files = _files(analogies, pairs)
    engine = state(ctx).engine()
    try:
        with StageProgress() as sp:
            s = engine.open_set(model, vectors, report=sp.report, progress=sp.progress)
            sp.report(f"reading the {s.vectors.n_rows:,} token texts of {s.model.name}")
            words = _words(engine, s.model.model_id, s.vectors.n_rows)
            out: dict[str, Any] = {"model": s.model.name, "vectors": s.row.name, "rows": s.vectors.n_rows,
                                   "restrict_vocab": restrict}
            if analogy_file is not None:
                sp.report(f"scoring the questions of {analogy_file.name} against {min(restrict, s.vectors.n_rows):,} rows")
                out["analogies"] = ev.evaluate_analogies(words, s.vectors.vectors, analogy_file, restrict_vocab=restrict,
                                                         progress=sp.progress)
            if pair_files:
                sp.report(f"scoring the word pairs of {', '.join(p.name for p in pair_files)}")
            out["pairs"] = [_pairs(ev, words, s.vectors.vectors, p, restrict) for p in pair_files]
    finally:
        engine.close()
    if as_json:
        print_json({**out, "analogies": out["analogies"].to_dict() if "analogies" in out else None,
                    "pairs": [p if isinstance(p, dict) else p.to_dict() for p in out["pairs"]]})
    else:
        _render(out)


def _files(analogies: Path | None, pairs: list[Path] | None) -> tuple[Path | None, list[Path]]:
    """The files to score with; gensim's when none is given. Missing files: one-line errors."""
    from explorer.errors import ExplorerError
    from explorer.query import evaluate as ev

    if analogies is None and not pairs:
        found_a, found_p = ev.default_file("analogies"), ev.default_files("pairs")
        if found_a is None and not found_p:
            raise ExplorerError("no evaluation files: give --analogies FILE and/or --pairs FILE (gensim's test files were not found)")
        return found_a, found_p
    for p in ([analogies] if analogies else []) + list(pairs or []):
        if not p.is_file():
            raise ExplorerError(f"evaluation file not found: {p}")
    # a malformed file (binary, not UTF-8, wrong columns) is one line before the set is opened
    if analogies is not None and not any(qs for _, qs in ev.read_analogies(analogies)):
        raise ExplorerError(f"{analogies}: no analogy questions (': section' lines, then 'a b c d' lines)")
    for p in pairs or []:
        if not ev.read_pairs(p):
            raise ExplorerError(f"{p}: no word pairs (lines 'word1<TAB>word2<TAB>score')")
    return analogies, list(pairs or [])


def _pairs(ev: Any, words: list[str], vectors: Any, path: Path, restrict: int) -> Any:
    """A :class:`PairsResult`, or ``{"path", "error"}`` when no pair can be scored."""
    from explorer.errors import ExplorerError

    try:
        return ev.evaluate_pairs(words, vectors, path, restrict_vocab=restrict)
    except ExplorerError as exc:
        if not path.is_file():
            raise
        return {"path": str(path), "error": str(exc)}


def _words(engine: Any, model_id: int, n_rows: int) -> list[str]:
    """Row i's word: token i's text without surrounding whitespace (``<row i>`` if absent)."""
    rows = engine.catalog.query(
        "SELECT token_id, text FROM tokens WHERE model_id = ? AND token_id >= 0 AND token_id < ? ORDER BY token_id",
        [model_id, n_rows],
    )
    words = [f"<row {i}>" for i in range(n_rows)]
    for i, text in rows:
        words[i] = (text or "").strip()
    return words


def _render(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    a = out.get("analogies")
    if a is not None:
        how = f"({Path(a.path).name}, 3CosAdd, first {out['restrict_vocab']:,} rows)"
        t = Table(title=escape(f"Analogies: {out['model']}/{out['vectors']}") + f"  [dim]{escape(how)}[/]",
                  title_justify="left")
        for col in ("section", "correct", "answered", "accuracy"):
            t.add_column(col, justify="left" if col == "section" else "right")
        for sec in (*a.sections, a.total):
            row = (escape(sec.section), str(sec.correct), str(sec.correct + sec.incorrect), f"{sec.accuracy:.1%}")
            t.add_row(*row, style="bold" if sec is a.total else None)
        console.print(t)
        console.print(f"{a.questions:,} questions, {a.oov:,} skipped for an unknown word ({a.oov_ratio:.1f}%)", highlight=False)
    if out["pairs"]:
        t = Table(title=escape(f"Word pairs: {out['model']}/{out['vectors']}"), title_justify="left")
        for col in ("file", "pairs", "unknown", "Pearson", "Spearman"):
            t.add_column(col, justify="left" if col == "file" else "right")
        for p in out["pairs"]:
            if isinstance(p, dict):
                t.add_row(escape(Path(p["path"]).name), "0", "-", "-", "-")
                console.print(f"[yellow]notice:[/] {escape(p['error'])}", highlight=False)
                continue
            t.add_row(escape(Path(p.path).name), str(p.pairs), f"{p.oov_ratio:.1f}%", f"{p.pearson:.4f}", f"{p.spearman:.4f}")
        console.print(t)
