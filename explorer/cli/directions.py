"""``explorer directions``: is each concept (male -> female, ...) one direction?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from explorer.core.types import DEFAULT_MODEL
from explorer.cli.common import StageProgress, cli_errors, print_json, state

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help=f"Model name or spec (default: {DEFAULT_MODEL}).")]
PairsOpt = Annotated[
    Optional[Path],
    typer.Option("--pairs", help="CSV with header concept,a,b: one counterfactual word pair per row, a -> b "
                 "(default: the bundled list, explorer/data/concept_pairs.csv)."),
]
VariantOpt = Annotated[
    str,
    typer.Option("--variant", help="Which token a word means: auto (word-initial ' king', else bare 'king', else raw), "
                 "initial, bare, raw."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


def register(app: typer.Typer) -> None:
    app.command("directions")(directions)


@cli_errors
def directions(
    ctx: typer.Context,
    model: ModelOpt = None,
    pairs: PairsOpt = None,
    variant: VariantOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Concept directions in the vocabulary: are counterfactual offsets parallel?

    For each concept, the offsets E(b) - E(a) of its word pairs (words that are not a
    single token are skipped): consistency = mean pairwise cosine of the offsets (1 =
    one direction, ~0 = random), leave-one-out = cosine of each offset with the mean of
    the others; then the concept x concept cosines of the mean directions (near 0 =
    orthogonal), in the input embedding and in the unembedding (the same matrix for tied
    models), and how alike the two spaces' cosine structure is.
    """
    from explorer.services.evaluate import vocabulary_directions

    engine = state(ctx).engine()
    with StageProgress() as sp:
        result = vocabulary_directions(engine, model, pairs, variant, report=sp.report, progress=sp.progress)
    if as_json:
        print_json(result.to_dict())
    else:
        render_directions(result)


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def render_directions(res: Any, console: Any = None) -> None:
    """Tables for a :class:`explorer.query.directions.VocabularyDirections`."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    for note in res.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    out = res.output
    t = Table(title=escape(f"Concept directions: {res.model}") + f"  [dim]{escape(f'({Path(res.pairs_file).name})')}[/]",
              title_justify="left")
    t.add_column("concept")
    t.add_column("pairs used", justify="right")
    for col in ("consistency in", "consistency out", "leave-one-out in", "leave-one-out out"):
        t.add_column(col, justify="right")
    for i, c in enumerate(res.concepts):
        ci = res.input.concepts[i]
        co = out.concepts[i] if out else None
        t.add_row(escape(c.name), f"{len(c.pairs)}/{c.given}", _f(ci.consistency), _f(co.consistency if co else None),
                  _f(ci.loo_mean), _f(co.loo_mean if co else None))
    t.add_row("[dim]mean[/]", "", _f(res.input.mean_consistency), _f(out.mean_consistency if out else None), "", "")
    console.print(t)
    skipped = [(c.name, s) for c in res.concepts for s in c.skipped]
    if skipped:
        console.print(f"[dim]skipped {len(skipped)} pairs: "
                      + escape("; ".join(f"{n}: {s}" for n, s in skipped[:12]) + (" ..." if len(skipped) > 12 else ""))
                      + "[/]", highlight=False)
    sets = [("input", res.input)] + ([("output", out)] if out is not None and not res.tied else [])
    for label, rep in sets:
        m = Table(title=f"Cosine of mean concept directions ({label}{', tied' if res.tied else ''}); "
                        f"mean |cos| off the diagonal = {_f(rep.orthogonality)}", title_justify="left")
        m.add_column("")
        for n in rep.names:
            m.add_column(escape(n[:14]), justify="right")
        for n, row in zip(rep.names, rep.cosines):
            m.add_row(escape(n), *(_f(x, 2) for x in row))
        console.print(m)
    a = res.alignment
    if a is not None:
        if a.tied:
            console.print(f"[dim]alignment:[/] {escape(a.note)}", highlight=False)
        else:
            console.print(
                f"[dim]input vs output structure (correlations of cosine matrices):[/] concept x concept "
                f"{_f(a.concept_structure)}, word x word {_f(a.word_structure)}, consistency across concepts "
                f"{_f(a.consistency_correlation)}", highlight=False)
