"""``explorer sql`` and ``explorer schema``: ask your own questions of the catalog."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from explorer.cli.common import cli_errors, clean, state


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
    app.command("schema")(schema)


@cli_errors
def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="SQL over the catalog, e.g. \"SELECT model, script, tokens FROM token_scripts\".")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (for people), csv, json or parquet (needs --output).")] = "table",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the result to this file instead of stdout.")] = None,
    write: Annotated[bool, typer.Option("--write", help="Allow changes to the catalog, file access, ATTACH and extensions (default: read-only and sandboxed).")] = False,
    limit: Annotated[int, typer.Option("--max-rows", help="Rows shown in a table (files get all rows).", min=1)] = 200,
) -> None:
    """Run SQL over everything recorded: models, tokens, vector sets, hidden states, lens runs.

    Read-only by default: a query cannot change the catalog, read or write other files,
    attach databases or install extensions unless --write is given. `explorer schema`
    lists the tables and views.
    """
    from explorer.errors import ExplorerError
    from explorer.services.sql import check_output, run_sql, write_parquet, write_text

    fmt = fmt.lower()
    if fmt not in ("table", "csv", "json", "parquet"):
        raise ExplorerError(f"unknown --format {fmt!r}; choose table, csv, json or parquet")
    if fmt == "parquet" and output is None:
        raise ExplorerError("--format parquet needs --output FILE")
    if output is not None:
        check_output(output)  # before the query runs
    engine = state(ctx).engine()
    res = run_sql(engine.root, query, write=write, want_arrays=(fmt == "parquet"))
    if fmt == "parquet":
        write_parquet(res, output)
        print(f"wrote {output}", file=sys.stderr)
        return
    if fmt == "table" and output is None:
        _table(res, limit)
        return
    buf = io.StringIO()
    if fmt == "json" or fmt == "table":
        rows = [dict(zip(res.columns, r)) for r in res.rows]
        buf.write(json.dumps(clean(rows), ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        w = csv.writer(buf, lineterminator="\n")  # as DuckDB's CSV writer and Unix tools
        w.writerow(res.columns)
        w.writerows(res.rows)
    if output is None:
        sys.stdout.write(buf.getvalue())
    else:
        write_text(output, buf.getvalue())
        print(f"wrote {len(res.rows)} rows to {output}", file=sys.stderr)


def _cell(v) -> str:
    return "NULL" if v is None else repr(v) if isinstance(v, str) and v != v.strip() else str(v)


def _table(res, limit: int) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not res.columns:
        print("ok")
        return
    t = Table(show_lines=False)
    for c, ty in zip(res.columns, res.types):  # Text, not markup: data shows as written
        t.add_column(Text(c), justify="right" if any(k in ty for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL")) else "left")
    for r in res.rows[:limit]:
        t.add_row(*(Text(_cell(v)) for v in r))
    Console().print(t)
    more = f" (showing {limit}; use --format csv for all)" if len(res.rows) > limit else ""
    print(f"{len(res.rows)} row{'s' if len(res.rows) != 1 else ''}{more}", file=sys.stderr)


@cli_errors
def schema(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(help="Only this table or view.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the catalog's tables and views with a one-line description and their columns."""
    from explorer.errors import ExplorerError
    from explorer.services.sql import describe_schema

    objs, cols = describe_schema(state(ctx).root)
    by_table: dict[str, list] = {}
    for t, c, ty in cols:
        by_table.setdefault(t, []).append((c, ty))
    if name is not None:
        objs = [o for o in objs if o[0] == name]
        if not objs:
            raise ExplorerError(f"no table or view named {name!r}; run `explorer schema` for the list")
    if as_json:
        from explorer.cli.common import print_json

        print_json([{"name": n, "kind": k, "description": d, "columns": [{"name": c, "type": ty} for c, ty in by_table.get(n, [])]}
                    for n, k, d in objs])
        return
    from rich.console import Console
    from rich.text import Text

    console = Console()
    for n, k, d in objs:
        console.print(Text.assemble((n, "bold"), " ", (f"({k})", "dim"), " ", d), highlight=False)
        cols = [part for c, ty in by_table.get(n, []) for part in (", ", c, " ", (ty.lower(), "dim"))][1:]
        console.print(Text.assemble("    ", *cols), highlight=False)
