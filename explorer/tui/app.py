"""``explorer tui``: the app is thin; each screen (tab) owns its handlers and workers.

Opens without importing torch: a screen imports it when it needs a model (lens,
hidden-state neighbours). Screens call the services from worker threads; the catalog
itself makes that safe (it owns its connections), so there is no app-wide lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, TabbedContent, TabPane

from explorer.tui.screens.base import Pane
from explorer.tui.screens.help import HelpScreen
from explorer.tui.screens.sets import SetsPane

TABS = ("sets", "analogy", "neighbours", "lens", "experiments", "sql")
TITLES = {"sets": "Vector sets", "analogy": "Analogy", "neighbours": "Neighbours", "lens": "Lens",
          "experiments": "Experiments", "sql": "SQL"}


class ExplorerApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "explorer"
    BINDINGS = [
        *[Binding(str(n + 1), f"show('{tab}')", tab.capitalize(), show=False) for n, tab in enumerate(TABS)],
        *[Binding(f"f{n + 2}", f"show('{tab}')", tab.capitalize(), show=n < 6) for n, tab in enumerate(TABS)],
        Binding("question_mark,f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, engine, model: str | None = None, experiments: list[str] | None = None,
                 expression: str = "woman - man + king", expect: str = "queen"):
        super().__init__()
        self.engine = engine
        self.start_model = model
        self.experiments = experiments
        self.expression, self.expect = expression, expect
        self._runners = None
        self._runners_made = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="sets", id="tabs"):
            for n, tab in enumerate(TABS):
                with TabPane(f"{n + 1} {TITLES[tab]}", id=tab):
                    if tab == "sets":
                        yield SetsPane()
        yield Footer()

    def _make(self, tab: str) -> Pane:
        """A tab's pane; its module (and the services behind it) is imported on first use."""
        if tab == "analogy":
            from explorer.tui.screens.analogy import AnalogyPane

            return AnalogyPane(self.expression, self.expect)
        if tab == "experiments":
            from explorer.tui.screens.experiments import ExperimentsPane

            return ExperimentsPane(self.experiments)
        if tab == "neighbours":
            from explorer.tui.screens.neighbours import NeighboursPane

            return NeighboursPane()
        if tab == "lens":
            from explorer.tui.screens.lens import LensPane

            return LensPane()
        if tab == "sql":
            from explorer.tui.screens.sql import SqlPane

            return SqlPane()
        return SetsPane()

    async def _ensure(self, tab: str) -> Pane:
        """Screens other than the first are built when first shown: the app opens fast."""
        pane = self.query_one(f"#{tab}", TabPane)
        found = pane.query(Pane)
        if found:
            return found.first()
        widget = self._make(tab)
        await pane.mount(widget)
        return widget

    @property
    def runners(self):
        """Models loaded for forward passes, kept while the app runs (made on first use)."""
        with self._runners_made:  # two panes' workers may ask at once
            if self._runners is None:
                from explorer.services.states import Runners

                self._runners = Runners(self.engine)
        return self._runners

    def on_mount(self) -> None:
        self.sub_title = str(self.engine.root)
        self.query_one(SetsPane).focus_first()

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            await self._ensure(event.pane.id)

    async def action_show(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        (await self._ensure(tab)).focus_first()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


def make_app(root: Path | None = None, backend: str = "auto", *, model: str | None = None,
             experiments: list[str] | None = None, expression: str = "woman - man + king",
             expect: str = "queen") -> ExplorerApp:
    """The app over the data root ``root``; tests build it on small data."""
    from explorer.services.engine import Engine

    return ExplorerApp(Engine(root, backend=backend), model=model, experiments=experiments, expression=expression,
                       expect=expect)
