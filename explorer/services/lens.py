"""One language-attribution run from start to record: shared by the CLI and the TUI."""

from __future__ import annotations

import contextlib
from typing import Callable

from explorer.errors import ExplorerError
from explorer.lens.words import LANGS

TASKS = ("translate", "repeat", "cloze")


def items_for(task: str, *, src: str = "fr", tgt: str = "zh", lang: str = "zh", shots: int = 4, seed: int = 0,
              words=None) -> tuple[list, dict, str]:
    """Prompt items, the run's config and the target language's label for ``task``."""
    from explorer.lens.tasks import cloze_items, translation_items
    from explorer.lens.words import load_words

    for code in ((src, tgt) if task == "translate" else (lang,)):
        if code not in LANGS:
            raise ExplorerError(f"unknown language {code!r}; choose one of {', '.join(LANGS)}")
    concepts = load_words(words)
    source = str(words or "bundled")
    if task == "translate":
        return (translation_items(concepts, src, tgt, shots, seed),
                {"from": src, "to": tgt, "shots": shots, "seed": seed, "words": source}, LANGS[tgt])
    if task == "repeat":
        return (translation_items(concepts, lang, lang, shots, seed),
                {"lang": lang, "shots": shots, "seed": seed, "words": source}, LANGS[lang])
    if task == "cloze":
        return (cloze_items(concepts, lang, shots, seed),
                {"lang": lang, "shots": min(max(shots, 1), 2), "seed": seed, "words": source}, LANGS[lang])
    raise ExplorerError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")


def require_lens(row) -> None:
    """Refuse, before the model loads, a model the lens cannot read: one without an
    unembedding (an encoder such as BERT, or imported vectors). ``row``: its ModelRow."""
    if row.tied is None:  # the catalog's mark for "no unembedding"
        why = "imported vectors, no model" if row.source_kind == "imported" else f"{row.architecture} is not a causal language model"
        raise ExplorerError(f"the lens does not apply to {row.name}: it has no unembedding ({why})")


def run_task(engine, task: str, items: list, config: dict, *, model: str | None = None, strategy: str = "prefixes",
             limit: int | None = None, report: Callable[[str], None] | None = None,
             progress: Callable[[str, int, int], None] | None = None, lock=None, status=None):
    """Load the model, select entries, run the lens and record the run; returns the LensResult.

    ``lock`` (a context manager, e.g. the TUI's) is held around catalog access only,
    never during the forward passes. ``status(text)``, a context manager (e.g. a transient
    spinner), covers the steps before the input is checked, so that an error in the input
    is the only line the user sees."""
    from explorer.lens import attribution
    from explorer.lens.runner import ModelRunner, stored_dir
    from explorer.lens.words import STRATEGIES, Vocabulary
    from explorer.models.loading import load_tokenizer

    if strategy not in STRATEGIES:
        raise ExplorerError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if limit is not None and limit < 1:
        raise ExplorerError(f"--limit must be at least 1 (got {limit})")
    say = report or (lambda text: None)
    busy = status or (lambda text: contextlib.nullcontext())
    lock = lock or contextlib.nullcontext()
    with lock:
        m = engine.model(model, report=report, progress=progress)
        require_lens(m)
        tokens = engine.open_set(m.name, "input").tokens
        with busy(f"reading the {m.name} vocabulary from the catalog"):
            texts = tokens.texts()
        engine.catalog.close()
    directory = stored_dir(m)
    if limit:
        items = items[:limit]
    with busy(f"loading {m.name}'s tokenizer and building token sets"):
        tokenizer = load_tokenizer(directory)
        vocab = Vocabulary(texts, tokenizer)
        # the entries' token sets need the tokenizer only: no survivors is an error before the weights load
        attribution.check_entries(m.name, items, vocab, strategy, config)
    say(f"loading {m.name}'s weights")
    runner = ModelRunner(m, tokenizer=tokenizer)
    say(f"running {len(items)} prompt{'s' if len(items) != 1 else ''} through {m.name} ({m.n_layers} layers), reading every layer with the lens")

    def labels(ids):
        with lock:
            return tokens.labels(ids)

    result = attribution.run(runner, items, vocab, task=task, strategy=strategy, config={**config, "strategy": strategy},
                             labels=labels, progress=progress)
    with lock:
        attribution.record(engine.catalog, m.model_id, result)
    return result
