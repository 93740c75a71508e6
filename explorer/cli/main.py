"""The ``explorer`` command: sub-commands composed here, each in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from explorer import __version__
from explorer.cli import directions as directions_cmds
from explorer.cli import evaluate as evaluate_cmds
from explorer.cli import experiment as experiment_cmds
from explorer.cli import lens as lens_cmds
from explorer.cli import maps as maps_cmds
from explorer.cli import query as query_cmds
from explorer.cli import sql as sql_cmds
from explorer.cli import states as states_cmds
from explorer.cli import vectors as vectors_cmds
from explorer.cli import store as store_cmds
from explorer.cli import tui as tui_cmds
from explorer.cli.common import BACKENDS, Globals, fail
from explorer.cli.rootgroup import ExplorerGroup

app = typer.Typer(
    name="explorer",
    cls=ExplorerGroup,
    help=(
        "Look inside the embedding spaces of language models.\n\n"
        "Token embeddings (input and unembedding) are exported from Hugging Face models into "
        "FAISS indexes with a DuckDB catalog; analogy and neighbour queries run over them. "
        "The default model is Gemma 3 270M (bundled; converted and indexed on first use)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"explorer {__version__}")
        raise typer.Exit()


@app.callback()
def callback(
    ctx: typer.Context,
    root: Annotated[
        Optional[Path],
        typer.Option(
            "--root", envvar="EXPLORER_HOME", help="Data root (catalog.duckdb, index files, model caches). Default: $EXPLORER_HOME, else indexes/ of "
            "the checkout, else ./indexes.",
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(help="Search backend: auto (measured choice: numpy for small batches, FAISS for large ones or on a GPU), numpy or faiss."),
    ] = "auto",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from explorer.paths import default_root

    resolved = root.expanduser() if root is not None else default_root()
    if resolved.exists() and not resolved.is_dir():
        fail(f"the data root {str(resolved)!r} (--root or $EXPLORER_HOME) is a file, not a directory", 2)
    if backend.lower() not in BACKENDS:
        fail(f"unknown --backend {backend!r}; choose {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}", 2)
    ctx.obj = Globals(root=resolved, backend=backend.lower())


query_cmds.register(app)
store_cmds.register(app)
states_cmds.register(app)
lens_cmds.register(app)
sql_cmds.register(app)
vectors_cmds.register(app)
experiment_cmds.register(app)
tui_cmds.register(app)
maps_cmds.register(app)
directions_cmds.register(app)
evaluate_cmds.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
