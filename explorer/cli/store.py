"""``explorer export``, ``explorer models`` and ``explorer index ...``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from explorer.core.types import DEFAULT_MODEL
from explorer.cli.common import StageProgress, cli_errors, print_json, state

index_app = typer.Typer(help="Check and rebuild FAISS index files (derived from the catalog's vectors).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("models")(models)
    app.add_typer(index_app, name="index")


@cli_errors
def export(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help=f"{DEFAULT_MODEL} (default, bundled), smollm2-135m, a .gguf file, a local HF model directory, or a cached HF id.")] = DEFAULT_MODEL,
    force: Annotated[bool, typer.Option("--force", help="Redo every step, even those already stored.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Export a model's input embedding and unembedding into FAISS + DuckDB.

    GGUF models are dequantised once into a safetensors cache. A tied unembedding is
    recorded as an alias of the input set, not stored twice; an encoder (no LM head in
    its checkpoint) gets its input embedding only. Re-running a killed export completes
    it; a model already stored and verified is reported without loading it.
    """
    from explorer.services.catalog import export_embeddings

    engine = state(ctx).engine()
    with StageProgress() as sp:
        rep = export_embeddings(engine, model, force=force, report=sp.report, progress=sp.progress)
    if as_json:
        print_json(rep.to_dict())
        return
    done = ", ".join(rep.steps) if rep.steps else "nothing (already stored)"
    tied = {True: "tied (output = input)", False: "untied", None: "no unembedding"}[rep.tied]
    print(
        f"{rep.model}: {rep.vocab_rows:,} x {rep.d_model}, {rep.n_layers} layers, {tied}, embed scale {rep.embed_scale:g}; wrote {done}"
    )


@cli_errors
def models(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List stored models and their vector sets.

    A table on a terminal; piped or redirected, one tab-separated line per model with a
    header line, nothing cut short.
    """
    import sys

    from explorer.services.catalog import model_summary

    engine = state(ctx).engine()
    out = model_summary(engine)
    if as_json:
        print_json({"root": str(engine.root), "models": out})
        return
    header = ("model", "source", "architecture", "layers", "d", "vocab", "tied", "vector sets")
    rows = [_model_cells(m) for m in out]
    if not sys.stdout.isatty():
        print("\t".join(header))
        for cells in rows:
            print("\t".join(" ".join(c.split()) for c in cells))  # no tab or newline inside a field
    else:
        _print_models_table(f"Models in {engine.root}", header, rows)
    if not out:
        print("no models yet: run `explorer export` or `explorer query \"woman - man + king\"`", file=sys.stderr)


def _print_models_table(title: str, header: tuple[str, ...], rows: list[list[str]], console=None) -> None:
    """A table when it fits the terminal, else one block of "field  value" lines per model
    (values wrap, never cut)."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    t = Table(title=Text(title), title_justify="left")
    for col in header:
        t.add_column(col, no_wrap=True, justify="right" if col in ("layers", "d", "vocab") else "left")
    for cells in rows:
        t.add_row(*(Text(c) for c in cells))
    if Measurement.get(console, console.options.update_width(10**5), t).maximum <= console.width:
        console.print(t)
        return
    console.print(Text(title))
    for n, cells in enumerate(rows):
        if n:
            console.print()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for col, c in zip(header, cells):
            grid.add_row(col, Text(c))
        console.print(grid)


_TIED = {True: "yes", False: "no", None: "no unembedding"}


def _model_cells(m: dict) -> list[str]:
    vs = ", ".join(s["name"] + (" (alias)" if s["same_as"] else "") for s in m["vector_sets"])
    vocab = f"{m['vocab']:,}" if m["vocab"] is not None else ""
    return [m["name"], m["source"], m["architecture"] or "", str(m["layers"]), str(m["d_model"]), vocab, _TIED[m["tied"]], vs]


@index_app.command("verify")
@cli_errors
def verify(
    ctx: typer.Context,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Only this model (default: all).")] = None,
    full: Annotated[bool, typer.Option(
        "--full/--quick",
        help="--full (default) reads every file and compares its SHA-256 with the catalog's; --quick compares sizes "
             "and modification times, reading only files whose time changed.",
    )] = True,
) -> None:
    """Check every stored file against the catalog: vector sets (vectors, norms, FAISS
    index), hidden-state layer files and their compressed indexes."""
    from explorer.errors import ExplorerError
    from explorer.services.catalog import verify_files as run

    problems: list[str] = []
    for c in run(state(ctx).engine(), model, full):
        if c.problem is None:
            print(f"ok       {c.label}" + (f" ({c.detail})" if c.detail else ""))
        else:
            problems.append(c.problem)
            print(f"CORRUPT  {c.label}: {c.problem}")
    if len(problems) == 1:
        raise ExplorerError(problems[0])
    if problems:
        raise ExplorerError(f"{len(problems)} stored items failed verification (listed above); first: {problems[0]}")


@index_app.command("rebuild")
@cli_errors
def rebuild(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Model whose indexes to rebuild.")] = DEFAULT_MODEL,
    vectors: Annotated[Optional[str], typer.Option("--vectors", help="Only this vector set (default: all).")] = None,
) -> None:
    """Rebuild FAISS index files from the stored vectors (after corruption or deletion)."""
    from explorer.services.catalog import rebuild_indexes

    engine = state(ctx).engine()
    with StageProgress() as sp:
        for f in rebuild_indexes(engine, model, vectors, progress=sp.progress):
            sp.report(f"rebuilt {f.path} ({f.bytes:,} bytes, sha256 {f.sha256[:12]}…)")
