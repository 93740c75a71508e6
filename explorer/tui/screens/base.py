"""What every pane shares: workers, stale-result guards, status lines. Screens call the
services from worker threads; the catalog is thread-safe, so there is no lock here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.containers import Vertical
from textual.widgets import DataTable, Select
from textual.worker import Worker, WorkerState

from explorer.errors import ExplorerError

if TYPE_CHECKING:
    from rich.text import Text


def background(**kw: Any):
    """``@work`` in a thread, for every pane's worker. An exception does not end the app
    (Textual's default, with a traceback): the pane shows it as a one-line notification
    (:meth:`Pane.on_worker_state_changed`) and the app goes on."""
    return work(thread=True, exit_on_error=False, **kw)


class Pane(Vertical):
    """A tab's content. Work runs in thread workers; results come back through
    ``call_from_thread`` tagged with a sequence number, and stale ones are dropped."""

    DEFAULT_CSS = "Pane { height: 1fr; }"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._seq: dict[str, int] = {}

    @property
    def engine(self):
        return self.app.engine

    def next_seq(self, key: str) -> int:
        self._seq[key] = self._seq.get(key, 0) + 1
        return self._seq[key]

    def current(self, key: str, seq: int) -> bool:
        return self._seq.get(key) == seq

    def post(self, fn: Callable, *args: Any) -> None:
        """From a worker thread: run ``fn(*args)`` on the UI thread (ignored once the app is closing)."""
        try:
            self.app.call_from_thread(fn, *args)
        except RuntimeError:  # app already stopped
            pass

    def focus_first(self) -> None:
        """Focus this pane's main input (called when its tab is shown)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that raised: one line in a notification, and the app goes on."""
        if event.state != WorkerState.ERROR:
            return
        self.app.notify(error_line(event.worker.error), title="error", severity="error", timeout=10, markup=False)

    @background(group="models")
    def load_models(self, selector: str) -> None:
        """Fill the model chooser ``selector`` from the catalog, off the UI thread."""
        models = [m.name for m in self.engine.models()]
        self.post(self._set_models, selector, models)

    def _set_models(self, selector: str, models: list[str]) -> None:
        sel = self.query_one(selector, Select)
        sel.set_options([(m, m) for m in models])
        if models:  # a changed value posts Select.Changed, which the pane handles
            sel.value = self.app.start_model if self.app.start_model in models else models[0]


def error_line(error: BaseException | None) -> str:
    """A user error as it is; anything else named by its type (a bug, but not a crash)."""
    if isinstance(error, ExplorerError):
        text = str(error)
    else:
        text = f"internal error, please report it: {type(error).__name__}: {error}"
    return text.splitlines()[0] if text.strip() else text


def fill(table: DataTable, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Replace a table's contents. Cells and headers are ``Text``: a DataTable reads a str
    as markup, and data such as the token ``[multimodal]`` would vanish."""
    from rich.text import Text

    table.clear(columns=True)
    table.add_columns(*(Text(str(c)) for c in columns))
    table.add_rows([tuple(Text("" if v is None else str(v), no_wrap=True, end="") for v in r) for r in rows])


def plain(text: str, style: str = "") -> Text:
    """A line for a Static or Label shown exactly as written: data is never read as markup."""
    from rich.text import Text

    return Text(text, style=style)


def fmt(x: float | None, digits: int = 4) -> str:
    import math

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"
