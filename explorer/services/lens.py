"""The lens operations, shared by the CLI and the TUI: a language-attribution task from
start to record, and one prompt's trajectory through the layers.

Each operation checks its input before any weights load (languages, word list, strategy,
token sets from the tokenizer alone, the position from ``tokenizer.json``), reads the
catalog in one session, and never holds that session during the forward passes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.lens.plot import save_lens_pair_png, save_lens_png, terminal_plot
from explorer.lens.runner import ModelRunner, check_position
from explorer.lens.words import LANGS, STRATEGIES, bundled_count
from explorer.services.lenses import check_lens, stored_lens

# re-exported for the front ends; importing them is light (no numpy, duckdb or torch), so the CLI can
# import this module at start-up for its help texts
__all__ = ["LANGS", "STRATEGIES", "TASKS", "LensTask", "ModelRunner", "Prompts", "TrajectoryOptions", "bundled_count",
           "check_position", "check_trajectory", "learned_lens_name", "lens_pair", "lens_task", "prepare", "require_lens", "save_lens_pair_png",
           "save_lens_png",
           "terminal_plot", "trajectory", "trajectory_of"]

TASKS = ("translate", "repeat", "cloze")
Status = Callable[[str], ContextManager]  # a transient spinner around a step, e.g. rich's console.status


@dataclass(frozen=True)
class LensTask:
    """What to run: the task and its prompts (languages, shots, seed, word list), the model,
    the token-set strategy and an optional cap on the entries."""

    task: str  # translate | repeat | cloze
    src: str = "fr"  # translate: source language
    tgt: str = "zh"  # translate: target language
    lang: str = "zh"  # repeat and cloze: the language
    shots: int = 4
    seed: int = 0
    words: Path | None = None  # a word-list CSV; None: the bundled list
    model: str | None = None
    strategy: str = "prefixes"
    limit: int | None = None
    lens: str = "logit"  # logit | tuned (the model's stored learned lens, see explorer.services.lenses)


@dataclass(frozen=True)
class Prompts:
    """A task's prompt items, the run's config as recorded, and the target language's label."""

    items: tuple
    config: dict
    target_label: str


def prepare(spec: LensTask) -> Prompts:
    """The prompt items of ``spec``: unknown languages and unreadable word lists are errors here."""
    from explorer.lens.tasks import cloze_items, translation_items
    from explorer.lens.words import load_words

    task = spec.task
    for code in ((spec.src, spec.tgt) if task == "translate" else (spec.lang,)):
        if code not in LANGS:
            raise ExplorerError(f"unknown language {code!r}; choose one of {', '.join(LANGS)}")
    concepts = load_words(spec.words)
    source = str(spec.words or "bundled")
    shots, seed = spec.shots, spec.seed
    if task == "translate":
        return Prompts(tuple(translation_items(concepts, spec.src, spec.tgt, shots, seed)),
                       {"from": spec.src, "to": spec.tgt, "shots": shots, "seed": seed, "words": source}, LANGS[spec.tgt])
    if task == "repeat":
        return Prompts(tuple(translation_items(concepts, spec.lang, spec.lang, shots, seed)),
                       {"lang": spec.lang, "shots": shots, "seed": seed, "words": source}, LANGS[spec.lang])
    if task == "cloze":
        return Prompts(tuple(cloze_items(concepts, spec.lang, shots, seed)),
                       {"lang": spec.lang, "shots": min(max(shots, 1), 2), "seed": seed, "words": source}, LANGS[spec.lang])
    raise ExplorerError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")


def require_lens(row) -> None:
    """Refuse, before the model loads, a model the lens cannot read: one without an
    unembedding (an encoder such as BERT, or imported vectors). ``row``: its ModelRow."""
    if row.tied is None:  # the catalog's mark for "no unembedding"
        why = "imported vectors, no model" if row.source_kind == "imported" else f"{row.architecture} is not a causal language model"
        raise ExplorerError(f"the lens does not apply to {row.name}: it has no unembedding ({why})")


def lens_task(engine, spec: LensTask, prompts: Prompts, *, report: Report | None = None,
              progress: Progress | None = None, status: Status | None = None):
    """Load the model, select entries, run the lens and record the run; returns the LensResult
    (its ``run_id`` set). ``status(text)`` covers the steps before the input is checked, so
    that an error in the input is the only line the user sees."""
    check_lens(spec.lens)
    return _lens_runs(engine, spec, prompts, (spec.lens,), report, progress, status)[spec.lens]


def lens_pair(engine, spec: LensTask, prompts: Prompts, *, report: Report | None = None,
              progress: Progress | None = None, status: Status | None = None) -> dict:
    """``--lens both``: the same entries read with the logit lens and with the model's learned
    lens, the weights loaded once; {"logit": LensResult, "tuned": LensResult}, each recorded
    as its own run. No stored learned lens is an error before the weights load."""
    return _lens_runs(engine, spec, prompts, ("logit", "tuned"), report, progress, status)


