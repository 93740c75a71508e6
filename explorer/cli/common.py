"""Shared CLI plumbing: one-line errors, JSON output, progress on stderr.

Kept import-light: rich and the engine are imported inside functions.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import typer

from explorer.jsonsafe import clean
from explorer.paths import default_root

BACKENDS = ("auto", "numpy", "faiss")


@dataclass
class Globals:
    """The root options, resolved once (``root`` is always a real path)."""

    root: Path = field(default_factory=default_root)
    backend: str = "auto"

    def engine(self):
        from explorer.services.engine import Engine

        return Engine(self.root, backend=self.backend)


def state(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Globals) else Globals()


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def cli_errors(fn: Callable) -> Callable:
    """Turn user errors into one line on stderr and a non-zero exit (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from explorer.errors import ExplorerError

        try:
            return fn(*args, **kwargs)
        except ExplorerError as exc:
            fail(str(exc).replace("\n", " "), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; nothing half-written was kept", 130)
        except MemoryError:
            fail("out of memory; try a smaller batch or vector set", 1)

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(clean(obj), ensure_ascii=False, indent=2) + "\n")


def err_console():
    from rich.console import Console

    return Console(stderr=True)


class StageProgress:
    """Stage messages and progress bars on stderr, for long work (exports, builds)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = err_console()
        self._progress = None
        self._tasks: dict[str, Any] = {}

    def report(self, message: str) -> None:
        if not self.quiet:
            from rich.text import Text

            self.console.print(Text.assemble(("·", "dim"), " ", message), highlight=False)

    def progress(self, label: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                console=self.console, transient=False,
            )
            self._progress.start()
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[label], completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._tasks.clear()

    def __enter__(self) -> "StageProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
