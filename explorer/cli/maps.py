"""``explorer map``, ``explorer map-path`` and ``explorer compare``: pictures of the space,
and the same question asked of several models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from explorer.cli.common import StageProgress, cli_errors, fail, print_json, state
from explorer.cli.query import JsonOpt, ModelOpt, MultiOpt, VariantOpt, VectorsOpt

PANEL_SELECT = "Which points"
PANEL_AXES = "Custom axes"
PANEL_OUT = "Output"

PngOpt = Annotated[Optional[Path], typer.Option("--png", help="Write a labelled matplotlib figure to this file.", rich_help_panel=PANEL_OUT)]
LabelsOpt = Annotated[int, typer.Option("--labels", min=0, help="Label at most this many points in the figure (named words first).", rich_help_panel=PANEL_OUT)]


def register(app: typer.Typer) -> None:
    app.command("map")(map_cmd)
    app.command("map-path")(map_path)
    app.command("compare")(compare)


@cli_errors
def map_cmd(
    ctx: typer.Context,
    words: Annotated[Optional[list[str]], typer.Argument(help="Words to draw (resolved as in `query`; always shown).")] = None,
    model: ModelOpt = None,
    vectors: VectorsOpt = "input",
    expr: Annotated[Optional[str], typer.Option("--expr", help="Also draw this expression's top -k answers and its input words.", rich_help_panel=PANEL_SELECT)] = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Answers of --expr to draw.", rich_help_panel=PANEL_SELECT)] = 30,
    where: Annotated[Optional[str], typer.Option("--where", help="Also draw every token matching this SQL predicate on the tokens table, e.g. \"script = 'cjk'\".", rich_help_panel=PANEL_SELECT)] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="pca (exact; default), umap (needs the 'umap' extra) or axes (default when --x/--y are given).")] = None,
    x: Annotated[Optional[str], typer.Option("--x", help="Custom x axis: an expression over raw vectors, e.g. \"woman - man\".", rich_help_panel=PANEL_AXES)] = None,
    y: Annotated[Optional[str], typer.Option("--y", help="Custom y axis, e.g. \"queen - king\". The cosine between the axes is reported.", rich_help_panel=PANEL_AXES)] = None,
    unit: Annotated[bool, typer.Option("--unit", help="With axes: unit-normalise the points first (coordinates become cosines with each axis).", rich_help_panel=PANEL_AXES)] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Draw at most this many points; more are sampled with --seed, and the output says so.", rich_help_panel=PANEL_SELECT)] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed for sampling and UMAP.")] = 0,
    variant: VariantOpt = "auto",
    multi: MultiOpt = "refuse",
    png: PngOpt = None,
    labels: LabelsOpt = 60,
    as_json: JsonOpt = False,
) -> None:
    """A 2-D picture of chosen token vectors: exact PCA, UMAP, or custom axes from word differences.

    Custom axes (like the Embedding Projector's custom projection): x = the projection on
    unit(E(woman) - E(man)), y = on unit(E(queen) - E(king)), raw vectors; the cosine
    between the two axes says whether the offsets are parallel. Prints a terminal scatter
    (or JSON with every coordinate); --png writes a labelled figure. Sampling beyond
    --limit is stated, never silent.
    """
    from explorer.services import maps
    from explorer.services.query import SetChoice, WordRules

    options = maps.MapOptions(set=SetChoice(model=model, vectors=vectors),
                              points=maps.MapPoints(tuple(words or ()), expr, k, where, limit),
                              projection=maps.MapProjection(method, x, y, unit), words=WordRules(variant, multi), seed=seed)
    maps.check_map(options)  # a refused --where is one line before any model loads
    engine = state(ctx).engine()
    with StageProgress() as sp:
        proj = maps.draw_map(engine, options, report=sp.report, progress=sp.progress)
    info = maps.save_map_png(proj, png, labels) if png else None
    if as_json:
        print_json({**proj.to_dict(), "png": info.to_dict() if info else None})
        return
    _print_map(proj, info)


def _print_map(proj, info) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from explorer.services.maps import terminal_scatter

    console = Console()
    console.print(escape(f"{proj.vector_set}: {proj.method}, {proj.sample.shown} points"), highlight=False)
    for note in proj.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if proj.axes:
        a = proj.axes
        console.print(escape(f"axes: x = {a.x} (|dx| = {a.x_norm:.4g}), y = {a.y} (|dy| = {a.y_norm:.4g})"),
                      highlight=False)
    console.print(terminal_scatter(proj.points, axis_titles=proj.axis_titles, zero_lines=proj.method == "axes",
                                   width=_plot_width(console)), highlight=False, markup=False)
    named = [p for p in proj.points if p.group in ("word", "axis")]
    if named:
        t = Table(title="Named words", title_justify="left")
        for col in ("word", "id", "x", "y"):
            t.add_column(col, justify="left" if col == "word" else "right")
        for p in named:
            t.add_row(escape(p.label), "-" if p.token_id is None else str(p.token_id), f"{p.x:.4f}", f"{p.y:.4f}")
        console.print(t)
    if info:
        console.print(info.describe(), highlight=False, markup=False)


@cli_errors
def map_path(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="A prompt, e.g. 'Français: \"fleur\" - 中文: \"花\"\\nFrançais: \"eau\" - 中文: \"'.")],
    model: ModelOpt = None,
    position: Annotated[int, typer.Option("--position", "-p", help="Token position (negative counts from the end; -1 = last).")] = -1,
    landmark: Annotated[Optional[list[str]], typer.Option("--landmark", "-L", help="A landmark word, drawn at its unembedding row (repeatable), e.g. -L water -L 水. Default: the logit lens's top-1 tokens of the later layers.")] = None,
    fit: Annotated[str, typer.Option("--fit", help="Fit the PCA on the path and landmarks together (all) or on the landmarks alone (landmarks, at least 3; the path is projected into their plane).")] = "all",
    variant: VariantOpt = "auto",
    multi: MultiOpt = "refuse",
    png: PngOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The path of one position's hidden state through the layers, among token landmarks.

    Each layer's state is taken after the final norm (what the logit lens decodes),
    landmarks are unembedding rows; all are unit-normalised and one exact PCA is fitted
    on path and landmarks together. Also prints each layer's lens top-1 token and its
    exact cosine with every landmark (the picture is 2-D; the cosines are not).
    """
    from explorer.services import maps
    from explorer.services.query import WordRules

    options = maps.PathOptions(prompt, position, tuple(landmark or ()), fit.lower(), model, WordRules(variant, multi))
    engine = state(ctx).engine()
    with StageProgress() as sp:
        hp = maps.map_path(engine, options, report=sp.report, progress=sp.progress)
    info = maps.save_path_png(hp, png) if png else None
    if as_json:
        print_json({**hp.to_dict(), "png": info.to_dict() if info else None})
        return
    _print_path(hp, maps.path_notes(hp), info)


def _print_path(hp, notes, info) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from explorer.services.maps import terminal_scatter

    console = Console()
    for note in notes:
        console.print(f"[dim]note:[/] {escape(note)}", highlight=False)
    auto = " -- landmarks: the lens's top-1 tokens of the later layers" if hp.landmarks_auto else ""
    t = Table(title=escape(f"{hp.model}: position {hp.position} ({hp.token!r}){auto}"), title_justify="left")
    for col in ("layer", "x", "y", "lens top-1", "p", *(f"cos {lm.word}" for lm in hp.landmarks)):
        t.add_column(escape(col), justify="left" if col == "lens top-1" else "right")
    for v in hp.layers:
        t.add_row(str(v.layer), f"{v.x:.3f}", f"{v.y:.3f}", escape(repr(v.lens_top)), f"{v.lens_prob:.2f}",
                  *(f"{c:.3f}" for c in v.cosines))
    console.print(t)
    console.print(terminal_scatter(hp.points(), axis_titles=hp.axis_titles, max_labels=len(hp.landmarks) + 6,
                                   width=_plot_width(console)), highlight=False, markup=False)
    if info:
        console.print(info.describe(), highlight=False, markup=False)


@cli_errors
def compare(
    ctx: typer.Context,
    expression: Annotated[Optional[str], typer.Argument(help="An expression as in `query`, e.g. \"woman - man + king\" (or use --file).")] = None,
    expect: Annotated[Optional[str], typer.Option("--expect", help="The answer you expect: its ranks and, for b - a + c, the offset and reverse cosines.")] = None,
    models: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="A model to ask (repeatable): stored, bundled, a local Hugging Face dir, or an imported set. Default: gemma3-270m.")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Analogy file: one 'a : b :: c : d' (or 'a b c d') per line; '#' comments and ': section' lines skipped.")] = None,
    method: Annotated[str, typer.Option("--method", help="Scoring: 3cosadd or 3cosmul.")] = "3cosadd",
    vectors: VectorsOpt = "input",
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Answers shown per model.")] = 5,
    variant: VariantOpt = "auto",
    multi: MultiOpt = "refuse",
    as_json: JsonOpt = False,
) -> None:
    """The same analogy asked of several models, in one table; recorded in the catalog.

    Per model: the top answers, the expected word's rank with inputs excluded and kept,
    and the offset and reverse cosines -- the numbers `explorer query` gives. With --file,
    accuracy per model (a word a model lacks counts as a miss, with a note). Rows land in
    the comparisons, comparison_results and comparison_summary tables for `explorer sql`.
    """
    from explorer.services import compare as C
    from explorer.services.query import WordRules

    if (expression is None) == (file is None):
        fail("give exactly one of EXPRESSION or --file FILE", 2)
    if file is not None and expect is not None:
        fail("--expect goes with an EXPRESSION; an analogy file names each expected word", 2)
    question = C.file_question(file) if file else C.expression_question(expression, expect)
    options = C.CompareOptions(tuple(models or ()), vectors, method.lower(), k, WordRules(variant, multi))
    engine = state(ctx).engine()
    with StageProgress() as sp:
        result = C.compare_models(engine, question, options, report=sp.report, progress=sp.progress)
    if as_json:
        print_json(result.to_dict())
        return
    _print_comparison(result)


