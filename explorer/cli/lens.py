"""``explorer lens translate|repeat|cloze|prompt``: language attribution with the logit lens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from explorer.cli.common import StageProgress, cli_errors, print_json, state
from explorer.services.lens import LensTask, bundled_count

lens_app = typer.Typer(
    help="Language attribution per layer with the logit lens (Wendler et al. 2024): which language does each layer favour?",
    no_args_is_help=True,
)

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name or spec (default: gemma3-270m).")]
ShotsOpt = Annotated[int, typer.Option("--shots", min=0, help="Solved examples before the query (cloze uses at most 2).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for choosing the examples.")]
WordsOpt = Annotated[Optional[Path], typer.Option("--words", help=f"Word list CSV: header 'concept,en,fr,de,ru,zh' (a subset of languages is fine). Default: the bundled {bundled_count()} concepts.")]
StrategyOpt = Annotated[str, typer.Option("--strategy", help="Token sets: prefixes (all vocabulary prefixes with and without the word-start marker, as the paper), first (first token), single (single-token words only).")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="Use at most this many entries.")]
PngOpt = Annotated[Optional[Path], typer.Option("--png", help="Write a matplotlib figure like the paper's (two curves with 95% bands, entropy strip).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object: entries, accuracy (accepted forms), accuracy_first (shown form alone), layers [{layer, p_target, p_english, entropy, energy}].")]


def register(app: typer.Typer) -> None:
    app.add_typer(lens_app, name="lens")


def _run(ctx, spec: LensTask, png, as_json) -> None:
    from rich.markup import escape

    from explorer.services import lens

    engine = state(ctx).engine()
    prompts = lens.prepare(spec)
    target_label = prompts.target_label
    with StageProgress() as sp:
        result = lens.lens_task(engine, spec, prompts, report=sp.report, progress=sp.progress, status=sp.console.status)
    if png:
        lens.save_lens_png(result, png, target_label)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(header(result), highlight=False, markup=False)
    t = Table(title_justify="left")
    for col in ("layer", f"p({target_label})", "p(English)", "entropy (bits)", "energy", "top-1"):
        t.add_column(col, justify="left" if col == "top-1" else "right")
    for s in result.layers:
        t.add_row(str(s.layer), f"{s.p_target:.3f} ±{s.p_target_ci:.3f}", f"{s.p_english:.3f} ±{s.p_english_ci:.3f}",
                  f"{s.entropy:.2f}", f"{s.energy:.2f}", escape(repr(s.top1)))
    console.print(t)
    # a bar line is the bar plus 15 cells of labels; keep it inside the terminal
    width = max(10, min(40, console.width - 16))
    console.print(lens.terminal_plot(result, target_label, width=width), highlight=False, markup=False)
    if png:
        console.print(f"figure written to {png}", highlight=False, markup=False)


def header(result) -> str:
    """Two lines for people: what ran (task, languages, prompts, word list) and what it found."""
    c = result.config
    langs = f"{c.get('from')} -> {c.get('to')}" if result.task == "translate" else str(c.get("lang"))
    words = "bundled word list" if c.get("words") in (None, "bundled") else f"word list {c.get('words')}"
    dropped = ", ".join(f"{v} {k}" for k, v in result.dropped.items()) or "none"
    return (f"{result.model}: {result.task} {langs}, {c.get('shots')} shots, seed {c.get('seed')}, "
            f"{c.get('strategy')} token sets, {words}; run {result.run_id}\n"
            f"{result.entries} entries used (dropped: {dropped}); last-layer accuracy {result.accuracy:.2f} "
            f"(on the form shown in prompts alone: {result.accuracy_first:.2f})")


@lens_app.command("translate")
@cli_errors
def translate(
    ctx: typer.Context,
    src: Annotated[str, typer.Option("--from", help="Source language: en, fr, de, ru, zh.")] = "fr",
    tgt: Annotated[str, typer.Option("--to", help="Target language: en, fr, de, ru, zh.")] = "zh",
    model: ModelOpt = None, shots: ShotsOpt = 4, seed: SeedOpt = 0, words: WordsOpt = None,
    strategy: StrategyOpt = "prefixes", limit: LimitOpt = None, png: PngOpt = None, as_json: JsonOpt = False,
) -> None:
    """Translation prompts ('Français: "fleur" - 中文: "花"' x shots, then the query word)."""
    _run(ctx, LensTask("translate", src=src, tgt=tgt, shots=shots, seed=seed, words=words, model=model,
                       strategy=strategy, limit=limit), png, as_json)


@lens_app.command("repeat")
@cli_errors
def repeat(
    ctx: typer.Context,
    lang: Annotated[str, typer.Option("--lang", help="Language: en, fr, de, ru, zh.")] = "zh",
    model: ModelOpt = None, shots: ShotsOpt = 4, seed: SeedOpt = 0, words: WordsOpt = None,
    strategy: StrategyOpt = "prefixes", limit: LimitOpt = None, png: PngOpt = None, as_json: JsonOpt = False,
) -> None:
    """Repeat prompts: the same language on both sides ('中文: "花" - 中文: "花"')."""
    _run(ctx, LensTask("repeat", lang=lang, shots=shots, seed=seed, words=words, model=model, strategy=strategy,
                       limit=limit), png, as_json)


@lens_app.command("cloze")
@cli_errors
def cloze(
    ctx: typer.Context,
    lang: Annotated[str, typer.Option("--lang", help="Language: en, fr, de, ru, zh.")] = "fr",
    model: ModelOpt = None, shots: ShotsOpt = 2, seed: SeedOpt = 0, words: WordsOpt = None,
    strategy: StrategyOpt = "prefixes", limit: LimitOpt = None, png: PngOpt = None, as_json: JsonOpt = False,
) -> None:
    """Cloze prompts: a sentence with a blank, one or two solved examples, then 'Answer: "'."""
    _run(ctx, LensTask("cloze", lang=lang, shots=shots, seed=seed, words=words, model=model, strategy=strategy,
                       limit=limit), png, as_json)


@lens_app.command("prompt")
@cli_errors
def prompt(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Any prompt.")],
    position: Annotated[Optional[int], typer.Option("--position", "-p", help="Token position (default: the last; negative counts from the end).")] = None,
    model: ModelOpt = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Tokens per layer.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: model, text, position, token, tokens, layers [{layer, lens_top [{token, token_id, prob}], embedding_top [{token, token_id, score}]}].")] = False,
) -> None:
    """Per-layer top tokens of the logit lens for one position of a prompt (see also `trajectory`)."""
    from explorer.cli.states import trajectory

    trajectory(ctx, text, position, model, k, as_json)  # its service checks -k and the position before the weights load
