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
    from explorer.services.evaluate import evaluate_set, evaluation_files

    analogy_file, pair_files = evaluation_files(analogies, pairs)
    engine = state(ctx).engine()
    with StageProgress() as sp:
        out = evaluate_set(engine, model, vectors, analogy_file, pair_files, restrict, report=sp.report, progress=sp.progress)
    if as_json:
        print_json({**out, "analogies": out["analogies"].to_dict() if "analogies" in out else None,
                    "pairs": [p if isinstance(p, dict) else p.to_dict() for p in out["pairs"]]})
    else:
        _render(out)


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
