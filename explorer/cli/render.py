"""Tables for people (rich). JSON output lives in the results' ``to_dict``.

Data (token texts, words, expressions, model names) goes into Rich as ``Text`` objects,
never into markup strings: a token like ``[multimodal]`` would otherwise be read as a
style tag and vanish (and ``rich.markup.escape`` does not round-trip backslashes).
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from explorer.services.query import DIAGNOSTICS, QueryResult


def _f(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def _rank(r: int | None) -> str:
    return "-" if r is None else str(r)


def plain(value: object) -> Text:
    """A table cell or line part shown exactly as written (no markup)."""
    return Text(str(value))


def render_query(res: QueryResult, title: str = "Answers", console: Console | None = None) -> None:
    console = console or Console()
    excl = "inputs kept" if res.keep_inputs else "inputs excluded"
    for n in res.notices:
        console.print(Text.assemble(("notice:", "yellow"), " ", n), highlight=False)
    # a heading line, not a table title: a title wider than the narrow table would wrap
    console.print(Text.assemble((f"{title}: {res.expression}", "italic"), "  ",
                                (f"({res.vector_set}, {res.method}, {excl})", "dim")), highlight=False)
    t = Table()
    t.add_column("#", justify="right")
    t.add_column("token")
    t.add_column("id", justify="right")
    t.add_column("cosine" if res.method == "3cosadd" else "3cosmul", justify="right")
    for h in res.results:
        t.add_row(str(h.rank), plain(repr(h.token)), str(h.token_id), _f(h.score))
    console.print(t)

    t = Table(title="Inputs: resolution, and rank if kept", title_justify="left")
    for col in ("word", "token", "id", "weight", "rank if kept", "score", "variant", "other variants"):
        t.add_column(col, justify="right" if col in ("id", "weight", "rank if kept", "score") else "left")
    for i, r in zip(res.inputs, res.resolutions):
        alts = ", ".join(f"{a!r}" for a, _ in r.alternatives[:4])
        tid = str(i.token_id) if i.token_id is not None else "+".join(map(str, i.token_ids))
        t.add_row(plain(i.word), plain(repr(i.token)), tid, f"{i.weight:g}", _rank(i.rank_if_kept), _f(i.score),
                  plain(i.variant), plain(alts))
    console.print(t)

    if res.expected is not None:
        e = res.expected
        t = Table(title=plain(f"Expected {e.word!r} ({e.token!r})"), title_justify="left")
        for col in ("rank, inputs excluded", "rank, inputs kept", "rank, last term alone", "score"):
            t.add_column(col, justify="right")
        t.add_row(_rank(e.rank_excluded), _rank(e.rank_kept), _rank(e.baseline_rank), _f(e.score))
        console.print(t)
    if res.diagnostics:
        t = Table(title="Diagnostics (raw vectors)", title_justify="left")
        t.add_column("measure")
        t.add_column("value", justify="right")
        t.add_column("meaning", style="dim")
        for name, value in res.diagnostics.items():
            t.add_row(plain(name), _f(value), plain(DIAGNOSTICS.get(name, "")))
        console.print(t)
        oc = res.diagnostics.get("offset_cosine")
        if oc is not None and res.expected is not None and res.expected.rank_excluded == 1 and oc < 0.5:
            console.print(
                f"[yellow]note:[/] the analogy 'works' (expected word ranked 1 with inputs excluded) although the "
                f"offsets are far from parallel (cosine {oc:.3f}).",
                highlight=False,
            )