def _lens_runs(engine, spec: LensTask, prompts: Prompts, lenses: tuple[str, ...], report, progress, status) -> dict:
    from explorer.lens import attribution
    from explorer.lens.runner import stored_dir
    from explorer.lens.words import TokenSets
    from explorer.models.loading import load_tokenizer
    from explorer.store.lensruns import record_lens_run

    if spec.strategy not in STRATEGIES:
        raise ExplorerError(f"unknown strategy {spec.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if spec.limit is not None and spec.limit < 1:
        raise ExplorerError(f"--limit must be at least 1 (got {spec.limit})")
    say = report or (lambda text: None)
    busy = status or (lambda text: contextlib.nullcontext())
    m = engine.model(spec.model, report=report, progress=progress)  # may export: outside the session
    require_lens(m)
    learned = stored_lens(engine, m) if "tuned" in lenses else None  # before any weights load
    with engine.catalog.session():
        tokens = engine.open_set(m.name, "input").tokens
        with busy(f"reading the {m.name} vocabulary from the catalog"):
            texts = tokens.texts()
    directory = stored_dir(m)
    items = list(prompts.items[: spec.limit] if spec.limit else prompts.items)
    with busy(f"loading {m.name}'s tokenizer and building token sets"):
        tokenizer = load_tokenizer(directory)
        vocab = TokenSets(texts, tokenizer)
        # the entries' token sets need the tokenizer only: no survivors is an error before the weights load
        attribution.check_entries(m.name, items, vocab, spec.strategy, prompts.config)
    say(f"loading {m.name}'s weights")
    runner = ModelRunner(m, tokenizer=tokenizer)
    results = {}
    for name in lenses:
        lens, runner.translator = ("logit", None) if name == "logit" else (f"tuned ({learned[0].kind})", learned[1])
        say(f"running {len(items)} prompt{'s' if len(items) != 1 else ''} through {m.name} ({m.n_layers} layers), reading every layer with the {lens} lens")
        result = attribution.attribute(runner, items, vocab, task=spec.task, strategy=spec.strategy,
                                       config={**prompts.config, "strategy": spec.strategy, "lens": lens},
                                       labels=tokens.labels, progress=progress)
        result.run_id = record_lens_run(engine.catalog, m.model_id, result)
        results[name] = result
    return results


def learned_lens_name(engine, model: str | None) -> str:
    """What ``--lens tuned`` reads ``model`` with, e.g. 'tuned (linear)', without loading any
    weights (for a front end's toggle); the one-line error naming `explorer lens train` when
    the model has no stored learned lens. A model not in the catalog is an error too."""
    m = engine.model(model, auto_export=False)
    require_lens(m)
    row, _ = stored_lens(engine, m)
    return f"tuned ({row.kind})"


# -- one prompt through the layers ----------------------------------------------------------


@dataclass(frozen=True)
class TrajectoryOptions:
    """One position of a prompt: which model, how many tokens per layer, and whether a model
    not in the catalog yet is exported first (the CLI) or an error (the TUI)."""

    text: str
    position: int | None = None  # None: the last token; negative counts from the end
    model: str | None = None
    k: int = 5
    export: bool = True
    lens: str = "logit"  # logit | tuned


def check_trajectory(engine, options: TrajectoryOptions, *, report: Report | None = None,
                     progress: Progress | None = None):
    """The model's ModelRow once every input is checked, before any weights load: a model the
    lens reads, -k within its vocabulary, a non-empty text and a position inside it."""
    check_lens(options.lens)
    m = engine.model(options.model, auto_export=options.export, report=report, progress=progress)
    require_lens(m)
    if options.lens == "tuned":
        stored_lens(engine, m)  # an error naming `explorer lens train` before the weights load
    if m.vocab_size and options.k > m.vocab_size:
        raise ExplorerError(f"-k {options.k} is more than the {m.vocab_size:,} tokens of {m.name}")
    check_position(m, options.text, options.position)  # from tokenizer.json alone
    return m


def trajectory(engine, options: TrajectoryOptions, *, report: Report | None = None, progress: Progress | None = None,
               loading: Callable[[str], ContextManager] | None = None,
               runner_for: Callable[[object], ModelRunner] | None = None):
    """Check, load the model and trace ``options.position`` through the layers: the logit
    lens's top tokens and the nearest input embeddings per layer (a Trajectory).

    ``loading(name)`` covers the weights load (e.g. a spinner); ``runner_for(row)`` gives a
    runner instead of loading a fresh one (e.g. a cache of loaded models)."""
    m = check_trajectory(engine, options, report=report, progress=progress)
    if runner_for is not None:
        runner = runner_for(m)
    else:
        with (loading or (lambda name: contextlib.nullcontext()))(m.name):
            runner = ModelRunner(m)
    return trajectory_of(engine, runner, options)


def trajectory_of(engine, runner: ModelRunner, options: TrajectoryOptions):
    """The Trajectory of ``options.text`` through an already loaded ``runner``."""
    from explorer.lens.trajectory import layer_views, run_position

    translator = stored_lens(engine, runner.row)[1] if options.lens == "tuned" else None
    lens = run_position(runner, options.text, options.position, options.k, translator)  # the forward pass, no session
    with engine.catalog.session():
        emb = engine.open_set(runner.row.name, "input")
        return layer_views(lens, emb)
