"""Hidden states: ``export-states``, ``states-index``, ``trajectory``; --layer for neighbours."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from explorer.core.types import DEFAULT_MODEL
from explorer.cli.common import StageProgress, cli_errors, print_json, state

ModelArg = Annotated[Optional[str], typer.Option("--model", "-m", help=f"Model name or spec (default: {DEFAULT_MODEL}).")]
CorpusOpt = Annotated[Optional[str], typer.Option("--corpus", help="Stored corpus name (default: the latest finished one).")]


def loading(name: str):
    """A spinner on stderr while a model loads (5-80 s); it leaves nothing behind, and
    prints nothing at all when stderr is not a terminal."""
    from explorer.cli.common import err_console

    return err_console().status(f"loading {name}...")


def register(app: typer.Typer) -> None:
    app.command("export-states")(export_states)
    app.command("states-index")(states_index)
    app.command("trajectory")(trajectory)
    app.command("states-stats")(states_stats)


@cli_errors
def export_states(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name or spec, as for `export`.")] = DEFAULT_MODEL,
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="One document per line; a .tsv with header 'lang<TAB>text' tags languages. Default: the bundled multilingual sample (en, fr, de, ru, zh).")] = None,
    prompt: Annotated[Optional[List[str]], typer.Option("--prompt", help="A document given inline (repeatable), instead of --corpus.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Corpus name in the store (default: the file's stem).")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="On-disk precision: float32 (exact) or float16 (half the bytes).")] = "float32",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per forward pass.")] = 8,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Truncate documents to this many tokens.")] = 128,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes sharing the document range (each loads the model); with --ray, Ray workers (actors) on the cluster.")] = 1,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Run the forward passes on the Ray cluster at ADDRESS (HEAD:6379), or 'local' to start one here (GPUs where the workers have them); this process writes the store. Needs the ray extra.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Delete a stored corpus of that name and redo it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Run the model over a corpus and store every layer's hidden states.

    Captures the embedding output (layer 0) and each block's output (layers 1..n, before
    the final norm) for every token, with metadata rows (corpus, document, position, token)
    in DuckDB. Batches stream to disk; a killed export resumes where it stopped.
    """
    from explorer.services.states import export_states as run

    with StageProgress() as sp:
        rep = run(model, state(ctx).root, corpus=corpus, prompts=prompt or (), name=name, dtype=dtype,
                  batch_size=batch_size, max_tokens=max_tokens, workers=workers, force=force,
                  report=sp.report, progress=sp.progress, ray=ray)
    if as_json:
        print_json(rep.to_dict())
        return
    speed = f"{rep.tokens_per_second:,.0f} tokens/s in forward passes" if rep.forward_seconds else "nothing new to run"
    print(
        f"{rep.model}/{rep.corpus}: {rep.documents:,} documents, {rep.states:,} tokens x {rep.layers} layers x d={rep.dim} "
        f"({rep.dtype}, {rep.bytes_per_token:,.0f} bytes/token); {speed}"
        + (f"; resumed after {rep.resumed_from:,} tokens" if rep.resumed_from else "")
    )


