"""``explorer query`` and ``explorer neighbours``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from explorer.cli.common import StageProgress, cli_errors, fail, print_json, state
from explorer.core.types import DEFAULT_MODEL

PANEL_WORDS = "Word resolution"
PANEL_FILTER = "Filters"

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help=f"Model name or spec (default: {DEFAULT_MODEL}).")]
VectorsOpt = Annotated[
    str, typer.Option("--vectors", help="Vector set: input (embedding) or output (unembedding / lm_head).")
]
KOpt = Annotated[int, typer.Option("-k", "--top", help="Number of answers.", min=1)]
MethodOpt = Annotated[str, typer.Option("--method", help="Scoring: 3cosadd (sum of unit vectors) or 3cosmul (Levy & Goldberg).")]
KeepOpt = Annotated[
    bool, typer.Option("--keep-inputs", help="Keep the input words among the answers (default: exclude them, as gensim does).")
]
VariantOpt = Annotated[
    str,
    typer.Option(
        "--variant",
        help="Which token a word means: auto (word-initial ' king', else bare 'king', else raw vocabulary string), initial, bare, raw.",
        rich_help_panel=PANEL_WORDS,
    ),
]
MultiOpt = Annotated[
    str,
    typer.Option(
        "--multi", help="A word that is several tokens: refuse (error with suggestions) or average its token vectors.",
        rich_help_panel=PANEL_WORDS,
    ),
]
ScriptOpt = Annotated[
    Optional[str],
    typer.Option("--script", help="Only answers in this script (latin, cjk, cyrillic, greek, ...).", rich_help_panel=PANEL_FILTER),
]
WhereOpt = Annotated[
    Optional[str],
    typer.Option(
        "--where", help="One SQL boolean expression over the tokens table's columns, e.g. \"leading_space AND length(text) > 3\" (see `explorer schema tokens`).",
        rich_help_panel=PANEL_FILTER,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
PANEL_STATES = "Hidden states"
CorpusOpt = Annotated[
    Optional[str], typer.Option("--corpus", help="Stored corpus for --layer (default: the latest).", rich_help_panel=PANEL_STATES)
]


def register(app: typer.Typer) -> None:
    app.command("query")(query)
    app.command("neighbours")(neighbours)
    app.command("neighbors", hidden=True)(neighbours)


@cli_errors
def query(
    ctx: typer.Context,
    expression: Annotated[str, typer.Argument(help="Words joined by + and -, optional weights: \"woman - man + king\", \"0.5*king + 0.5*queen\", '\"花\" - flower + water'.")],
    model: ModelOpt = None,
    vectors: VectorsOpt = "input",
    k: KOpt = 10,
    method: MethodOpt = "3cosadd",
    keep_inputs: KeepOpt = False,
    expect: Annotated[Optional[str], typer.Option("--expect", help="The answer you expect: its ranks (with and without exclusion, and under the last-term-only baseline) and, for b - a + c, the offset diagnostics.")] = None,
    variant: VariantOpt = "auto",
    multi: MultiOpt = "refuse",
    script: ScriptOpt = None,
    where: WhereOpt = None,
    layer: Annotated[Optional[int], typer.Option("--layer", "-l", help="Use the mean hidden state of each token at this layer over a stored corpus (see export-states) instead of --vectors.", rich_help_panel=PANEL_STATES)] = None,
    corpus: CorpusOpt = None,
    center: Annotated[bool, typer.Option("--center", help="With --layer: subtract the layer's mean state over the corpus (BOS at position 0 left out; the one neighbours --center uses, computed once, then stored) from every token mean before cosine.", rich_help_panel=PANEL_STATES)] = False,
    as_json: JsonOpt = False,
) -> None:
    """Vector arithmetic over token embeddings: analogies with honest diagnostics.

    Shows the top answers, the rank each input word would have had if kept, and for an
    analogy b - a + c with --expect d: cos(E(b)-E(a), E(d)-E(c)) (are the offsets
    parallel at all?), cos(E(a), E(b)-E(d)+E(c)), and the expected word's rank with and
    without excluding the inputs and under the baseline "nearest neighbours of c".

    An expression that starts with '-' goes last, after '--' (options before it), or it
    would be read as options: explorer query -k 5 -- "-man + woman".
    """
    from explorer.services import query as svc

    svc.check_where(where)  # a refused --where is one line before any model loads
    if center and layer is None:
        fail("--center needs --layer (it centres the token means of stored hidden states)", 2)
    options = svc.QueryOptions(
        svc.SetChoice(model, vectors, layer, corpus, center), k, method.lower(), keep_inputs, expect,
        svc.WordRules(variant, multi), svc.TokenFilter(script, where),
    )
    engine = state(ctx).engine()
    with StageProgress(quiet=False) as sp:
        result = svc.analogy(engine, expression, options, report=sp.report, progress=sp.progress)
    if as_json:
        print_json(result.to_dict())
    else:
        from explorer.cli.render import render_query

        render_query(result)


@cli_errors
def neighbours(
    ctx: typer.Context,
    word: Annotated[Optional[str], typer.Argument(help="A word (resolved to a token as in `query`); with --layer, a TEXT to run through the model.")] = None,
    token_id: Annotated[Optional[int], typer.Option("--id", help="A token id instead of a word.")] = None,
    expr: Annotated[Optional[str], typer.Option("--expr", help="An expression instead of a word, as in `query`.")] = None,
    model: ModelOpt = None,
    vectors: VectorsOpt = "input",
    k: KOpt = 10,
    keep_inputs: KeepOpt = False,
    variant: VariantOpt = "auto",
    multi: MultiOpt = "refuse",
    script: ScriptOpt = None,
    where: WhereOpt = None,
    layer: Annotated[Optional[int], typer.Option("--layer", "-l", help="Search stored hidden states at this layer: TEXT is run through the model and the state at --position is the query.", rich_help_panel=PANEL_STATES)] = None,
    position: Annotated[Optional[int], typer.Option("--position", "-p", help="With --layer: token position in TEXT (default: last; negative from the end).", rich_help_panel=PANEL_STATES)] = None,
    corpus: CorpusOpt = None,
    index: Annotated[str, typer.Option("--index", help="With --layer: exact, sq8 or ivfpq (built by states-index).", rich_help_panel=PANEL_STATES)] = "exact",
    center: Annotated[bool, typer.Option("--center", help="With --layer: cosine after subtracting the layer's mean state over the corpus (BOS at position 0 left out) from the stored rows and the query; the mean is computed once, then stored. With --index, searches the index built on centred rows (states-index --center).", rich_help_panel=PANEL_STATES)] = False,
    as_json: JsonOpt = False,
) -> None:
    """Nearest tokens by cosine to a word, a token id or an expression, with filters.

    With --layer L, nearest stored hidden states (contexts) to the state of TEXT at
    --position, shown with their document context; --where then filters the
    hidden_states view (lang, document, token, position).
    """
    from explorer.services import query as svc

    svc.check_where(where)  # before any model loads
    if center and layer is None:
        fail("--center needs --layer (it centres stored hidden states)", 2)
    if layer is not None:
        if word is None:
            fail("--layer needs a TEXT argument", 2)
        from explorer.cli.states import state_neighbours_cmd

        state_neighbours_cmd(ctx, word, layer, position, model, corpus, k, where, index, as_json, center)
        return
    given = [x is not None for x in (word, token_id, expr)]
    if sum(given) != 1:
        fail("give exactly one of WORD, --id N or --expr EXPR", 2)
    engine = state(ctx).engine()
    options = svc.QueryOptions(svc.SetChoice(model, vectors), k, keep_inputs=keep_inputs,
                               words=svc.WordRules(variant, multi), tokens=svc.TokenFilter(script, where))
    with StageProgress() as sp:
        if token_id is not None:
            engine.model(model, report=sp.report, progress=sp.progress)
            result = svc.token_neighbours(engine, token_id, options)
        else:
            expression = svc.parse(expr) if expr is not None else svc.Expression((svc.Term(word),))
            result = svc.analogy(engine, expression, options, report=sp.report, progress=sp.progress)
    if as_json:
        print_json(result.to_dict())
    else:
        from explorer.cli.render import render_query

        render_query(result, title="Neighbours")
