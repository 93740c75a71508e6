"""Counting with a pretrained model: Yehudai et al. 2024, "When Can Transformers Count to n?",
their second experiment (Gemini 1.5 there), on any stored causal model.

For each vocabulary size ``m`` the model is asked how often a query word occurs in a list of
``n = occurrences * m`` words drawn uniformly from ``m`` words, so every word, the query
too, occurs ``occurrences`` times on average and the list grows with ``m``. The **binary
baseline** asks the same question about a list of the same length made of two words only.
If the errors grow with ``m`` in the first condition but not in the baseline, the number
of distinct words, not the length, is what makes counting hard.

Choices (ours; the paper's exact grid and prompt are not restated here):

* **Words.** Common English nouns (the ``en`` column of ``explorer/data/concepts.csv``, in
  its order; ``words=FILE`` for another list, one word a line), kept only where the word
  is one token for the model's tokenizer with a leading space, as it stands in the
  prompt. Nothing else selects words. With ``shots > 0`` the first three kept words make
  up the examples and are never sampled.
* **Samples** (seeded by ``(seed, m)``, so a point draws the same prompts in any sweep):
  ``m`` distinct words from the pool, ``n`` words drawn i.i.d. uniformly from them, a
  query drawn uniformly from the ``m`` (its count may be 0). ``baseline="paired"``
  (default): the binary list keeps the query at the same positions and puts one other
  word of the ``m`` (drawn uniformly) everywhere else, so length, query and true count
  are the same as in the vocabulary list and only the number of distinct words differs.
  ``baseline="uniform"``: each position is the query or the other word with probability
  1/2 (counts near n/2).
* **Prompt** (the same frame in both conditions and for every m)::

      Count how many times the word appears in the list.

      List: water fire water mountain ...
      Word: fire
      Count: 4

      List: <the n words>
      Word: <query>
      Count:

  ``shots`` worked examples (default 2) precede the question, each a list of ``3 *
  occurrences`` words over the three example words with its true count. Question i has
  its own examples (seeded by ``(seed, i)``), the same in both conditions and at every m:
  a model that copies an example's answer is then wrong in a way that differs from
  question to question, not by one fixed number. No chat template: the same text for
  base and instruction-tuned models.
* **Answer.** Greedy decoding of ``answer_tokens`` new tokens; the answer is the first
  number in them, digits or a number word (zero to twenty); none is *unparseable*.
  ``mae`` is the mean |answer - count| over parsed answers (None when none parse);
  ``exact`` is the share of all questions answered exactly (unparseable = wrong).
  ``constant_mae`` is the error of always answering ``occurrences``: what a model that
  ignores the list would score. ``same_answer`` is the share of questions answered alike
  in both conditions (1.0 at m = 2, where the two lists are the same). ``gap`` is the mean
  of ``|vocabulary error| - |binary error|`` over the questions (paired: the same query
  and true count in both with the paired baseline), ``gap_se`` its standard error.
* **Presets.** ``paper``: m = 5, 10, 20, 40, 60, 80, 100 with 10 occurrences a word (n up
  to 1,000 words, as the trained counting experiment's n = 10 m), 100 questions per
  condition. ``smoke``: m = 4, 8, 16, 32, 5 occurrences, 20 questions (minutes on a CPU;
  a standard error of about 0.3 on the gap).

The model loads in float32 (``explorer.models.loading``) from local files, never from the
network: ``model`` is a model name in the model cache (of the sweep's data root, or of the
default root; ``EXPLORER_MODEL_CACHE`` overrides both), a bundled model or ``.gguf`` file
(converted into the cache once, when the first run starts), a local Hugging Face model
directory, or a Hugging Face id already in the local cache. Prompts are batched
(``batch``, fewer when long), padded on the left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.types import DEFAULT_MODEL
from explorer.errors import ExplorerError
from explorer.experiments.base import RunContext, RunOutput, Summary
from explorer.experiments.checks import Rules, at_least, each, one_of, problem, show
from explorer.experiments.count_prompts import (
    EXAMPLE_WORDS,
    answer_stats,
    count_question,
    draw_count_samples,
    few_shot_head,
    paired_gap,
    parse_count_answer,
    read_count_words,
    single_token_words,
)

BATCH_TOKENS = 4096  # at most this many prompt tokens in one forward pass


@dataclass(frozen=True)
class Config:
    model: str = DEFAULT_MODEL  # a model in the cache, a model directory, or a cached Hugging Face id
    m: int = 10  # vocabulary size (one run; ms sets it at every point)
    ms: tuple[int, ...] = (5, 10, 20, 40, 60, 80, 100)  # the swept m values
    occurrences: int = 10  # mean occurrences of each word: n = occurrences * m
    samples: int = 100  # questions per condition and m
    baseline: str = "paired"  # paired | uniform (see module doc)
    shots: int = 2  # worked examples before the question
    words: str = ""  # "" = the bundled nouns; else a file, one word a line
    answer_tokens: int = 5  # new tokens decoded for the answer
    batch: int = 8  # prompts per forward pass (fewer when they are long)
    seed: int = 0
    threads: int = 0  # torch threads (0: the runner's share of the CPU)


PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"ms": (4, 8, 16, 32), "occurrences": 5, "samples": 20},
    "paper": {},
}


# -- the model --------------------------------------------------------------------------
def _cache_candidates(root: Path | None) -> list[Path]:
    from explorer.paths import default_root, model_cache_dir

    return list(dict.fromkeys(model_cache_dir(r) for r in ([root] if root else []) + [default_root()]))


def causal_model_dir(spec: str, root: Path | None = None, report: Any = None) -> Path | None:
    """The directory of model ``spec`` (see module doc), checked to be a causal LM (config.json
    only); one-line errors for anything else. A bundled model or GGUF file not yet converted
    is converted first when ``report`` is given (the run), else None (the checks)."""
    from explorer.models import sources
    from explorer.models.loading import is_causal, read_config

    if not spec.strip():
        raise ExplorerError("no model given")
    caches = _cache_candidates(root)
    name = sources.safe_name(spec)
    directory = next((c / name for c in caches if "/" not in spec and (c / name / "config.json").is_file()), None)
    if directory is None:
        source = sources.resolve_source(spec)
        if sources.is_converted(source, caches[0]):
            directory = sources.model_dir(source, caches[0])
        elif report is None:
            return None
        else:
            directory = _convert(source, caches[0], report)
    config = read_config(directory)
    if not is_causal(config):
        kinds = ", ".join(config.get("architectures") or [str(config.get("model_type"))])
        raise ExplorerError(f"model {spec} is not a causal language model ({kinds}); counting needs one that generates")
    return directory


def _convert(source: Any, cache: Path, report: Any) -> Path:
    """Convert ``source`` into ``cache`` once, one process at a time (workers wait for the first)."""
    import fcntl

    from explorer.models import sources

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{sources.safe_name(source.name)}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not sources.is_converted(source, cache):
            report(f"converting {source.name} into {cache} (once; minutes)")
        return sources.convert(source, cache, report)


def _model_check(spec: str) -> str | None:
    """A :mod:`checks` check: what is wrong with model ``spec``, or None."""
    try:
        causal_model_dir(spec)
    except ExplorerError as exc:
        return str(exc)
    return None


def answer_batches(model: Any, tokenizer: Any, prompts: list[str], config: Config, ctx: RunContext,
                   done: int = 0, total: int = 0) -> list[str]:
    """Greedy continuations of ``prompts`` (``answer_tokens`` new tokens each), in batches."""
    import torch

    from explorer.models.loading import quiet

    length = len(tokenizer(prompts[0])["input_ids"]) if prompts else 1
    size = max(1, min(config.batch, BATCH_TOKENS // length))
    out: list[str] = []
    for i in range(0, len(prompts), size):
        ctx.check()
        enc = tokenizer(prompts[i:i + size], return_tensors="pt", padding=True).to(ctx.device)
        with torch.inference_mode(), quiet():
            ids = model.generate(**enc, max_new_tokens=config.answer_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        ctx.progress(done + len(out), total or len(prompts))
    return out


def _load(config: Config, ctx: RunContext) -> tuple[Any, Any, list[str], list[str]]:
    """(model, tokenizer, example words, sampling pool); the words are checked before the weights load."""
    from explorer.models.loading import load_model, load_tokenizer

    directory = causal_model_dir(config.model, ctx.root, ctx.log)
    tokenizer = load_tokenizer(directory)
    words = read_count_words(config.words)
    kept = single_token_words(words, tokenizer)
    reserved = EXAMPLE_WORDS if config.shots else 0
    if len(kept) - reserved < config.m:
        raise ExplorerError(f"m={config.m} needs {config.m + reserved} words that are one token for {config.model}; "
                            f"{len(kept)} of the list's {len(words)} are (lower m, or --set words=FILE)")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ctx.log(f"loading {config.model} from {directory}")
    model, tokenizer = load_model(directory, ctx.log, tokenizer=tokenizer)
    return model.to(ctx.device), tokenizer, kept[:reserved], kept[reserved:]


# -- one run ------------------------------------------------------------------------------
def run(config: Config, ctx: RunContext) -> RunOutput:
    """Ask ``samples`` questions per condition at vocabulary size ``config.m``; report the errors."""
    import torch

    torch.set_num_threads(config.threads or ctx.threads or 1)
    started = time.perf_counter()
    model, tokenizer, example_words, pool = _load(config, ctx)
    n = config.occurrences * config.m
    qs = draw_count_samples(pool, config.m, n, config.samples, config.seed, config.baseline)
    heads = [few_shot_head(example_words, config.occurrences, config.shots, config.seed, i) for i in range(len(qs))]
    prompts = [h + count_question(s.words, s.query) for h, s in zip(heads, qs)]
    limit = getattr(model.config, "max_position_embeddings", None)
    length = max(len(ids) for ids in tokenizer(prompts)["input_ids"])
    if limit and length + config.answer_tokens > limit:
        raise ExplorerError(f"m={config.m}: a prompt of {length} tokens is longer than {config.model}'s "
                            f"context ({limit}); lower m or occurrences")
    total = 2 * len(qs)
    vocab = answer_batches(model, tokenizer, prompts, config, ctx, 0, total)
    binary = answer_batches(model, tokenizer, [h + count_question(s.binary, s.query) for h, s in zip(heads, qs)],
                            config, ctx, len(qs), total)
    answers, binary_answers = [parse_count_answer(t) for t in vocab], [parse_count_answer(t) for t in binary]
    counts, binary_counts = [s.count for s in qs], [s.binary_count for s in qs]
    stats, bstats = answer_stats(counts, answers), answer_stats(binary_counts, binary_answers)
    summary = {"model": config.model, "m": config.m, "n": n, "occurrences": config.occurrences,
               "samples": len(qs), "baseline": config.baseline, "prompt_tokens": length,
               **stats, **{f"binary_{k}": v for k, v in bstats.items()},
               "constant_mae": float(np.mean([abs(c - config.occurrences) for c in counts])),
               "same_answer": sum(a == b for a, b in zip(answers, binary_answers)) / max(1, len(qs)),
               **dict(zip(("gap", "gap_se"), paired_gap(counts, answers, binary_counts, binary_answers))),
               "seconds": time.perf_counter() - started,
               "answers": {"count": counts, "vocabulary": answers, "binary_count": binary_counts,
                           "binary": binary_answers, "text": vocab[:3], "binary_text": binary[:3]}}
    for key in ("mae", "exact", "unparseable", "binary_mae", "binary_exact", "binary_unparseable"):
        if summary[key] is not None:
            ctx.metric(len(qs), key, summary[key])
    return RunOutput(summary=summary)


# -- the sweep -------------------------------------------------------------------------------
def points(config: Config) -> list[dict[str, Any]]:
    """One point per vocabulary size: ``[{"m": m}, ...]`` (``ms = ()``: m alone)."""
    return [{"m": m} for m in config.ms or (config.m,)]


POINT_KEYS = ("m", "n", "mae", "binary_mae", "exact", "binary_exact", "unparseable", "binary_unparseable",
              "mean_answer", "binary_mean_answer", "constant_mae", "same_answer", "gap", "gap_se", "samples")


def summarize(config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
    """The errors per m in both conditions, as a table and a figure (MAE and exact vs m)."""
    by_m = {int(s["m"]): {k: s.get(k) for k in POINT_KEYS} for _, s in finished if s.get("m") is not None}
    rows = [by_m[m] for m in sorted(by_m)]
    result = {"model": config.model, "occurrences": config.occurrences, "baseline": config.baseline,
              "shots": config.shots, "points": rows}
    return Summary(result=result, text=_table_text(rows, config), figure=_figure(rows, config) if rows else None)


def _cell(x: Any, fmt: str = ".2f", width: int = 8) -> str:
    return (format(x, fmt) if isinstance(x, (int, float)) else "-").rjust(width)


def _table_text(rows: list[dict[str, Any]], config: Config) -> str:
    """Rows m: n; MAE, exact-match, unparseable share and mean answer (vocabulary / binary);
    the paired error gap with its standard error; the share of questions answered alike."""
    title = (f"{config.model}: how often does a word occur among n = {config.occurrences} m words over m words "
             f"(vocabulary) or over two ({config.baseline} binary baseline)?")
    header = f"{'m':>5}{'n':>6}{'MAE':>14}{'exact':>14}{'unparseable':>14}{'mean answer':>14}{'gap':>15}{'same':>6}"
    lines = [title, header, f"{'':>11}" + f"{'voc / bin':>14}" * 4 + f"{'(voc - bin)':>15}"]
    for r in rows:
        cells = "".join(f"{_cell(r[k], fmt, 7)}{_cell(r['binary_' + k], fmt, 7)}"
                        for k, fmt in (("mae", ".2f"), ("exact", ".2f"), ("unparseable", ".2f"), ("mean_answer", ".1f")))
        gap = f"{_cell(r.get('gap'), '+.2f', 9)} ± {_cell(r.get('gap_se'), '.2f', 3)}"
        lines.append(f"{r['m']:>5}{r['n']:>6}{cells}{gap}{_cell(r.get('same_answer'), '.2f', 6)}")
    if rows:
        guess = [r["constant_mae"] for r in rows if r["constant_mae"] is not None]
        lines.append(f"answering {config.occurrences} every time would score MAE {np.mean(guess):.2f} (mean over m)")
    return "\n".join(lines)


def _figure(rows: list[dict[str, Any]], config: Config) -> Any:
    """MAE vs m and exact-match vs m, vocabulary condition and binary baseline."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax, ax2 = fig.subplots(1, 2)
    ms = [r["m"] for r in rows]
    for key, label, style in (("", "vocabulary of m words", "o-"), ("binary_", "binary baseline (2 words)", "s--")):
        ax.plot(ms, [np.nan if r[key + "mae"] is None else r[key + "mae"] for r in rows], style, label=label)
        ax2.plot(ms, [r[key + "exact"] for r in rows], style, label=label)
    ax.plot(ms, [r["constant_mae"] for r in rows], ":", color="grey", label=f"always {config.occurrences}")
    ax.set(xlabel=f"vocabulary size m (n = {config.occurrences} m)", ylabel="mean absolute error",
           title=f"{config.model}: counting error vs m")
    ax2.set(xlabel="vocabulary size m", ylabel="exact-match rate", ylim=(-0.02, 1.02), title="exact answers")
    for a in (ax, ax2):
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# -- rules: checks, unused settings, cost ------------------------------------------------------
def _validate(c: Config) -> None:
    """The word list: readable, and long enough for m (plus the example words)."""
    if c.words:
        from explorer.experiments.rules import readable

        readable("words", c.words, "word list")
    reserved = EXAMPLE_WORDS if c.shots else 0
    have = len(read_count_words(c.words))
    if c.m + reserved > have:
        raise problem("m", c.m, f"needs {c.m + reserved} words and the list has {have}")


