"""``explorer lens translate|repeat|cloze|prompt``: language attribution with the logit lens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from explorer.cli.common import StageProgress, cli_errors, print_json, state
from explorer.services.lens import LensTask, bundled_count
from explorer.services.lenses import (
    BATCH,
    DEFAULT_TOKENS,
    FIDELITY_TOKENS,
    LR,
    STEPS,
    VOCAB_SAMPLE,
    VOCAB_TOP,
    KLSettings,
    TrainSpec,
)

lens_app = typer.Typer(
    help="Language attribution per layer with the logit lens (Wendler et al. 2024) or a learned lens: which language does each layer favour?",
    no_args_is_help=True,
)

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name or spec (default: gemma3-270m).")]
ShotsOpt = Annotated[int, typer.Option("--shots", min=0, help="Solved examples before the query (cloze uses at most 2).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for choosing the examples.")]
WordsOpt = Annotated[Optional[Path], typer.Option("--words", help=f"Word list CSV: header 'concept,en,fr,de,ru,zh' (a subset of languages is fine). Default: the bundled {bundled_count()} concepts.")]
StrategyOpt = Annotated[str, typer.Option("--strategy", help="Token sets: prefixes (all vocabulary prefixes with and without the word-start marker, as the paper), first (first token), single (single-token words only).")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="Use at most this many entries.")]
PngOpt = Annotated[Optional[Path], typer.Option("--png", help="Write a matplotlib figure like the paper's (two curves with 95% bands, entropy strip).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object: entries, accuracy (accepted forms), accuracy_first (shown form alone), config (with the lens), layers [{layer, p_target, p_english, entropy, energy}].")]
LensOpt = Annotated[str, typer.Option("--lens", help="logit: the logit lens (final norm + unembedding at every layer); tuned: the model's learned lens from `explorer lens train` (its kind is recorded with the run).")]
TaskLensOpt = Annotated[str, typer.Option("--lens", help="logit: the logit lens (final norm + unembedding at every layer); tuned: the model's learned lens from `explorer lens train` (its kind is recorded with the run); both: the same entries with each lens, recorded as two runs (--json gives {\"logit\": {...}, \"tuned\": {...}}, --png the figure twice side by side, logit lens left).")]


def register(app: typer.Typer) -> None:
    app.add_typer(lens_app, name="lens")


def _run(ctx, spec: LensTask, png, as_json) -> None:
    from explorer.services import lens

    engine = state(ctx).engine()
    prompts = lens.prepare(spec)
    target_label = prompts.target_label
    run = lens.lens_pair if spec.lens == "both" else lens.lens_task
    with StageProgress() as sp:
        got = run(engine, spec, prompts, report=sp.report, progress=sp.progress, status=sp.console.status)
    results = got if spec.lens == "both" else {spec.lens: got}
    if png:
        if spec.lens == "both":
            lens.save_lens_pair_png(results, png, target_label)
        else:
            lens.save_lens_png(got, png, target_label)
    if as_json:
        print_json({k: r.to_dict() for k, r in results.items()} if spec.lens == "both" else got.to_dict())
        return
    from rich.console import Console

    console = Console()
    for result in results.values():
        _print_result(console, result, target_label)
    if png:
        console.print(f"figure written to {png}", highlight=False, markup=False)


def _print_result(console, result, target_label: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from explorer.services.lens import terminal_plot

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
    console.print(terminal_plot(result, target_label, width=width), highlight=False, markup=False)


def header(result) -> str:
    """Two lines for people: what ran (task, languages, prompts, word list) and what it found."""
    c = result.config
    langs = f"{c.get('from')} -> {c.get('to')}" if result.task == "translate" else str(c.get("lang"))
    words = "bundled word list" if c.get("words") in (None, "bundled") else f"word list {c.get('words')}"
    dropped = ", ".join(f"{v} {k}" for k, v in result.dropped.items()) or "none"
    return (f"{result.model}: {result.task} {langs}, {c.get('shots')} shots, seed {c.get('seed')}, "
            f"{c.get('strategy')} token sets, {words}, {c.get('lens', 'logit')} lens; run {result.run_id}\n"
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
    lens: TaskLensOpt = "logit",
) -> None:
    """Translation prompts ('Français: "fleur" - 中文: "花"' x shots, then the query word)."""
    _run(ctx, LensTask("translate", src=src, tgt=tgt, shots=shots, seed=seed, words=words, model=model,
                       strategy=strategy, limit=limit, lens=lens), png, as_json)


@lens_app.command("repeat")
@cli_errors
def repeat(
    ctx: typer.Context,
    lang: Annotated[str, typer.Option("--lang", help="Language: en, fr, de, ru, zh.")] = "zh",
    model: ModelOpt = None, shots: ShotsOpt = 4, seed: SeedOpt = 0, words: WordsOpt = None,
    strategy: StrategyOpt = "prefixes", limit: LimitOpt = None, png: PngOpt = None, as_json: JsonOpt = False,
    lens: TaskLensOpt = "logit",
) -> None:
    """Repeat prompts: the same language on both sides ('中文: "花" - 中文: "花"')."""
    _run(ctx, LensTask("repeat", lang=lang, shots=shots, seed=seed, words=words, model=model, strategy=strategy,
                       limit=limit, lens=lens), png, as_json)


@lens_app.command("cloze")
@cli_errors
def cloze(
    ctx: typer.Context,
    lang: Annotated[str, typer.Option("--lang", help="Language: en, fr, de, ru, zh.")] = "fr",
    model: ModelOpt = None, shots: ShotsOpt = 2, seed: SeedOpt = 0, words: WordsOpt = None,
    strategy: StrategyOpt = "prefixes", limit: LimitOpt = None, png: PngOpt = None, as_json: JsonOpt = False,
    lens: TaskLensOpt = "logit",
) -> None:
    """Cloze prompts: a sentence with a blank, one or two solved examples, then 'Answer: "'."""
    _run(ctx, LensTask("cloze", lang=lang, shots=shots, seed=seed, words=words, model=model, strategy=strategy,
                       limit=limit, lens=lens), png, as_json)


@lens_app.command("prompt")
@cli_errors
def prompt(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Any prompt.")],
    position: Annotated[Optional[int], typer.Option("--position", "-p", help="Token position (default: the last; negative counts from the end).")] = None,
    model: ModelOpt = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Tokens per layer.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: model, text, position, token, tokens, layers [{layer, lens_top [{token, token_id, prob}], embedding_top [{token, token_id, score}]}].")] = False,
    lens: LensOpt = "logit",
) -> None:
    """Per-layer top tokens of the logit lens for one position of a prompt (see also `trajectory`)."""
    from explorer.cli.states import trajectory

    trajectory(ctx, text, position, model, k, as_json, lens)  # its service checks -k and the position before the weights load


@lens_app.command("train")
@cli_errors
def train(
    ctx: typer.Context,
    model: ModelOpt = None,
    kind: Annotated[str, typer.Option("--kind", help="linear: a closed-form ridge translator per layer from its state to the last layer's (Din et al. 2023). kl: the tuned lens (Belrose et al. 2023): the same translators trained with Adam to minimise KL(final || lens), started from the linear lens; on CPU over a restricted vocabulary (see --vocab). `--lens tuned` reads with the kl lens when one is stored.")] = "linear",
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="Training text in the export-states format (one document per line, or .tsv 'lang<TAB>text'; .gz allowed). Default: the bundled Debian Installation Guide in en, fr, de, ru, zh. The last tenth of each language's documents is held out.")] = None,
    tokens: Annotated[int, typer.Option("--tokens", help="Training states (tokens, position 0 not counted), taken round-robin over languages.")] = DEFAULT_TOKENS,
    force: Annotated[bool, typer.Option("--force", help="Retrain although a lens of this kind is stored (stored states are reused).")] = False,
    steps: Annotated[int, typer.Option("--steps", help="kl: Adam steps.")] = STEPS,
    lr: Annotated[float, typer.Option("--lr", help="kl: Adam learning rate.")] = LR,
    batch: Annotated[int, typer.Option("--batch", help="kl: training tokens per step (drawn at random with --seed).")] = BATCH,
    seed: Annotated[int, typer.Option("--seed", help="kl: seed of the batches (same seed, same lens).")] = 0,
    vocab: Annotated[str, typer.Option("--vocab", help=f"kl: auto (the whole vocabulary on a GPU, restricted on CPU), full, or restricted: the union of the top {VOCAB_TOP} final tokens of {VOCAB_SAMPLE} training tokens, both distributions renormalised over it (its size and the mass it covers are recorded).")] = "auto",
    init: Annotated[str, typer.Option("--init", help="kl: start from the linear lens (the stored one if fitted on the same states, else fitted now) or the identity (the logit lens).")] = "linear",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: model, kind, data, train_tokens, heldout_tokens, path, sha256, seconds (forward_seconds, fit_seconds), reused, layers [{layer, kl_logit, kl_tuned, alpha}], training (kl: steps, lr, batch, seed, vocab, vocab_size, vocab_mass, vocab_rule, device, start).")] = False,
) -> None:
    """Train a learned lens: export the states of a multilingual text once, fit a translator per layer, store it."""
    from explorer.services import lenses

    spec = TrainSpec(model=model, kind=kind, corpus=corpus, tokens=tokens, force=force,
                     kl=KLSettings(steps=steps, lr=lr, batch=batch, seed=seed, vocab=vocab, init=init))
    lenses.check_train(spec)  # before any model loads
    engine = state(ctx).engine()
    with StageProgress() as sp:
        result = lenses.train_lens(engine, spec, report=sp.report, progress=sp.progress)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.console import Console

    console = Console()
    how = "reused" if result.reused else f"trained in {result.seconds:.0f} s"
    console.print(f"{result.model}: {result.kind} lens {how}, {result.train_tokens:,} training tokens from {result.data}; "
                  f"{result.path}", highlight=False, markup=False)
    if result.training:
        t = result.training
        console.print(f"{t['steps']} Adam steps on {t['device']} from the {t['start']}, {t['vocab']} vocabulary of "
                      f"{t['vocab_size']:,} tokens covering {t['vocab_mass']:.1%} of the final mass", highlight=False, markup=False)
    _kl_table(console, [(r["layer"], r["kl_logit"], r["kl_tuned"], None, None) for r in result.layers],
              f"held-out KL(final || lens), bits, on {result.heldout_tokens} tokens")


def _kl_table(console, rows, title: str) -> None:
    """Rows (layer, KL logit, KL learned, top-1 logit, top-1 learned); top-1 columns only when given."""
    from rich.table import Table

    top1 = any(r[3] is not None for r in rows)
    t = Table(title=title, title_justify="left")
    for col in ("layer", "logit lens", "learned lens") + (("top-1 logit", "top-1 learned") if top1 else ()):
        t.add_column(col, justify="right")
    for layer, kl, kt, t1, t2 in rows:
        t.add_row(str(layer), f"{kl:.3f}", f"{kt:.3f}", *((f"{t1:.2f}", f"{t2:.2f}") if top1 else ()))
    console.print(t)


@lens_app.command("fidelity")
@cli_errors
def fidelity(
    ctx: typer.Context,
    model: ModelOpt = None,
    tokens: Annotated[int, typer.Option("--tokens", min=1, help="Held-out tokens to read (each costs a full-vocabulary product per layer and lens).")] = FIDELITY_TOKENS,
    png: Annotated[Optional[Path], typer.Option("--png", help="Write a figure: KL per layer, one curve per lens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: model, kind, data, heldout_tokens, layers [{layer, kl_logit, kl_tuned, top1_logit, top1_tuned}] (KL in bits).")] = False,
) -> None:
    """How faithful each lens is, per layer on held-out text: KL(final || lens) in bits and top-1 agreement."""
    from explorer.services import lenses

    engine = state(ctx).engine()
    with StageProgress() as sp:
        result = lenses.fidelity(engine, model, tokens, report=sp.report, progress=sp.progress)
    if png:
        lenses.save_fidelity_png(result, png)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.console import Console

    console = Console()
    console.print(f"{result.model}: logit lens vs {result.kind} lens trained on {result.data}", highlight=False, markup=False)
    _kl_table(console, [(f.layer, f.kl_logit, f.kl_tuned, f.top1_logit, f.top1_tuned) for f in result.layers],
              f"KL(final || lens), bits, and top-1 agreement on {result.heldout_tokens} held-out tokens")
    if png:
        console.print(f"figure written to {png}", highlight=False, markup=False)