@cli_errors
def states_index(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help="sq8 (8-bit scalar quantisation) or ivfpq (IVF-PQ, re-ranked exactly).")] = "sq8",
    layer: Annotated[Optional[List[int]], typer.Option("--layer", "-l", help="Layer(s) to index (default: all).")] = None,
    model: ModelArg = None,
    corpus: CorpusOpt = None,
    center: Annotated[bool, typer.Option("--center", help="Index the rows minus the layer's mean state (as neighbours --center scores them); kept beside the raw index of the same layer, used by neighbours --index KIND --center.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Build compressed FAISS indexes over stored hidden states; shows recall@10 vs exact.

    Recall is measured with queries that are not in the index: a seeded split of the
    stored rows (5 %, at least 20, at most 200) left out of training and of the rows
    searched; the kept index then holds every row. --json gives, per layer, recall_at_10,
    queries (how many), recall_queries (which rows: "held-out rows") and centered.
    With --center, recall is against exact centred search."""
    from explorer.services.states import build_state_indexes

    engine = state(ctx).engine()
    with StageProgress() as sp:
        reports = build_state_indexes(engine, model=model, corpus=corpus, layers=layer, kind=kind, progress=sp.progress, center=center)
    if as_json:
        print_json({"indexes": reports})
        return
    from rich.console import Console
    from rich.table import Table

    how = f"{reports[0]['queries']} {reports[0]['recall_queries']} as queries, not in the index searched"
    what = f"{kind} indexes on centred rows" if center else f"{kind} indexes"
    t = Table(title=f"{what} (recall@10 against exact search; {how})", title_justify="left")
    for col in ("layer", "rows", "recall@10", "index bytes", "exact bytes", "build s"):
        t.add_column(col, justify="right")
    for r in reports:
        t.add_row(str(r["layer"]), f"{r['rows']:,}", f"{r['recall_at_10']:.4f}", f"{r['bytes']:,}", f"{r['exact_bytes']:,}", f"{r['seconds']:.2f}")
    Console().print(t)


@cli_errors
def states_stats(
    ctx: typer.Context,
    model: ModelArg = None,
    corpus: CorpusOpt = None,
    layer: Annotated[Optional[List[int]], typer.Option("--layer", "-l", help="Layer(s) to measure (default: all).")] = None,
    pairs: Annotated[int, typer.Option("--pairs", min=1, help="Random pairs of states per layer for the mean cosines.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the pair sampling (layer L uses seed + L).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: {layers: [{layer, mean_cos_raw, mean_cos_centered, ...}]}.")] = False,
) -> None:
    """How anisotropic a stored corpus's hidden states are, layer by layer.

    Mean cosine of random pairs of states, raw and after centring (subtracting the
    layer's mean state over the corpus, position 0 left out: the BOS state's norm
    dwarfs the others' and would dominate the mean), the mean and spread of the states' norms, and
    the share of the centred variance along the top 1 and top 10 principal directions.
    A raw mean cosine near 1 means one shared direction dominates: compare centred
    scores (`neighbours --layer L --center`). Each layer's mean is stored for reuse.
    """
    from explorer.services.anisotropy import states_stats as run

    with StageProgress() as sp:
        rep = run(state(ctx).engine(), model=model, corpus=corpus, layers=layer, pairs=pairs, seed=seed, progress=sp.progress)
    if as_json:
        print_json(rep.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    from rich import box

    console = Console()
    wide = console.width >= 60  # below that the spread of the norms is left out (it is in --json)
    t = Table(title=f"{rep.model}/{rep.corpus}: {rep.states:,} states, {rep.pairs:,} random pairs per layer; "
                    "mean cosine raw and centred, norms, variance share of the top 1 and 10 directions",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("layer", "raw", "centred", "norm", "sd", "top1", "top10") if wide else ("L", "raw", "ctr", "norm", "top1", "top10"):
        t.add_column(col, justify="right")
    for v in rep.layers:
        norms = (_compact(v.norm_mean), _compact(v.norm_std)) if wide else (_compact(v.norm_mean),)
        t.add_row(str(v.layer), f"{v.mean_cos_raw:.3f}", f"{v.mean_cos_centered:.3f}", *norms,
                  f"{v.top1_variance:.2f}", f"{v.top10_variance:.2f}")
    console.print(t)


def _compact(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


@cli_errors
def trajectory(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="A prompt, e.g. 'Français: \"fleur\" - 中文: \"'.")],
    position: Annotated[Optional[int], typer.Option("--position", "-p", help="Token position (default: the last; negative counts from the end).")] = None,
    model: ModelArg = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Tokens per layer.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: {layers: [{layer, lens_top, embedding_top}]}.")] = False,
    lens: Annotated[str, typer.Option("--lens", help="logit, or tuned: the model's learned lens from `explorer lens train`.")] = "logit",
) -> None:
    """One position, layer by layer: logit-lens tokens and nearest input embeddings.

    (a) softmax(unembed(final_norm(h))) and (b) cosine to the input embeddings, for the
    embedding output (layer 0) and every block: where does a French->Chinese prompt
    pass through English?
    """
    from explorer.services.lens import TrajectoryOptions, trajectory as run

    engine = state(ctx).engine()
    with StageProgress() as sp:
        tr = run(engine, TrajectoryOptions(text, position, model, k, lens=lens), report=sp.report, progress=sp.progress,
                 loading=loading)
    if as_json:
        print_json(tr.to_dict())
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text(f"{tr.model}: position {tr.position} ({tr.token!r}) of {text!r}"), title_justify="left")
    t.add_column("layer", justify="right")
    t.add_column(f"{lens} lens (prob)")
    t.add_column("nearest input embeddings (cosine)")
    for v in tr.layers:  # data as Text: a token like '[multimodal]' is not markup
        lens = "  ".join(f"{tok!r} {p:.2f}" for tok, _, p in v.lens_top)
        near = "  ".join(f"{tok!r} {s:.2f}" for tok, _, s in v.embedding_top)
        t.add_row(str(v.layer), Text(lens), Text(near))
    Console().print(t)


def state_neighbours_cmd(ctx, text: str, layer: int, position: Optional[int], model, corpus, k: int, where, index: str,
                         as_json: bool, center: bool = False) -> None:
    from explorer.services.states import StateQuery, neighbours_of_text

    q = StateQuery(text, (layer,), position, model, corpus, k, where, index, center)
    with StageProgress() as sp:  # a bar only if a layer's mean takes a while to compute (first --center)
        res = neighbours_of_text(state(ctx).engine(), q, loading=loading, progress=sp.progress)[0]
    m, c, p = res.model, res.corpus, res.position
    if as_json:
        print_json(res.to_dict())
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    title = Text.assemble(f"Nearest states at layer {layer} to {res.token!r} (position {p}) of {text!r}  ",
                          (f"({m}/{c}, {index}{', centred on the layer mean' if res.centered else ''})", "dim"))
    t = Table(title=title, title_justify="left")
    score = "centred cos" if res.centered else "cosine"
    for col in ("#", score, "token", "doc", "pos", "lang", "context"):
        t.add_column(col, justify="right" if col in ("#", score, "doc", "pos") else "left")
    for h in res.results:  # data as Text: contexts mark the hit as [token], which markup would eat
        t.add_row(str(h.rank), f"{h.score:.4f}", Text(repr(h.token)), str(h.document), str(h.position),
                  Text(h.lang or ""), Text(h.snippet))
    Console().print(t)
