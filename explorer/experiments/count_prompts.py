"""The questions of :mod:`explorer.experiments.llm_counting` (its module doc says why they
are built this way): the word list and its single-token filter, the sampled lists of the
vocabulary condition and the binary baseline, the prompt text, and reading a number
back from the model's answer. numpy only.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import ExplorerError
from explorer.experiments.checks import problem

INSTRUCTION = "Count how many times the word appears in the list."
EXAMPLE_WORDS = 3  # words of the few-shot examples (the first of the kept pool)
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
ANSWER = re.compile(r"(\d+)|\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


def read_count_words(path: str = "") -> list[str]:
    """The word list: the bundled nouns (``""``) or a file (one word a line, ``#`` comments);
    duplicates dropped, order kept."""
    if not path:
        with resources.files("explorer.data").joinpath("concepts.csv").open(encoding="utf-8") as f:
            raw = [row["en"].split("|")[0] for row in csv.DictReader(f)]
    else:
        try:
            lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise problem("words", path, f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        raw = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    bad = [w for w in raw if len(w.split()) != 1]
    if bad:
        raise problem("words", path or "(bundled)", f"{bad[0]!r} is not a single word")
    return list(dict.fromkeys(raw))


def single_token_words(words: list[str], tokenizer: Any) -> list[str]:
    """The words that are one token for ``tokenizer`` with a leading space (as in the prompt)."""
    return [w for w in words if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]


@dataclass(frozen=True)
class CountSample:
    words: tuple[str, ...]  # the vocabulary condition's list (n words over m)
    binary: tuple[str, ...]  # the baseline's list (n words over two)
    query: str
    count: int  # occurrences of query in words
    binary_count: int  # ... and in binary (equal for the paired baseline)


def draw_count_samples(pool: list[str], m: int, n: int, samples: int, seed: int,
                       baseline: str = "paired", stream: int = 0) -> list[CountSample]:
    """``samples`` questions at vocabulary size ``m`` and length ``n`` (see module doc), from
    the random streams ``(seed, m, 2 stream)`` and ``(seed, m, 2 stream + 1)`` (the baseline's)."""
    if not 2 <= m <= len(pool):
        raise ExplorerError(f"m={m} needs 2..{len(pool)} words (the pool has {len(pool)})")
    rng = np.random.default_rng([seed, m, 2 * stream])
    rng_binary = np.random.default_rng([seed, m, 2 * stream + 1])
    out = []
    for _ in range(samples):
        vocab = [pool[i] for i in rng.choice(len(pool), m, replace=False)]
        seq = rng.integers(0, m, n)
        q = int(rng.integers(m))
        other = (q + 1 + int(rng.integers(m - 1))) % m
        if baseline == "paired":
            binary = np.where(seq == q, q, other)
        else:
            binary = np.where(rng_binary.integers(0, 2, n) == 1, q, other)
        out.append(CountSample(tuple(vocab[i] for i in seq), tuple(vocab[i] for i in binary), vocab[q],
                               int((seq == q).sum()), int((binary == q).sum())))
    return out


def count_question(words: tuple[str, ...] | list[str], query: str) -> str:
    return f"List: {' '.join(words)}\nWord: {query}\nCount:"


def few_shot_head(example_words: list[str], occurrences: int, shots: int, seed: int, index: int) -> str:
    """The instruction and ``shots`` worked examples of question ``index`` (the same in both
    conditions and at every m; from the stream ``1 + index``)."""
    parts = [INSTRUCTION + "\n\n"]
    if shots:
        for s in draw_count_samples(example_words, len(example_words), occurrences * len(example_words),
                                    shots, seed, "paired", 1 + index):
            parts.append(f"{count_question(s.words, s.query)} {s.count}\n\n")
    return "".join(parts)


def parse_count_answer(text: str) -> int | None:
    """The first number in ``text``: a run of digits or a number word (zero to twenty); None if none."""
    match = ANSWER.search(text)
    if match is None:
        return None
    return int(match.group(1)) if match.group(1) else NUMBER_WORDS.index(match.group(2).lower())


def answer_stats(counts: list[int], answers: list[int | None]) -> dict[str, float | None]:
    """``mae`` (parsed answers only), ``exact`` and ``unparseable`` shares, ``mean_answer``."""
    parsed = [(c, a) for c, a in zip(counts, answers) if a is not None]
    total = max(1, len(counts))
    return {"mae": float(np.mean([abs(a - c) for c, a in parsed])) if parsed else None,
            "exact": sum(a == c for c, a in parsed) / total,
            "unparseable": (len(counts) - len(parsed)) / total,
            "mean_answer": float(np.mean([a for _, a in parsed])) if parsed else None}


def paired_gap(counts: list[int], answers: list[int | None], binary_counts: list[int],
               binary_answers: list[int | None]) -> tuple[float | None, float | None]:
    """Mean and standard error of ``|vocabulary error| - |binary error|`` over the questions
    answered in both conditions (> 0: the vocabulary condition is worse); None without data."""
    gaps = [abs(a - c) - abs(b - d) for c, a, d, b in zip(counts, answers, binary_counts, binary_answers)
            if a is not None and b is not None]
    if not gaps:
        return None, None
    se = float(np.std(gaps, ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else None
    return float(np.mean(gaps)), se
