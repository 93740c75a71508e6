"""``explorer tui``: the terminal UI."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from explorer.cli.common import cli_errors, state


def register(app: typer.Typer) -> None:
    @app.command("tui")
    @cli_errors
    def tui(
        ctx: typer.Context,
        model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model to start with (default: the first stored).")] = None,
    ) -> None:
        """Browse everything interactively: vector sets and tokens, analogies as you type,
        neighbours per layer, the lens, experiments and SQL (press ? for keys)."""
        from explorer.services.catalog import check_readable
        from explorer.tui.app import make_app

        g = state(ctx)
        check_readable(g.engine())  # a corrupt or foreign catalog file: one line here, not an error in every screen
        make_app(g.root, g.backend, model=model).run()