def _unused(c: Config) -> dict[str, str]:
    return {"m": f"ms ({show(c.ms)}) sets m at every point; for one m use --set ms=N"} if c.ms else {}


def _estimate(c: Config) -> float:
    """Seconds for one point on one CPU core, calibrated on Gemma 3 270M: a load, then per
    prompt a part per decoded token and a part per prompt token (measured on a shared
    2-core machine, one torch thread: 1.8 s a prompt at 308 tokens, 5.4 s at 1,108)."""
    head = 12 + (c.shots * (EXAMPLE_WORDS * c.occurrences + 10) if c.shots else 0)
    tokens = head + c.occurrences * c.m + 10
    return 8.0 + 2 * c.samples * (0.08 * c.answer_tokens + 4.5e-3 * tokens)


RULES = Rules({
    "model": _model_check, "m": at_least(2, 100_000), "ms": each(at_least(2, 100_000)), "occurrences": at_least(1, 10_000),
    "samples": at_least(1, 10**7), "baseline": one_of("paired", "uniform"), "shots": at_least(0, 20),
    "answer_tokens": at_least(1, 256), "batch": at_least(1, 4096), "seed": at_least(0, 2**32 - 1),
    "threads": at_least(0, 1024),
}, _validate, _unused, _estimate)


class LLMCountingExperiment:
    """The pretrained-model counting study as an experiment object (see :mod:`explorer.experiments.base`)."""

    name = "llm-counting"
    description = ("Yehudai et al. 2024 on a pretrained model: count a word among m words (n = occurrences x m) "
                   "vs a two-word baseline of the same length; MAE and exact-match vs m.")
    Config = Config
    presets = PRESETS
    rules = RULES

    def points(self, config: Config) -> list[dict[str, Any]]:
        return points(config)

    def run(self, config: Config, ctx: RunContext) -> RunOutput:
        return run(config, ctx)

    def summarize(self, config: Config, finished: list[tuple[Any, dict[str, Any]]]) -> Summary:
        return summarize(config, finished)


EXPERIMENT = LLMCountingExperiment()