def _cell(x, digits: int = 3) -> str:
    import math

    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _print_comparison(c, max_items: int = 40) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    how = f"[dim]{c.method}, {c.vectors} vectors, inputs excluded[/]"
    notes: list[str] = []
    if c.kind == "expression":
        t = Table(title=escape(c.source) + (escape(f"  expecting {c.expect!r}") if c.expect else "") + f"  {how}",
                  title_justify="left")
        t.add_column("model", no_wrap=True)
        t.add_column("top answers", no_wrap=True)
        for col in ("rank\nexcl.", "rank\nkept", "offset\ncos", "reverse\ncos"):
            t.add_column(col, justify="right")
        for o in c.outcomes:
            top = "\n".join(f"{h['token']!r} {h['score']:.3f}" for h in o.top) or "-"
            t.add_row(escape(o.model), escape(top), _cell(o.rank_excluded), _cell(o.rank_kept),
                      _cell(o.offset_cosine), _cell(o.reverse_cosine))
            if o.note:
                notes.append(f"{o.model}: {o.note}")
        console.print(t)
    else:
        t = Table(title=f"{escape(c.source)}: accuracy per model  {how}; correct = expected word ranked 1",
                  title_justify="left")
        t.add_column("model", no_wrap=True)
        for col in ("items", "covered", "correct", "acc.\nall", "acc.\ncovered", "acc.\nkept", "mean\noffset cos"):
            t.add_column(col, justify="right")
        for s in c.summaries:
            t.add_row(escape(s.model), str(s.items), str(s.covered), str(s.correct), _cell(s.accuracy),
                      _cell(s.accuracy_covered), _cell(s.accuracy_kept), _cell(s.mean_offset_cosine))
            if s.note:
                notes.append(f"{s.model}: {s.note}")
        console.print(t)
        _print_items(console, c, max_items)
    for n in notes:
        console.print(f"[yellow]note:[/] {escape(n)}", highlight=False)
    console.print(f"[dim]recorded as comparison {c.comparison_id} (explorer sql \"SELECT * FROM comparison_summary "
                  f"WHERE comparison_id = {c.comparison_id}\")[/]", highlight=False)


def _print_items(console, c, max_items: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="Expected word's rank (inputs excluded; ✓ = first)", title_justify="left")
    t.add_column("line", justify="right")
    t.add_column("analogy")
    for m in c.models:
        t.add_column(escape(m), justify="right")
    by = {(o.model, o.item): o for o in c.outcomes}
    lines = sorted({o.item for o in c.outcomes})
    for item in lines[:max_items]:
        first = by[(c.models[0], item)]
        ranks = []
        for m in c.models:
            o = by[(m, item)]
            ranks.append("-" if o.missing else ("✓" if o.correct else _cell(o.rank_excluded)))
        t.add_row(str(item), escape(f"{first.expression} → {first.expected}"), *ranks)
    console.print(t)
    if len(lines) > max_items:
        console.print(f"[dim]({len(lines) - max_items} more items in --json and in comparison_results)[/]")


def _plot_width(console) -> int:
    """Plot cells inside the frame: 72 where the terminal has room, never wider than it."""
    return max(16, min(72, console.width - 2))
