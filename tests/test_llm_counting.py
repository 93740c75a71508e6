"""The llm-counting experiment (Yehudai et al. 2024 on a pretrained model): the sampled
questions, the prompt text, reading answers, the summary, one-line errors before any model
loads, runs on the tiny test model, and one end-to-end run of the installed program on the
real default model (slow)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import one_line_error, run
from conftest import WORDS

from explorer.experiments import runner
from explorer.experiments.base import RunContext
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
from explorer.experiments.llm_counting import EXPERIMENT, Config, summarize

POOL = [f"w{i}" for i in range(40)]
EXPLORER = Path(sys.executable).parent / "explorer"


# -- questions and prompts ------------------------------------------------------------------
@pytest.mark.parametrize("m", [2, 5, 17])
def test_paired_samples_count_right_and_differ_only_in_the_other_words(m):
    n = 5 * m
    qs = draw_count_samples(POOL, m, n, 30, seed=3)
    assert len(qs) == 30
    for s in qs:
        assert len(s.words) == len(s.binary) == n
        assert len(set(s.words)) <= m and set(s.words) <= set(POOL) and s.query in POOL
        assert s.count == s.words.count(s.query) and s.binary_count == s.binary.count(s.query) == s.count
        assert [w == s.query for w in s.words] == [w == s.query for w in s.binary]  # the query's positions kept
        others = set(s.binary) - {s.query}
        assert len(others) == 1 and others <= set(s.words) | set(POOL)
    if m == 2:  # two words: the baseline is the vocabulary list itself
        assert all(s.binary == s.words for s in qs)
    else:
        assert any(len(set(s.words)) > 2 for s in qs)
    assert sum(s.count for s in qs) / len(qs) == pytest.approx(5, abs=1.5)  # occurrences per word on average


def test_uniform_baseline_has_two_words_and_counts_near_half():
    qs = draw_count_samples(POOL, 10, 200, 20, seed=0, baseline="uniform")
    for s in qs:
        assert len(s.binary) == 200 and len(set(s.binary)) == 2 and s.query in s.binary
        assert s.binary_count == s.binary.count(s.query) and 60 < s.binary_count < 140
        assert s.count == s.words.count(s.query)


def test_samples_are_seeded_by_seed_and_m():
    a = draw_count_samples(POOL, 8, 40, 10, seed=1)
    assert a == draw_count_samples(POOL, 8, 40, 10, seed=1)
    assert a[:4] == draw_count_samples(POOL, 8, 40, 4, seed=1)  # more samples extend, never reshuffle
    assert a != draw_count_samples(POOL, 8, 40, 10, seed=2)
    assert [s.words for s in a] == [s.words for s in draw_count_samples(POOL, 8, 40, 10, seed=1, baseline="uniform")]


def test_too_few_words_for_m():
    with pytest.raises(Exception, match="m=41"):
        draw_count_samples(POOL, 41, 100, 1, seed=0)


def _examples(head: str) -> list[tuple[list[str], str, int]]:
    found = re.findall(r"List: (.*)\nWord: (\S+)\nCount: (\d+)\n", head)
    return [(words.split(), query, int(count)) for words, query, count in found]


def test_few_shot_examples_are_correct_fixed_and_over_their_own_words():
    words = ["red", "blue", "green"]
    head = few_shot_head(words, 4, 2, seed=0, index=0)
    assert head.startswith("Count how many times") and head.endswith("\n\n")
    shots = _examples(head)
    assert len(shots) == 2
    for lst, query, count in shots:
        assert len(lst) == 12 and set(lst) <= set(words) and lst.count(query) == count
    assert few_shot_head(words, 4, 2, seed=0, index=0) == head  # the same for both conditions and every m
    assert few_shot_head(words, 4, 2, seed=0, index=1) != head  # each question has its own
    assert few_shot_head(words, 4, 0, seed=0, index=0).count("List:") == 0


def test_question_text():
    assert count_question(("a", "b", "a"), "a") == "List: a b a\nWord: a\nCount:"


def test_bundled_words_and_a_word_file(tmp_path):
    bundled = read_count_words()
    assert len(bundled) >= 100 + EXAMPLE_WORDS and len(set(bundled)) == len(bundled)
    assert all(w.isalpha() and w.islower() for w in bundled)
    f = tmp_path / "w.txt"
    f.write_text("# comment\nalpha\n\nbeta\nalpha\n gamma \n", encoding="utf-8")
    assert read_count_words(str(f)) == ["alpha", "beta", "gamma"]
    f.write_text("two words\n", encoding="utf-8")
    with pytest.raises(Exception, match="not a single word"):
        read_count_words(str(f))


class SplitTokenizer:
    """A fake tokenizer: a word in its vocabulary is one token, any other one token per letter."""

    def __init__(self, vocab: set[str]):
        self.vocab = vocab

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        ids = [] if not add_special_tokens else [0]
        for word in text.split():
            ids += [1] if word in self.vocab else [2] * len(word)
        return {"input_ids": ids}


def test_single_token_filter_keeps_order_with_a_fake_tokenizer():
    tok = SplitTokenizer({"water", "moon", "dog"})
    assert single_token_words(["moon", "butterfly", "water", "xylophone", "dog"], tok) == ["moon", "water", "dog"]


def test_bundled_words_are_one_token_each_for_gemma(model_cache):
    """With a leading space, as in the prompt; a list of n of them is n tokens."""
    directory = model_cache / "gemma3-270m"
    if not (directory / "tokenizer.json").is_file():
        pytest.skip("the default model is not converted in the model cache")
    from explorer.models.loading import load_tokenizer

    tok = load_tokenizer(directory)
    words = read_count_words()
    kept = single_token_words(words, tok)
    assert kept == words
    s = draw_count_samples(kept[EXAMPLE_WORDS:], 30, 150, 1, seed=0)[0]
    assert len(tok(" " + " ".join(s.words), add_special_tokens=False)["input_ids"]) == 150
    plain = tok(count_question(s.words, s.query), add_special_tokens=False)["input_ids"]
    assert len(tok(count_question(s.binary, s.query), add_special_tokens=False)["input_ids"]) == len(plain)


# -- answers and summary ------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    (" 12\n\nList:", 12), (" 3", 3), ("Seven", 7), (" twenty apples", 20), (" five, or 6", 5), (" 1000", 1000),
    ("\n\n4\n", 4), (" none", None), ("", None), (" List: dog", None), (" often", None),
])
def test_parse_count_answer(text, value):
    assert parse_count_answer(text) == value


def test_answer_stats():
    stats = answer_stats([3, 5, 2, 0], [3, None, 4, 1])
    assert stats == {"mae": 1.0, "exact": 0.25, "unparseable": 0.25, "mean_answer": pytest.approx(8 / 3)}
    assert answer_stats([1, 2], [None, None]) == {"mae": None, "exact": 0.0, "unparseable": 1.0, "mean_answer": None}


def test_paired_gap_compares_the_same_questions():
    # errors: vocabulary 0, 2, -, 3; binary 1, 0, 4, 1 -> gaps -1, +2, (skipped), +2
    mean, se = paired_gap([3, 5, 2, 0], [3, 7, None, 3], [3, 5, 2, 0], [4, 5, 6, 1])
    assert mean == pytest.approx(1.0) and se == pytest.approx(1.0)  # sample std sqrt(3), over sqrt(3)
    assert paired_gap([1], [None], [1], [1]) == (None, None)
    assert paired_gap([1], [2], [1], [1]) == (1.0, None)


def _run_summary(m: int, mae: float | None, binary_mae: float) -> dict:
    return {"m": m, "n": 5 * m, "mae": mae, "binary_mae": binary_mae, "exact": 0.5, "binary_exact": 0.25,
            "unparseable": 0.0 if mae is not None else 1.0, "binary_unparseable": 0.0, "mean_answer": 3.0,
            "binary_mean_answer": 4.0, "constant_mae": 1.5, "same_answer": 0.5, "samples": 4, "answers": {}}


def test_summary_points_sorted_by_m_with_the_issue_keys():
    cfg = Config(occurrences=5)
    finished = [(cfg, _run_summary(16, 2.5, 1.0)), (cfg, _run_summary(4, None, 0.5)), (cfg, _run_summary(8, 1.0, 0.5))]
    s = summarize(cfg, finished)
    pts = s.result["points"]
    assert [p["m"] for p in pts] == [4, 8, 16] and [p["n"] for p in pts] == [20, 40, 80]
    assert {"m", "n", "mae", "binary_mae", "exact", "binary_exact", "unparseable", "binary_unparseable"} <= set(pts[0])
    assert pts[0]["mae"] is None and pts[2]["mae"] == 2.5 and "answers" not in pts[0]
    json.dumps(s.result)
    assert s.figure is not None and s.text.splitlines()[-1].startswith("answering 5")


def test_points_and_estimates():
    assert EXPERIMENT.points(Config(ms=(4, 8))) == [{"m": 4}, {"m": 8}]
    assert EXPERIMENT.points(Config(ms=(), m=6)) == [{"m": 6}]
    smoke, paper = runner.make_plan("llm-counting", "smoke"), runner.make_plan("llm-counting", "paper")
    assert [p.config.m for p in smoke.points] == [4, 8, 16, 32] and len(paper.points) >= 5
    assert 0 < smoke.estimate() < 600 < paper.estimate()
    more = runner.make_plan("llm-counting", "smoke", {"samples": "40"})
    assert more.estimate() > smoke.estimate()


# -- one-line errors before any model loads ----------------------------------------------------
@pytest.mark.parametrize("sets, needle", [
    (["model=no-such-model"], "setting model=no-such-model"),
    (["ms=1,4"], "setting ms=1,4"),
    (["ms=", "m=1"], "setting m=1"),
    (["ms=200"], "setting m=200"),
    (["m=5"], "setting m=5"),  # ms sets m at every point
    (["baseline=triple"], "setting baseline=triple"),
    (["samples=0"], "setting samples=0"),
    (["occurrences=-2"], "setting occurrences=-2"),
    (["words=/no/such/file.txt"], "setting words=/no/such/file.txt"),
])
def test_bad_settings_are_one_line_before_anything_runs(tmp_path, sets, needle):
    args = [a for s in sets for a in ("--set", s)]
    line = one_line_error(run(tmp_path, "experiment", "run", "llm-counting", *args))
    assert needle in line
    assert not (tmp_path / "catalog.duckdb").exists()


def test_a_model_that_does_not_generate_is_refused(tmp_path):
    enc = tmp_path / "encoder"
    enc.mkdir()
    (enc / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    line = one_line_error(run(tmp_path, "experiment", "run", "llm-counting", "--set", f"model={enc}"))
    assert "not a causal language model" in line


def test_an_unconverted_bundled_model_passes_the_checks(tmp_path, monkeypatch):
    """The run converts it once (into the sweep's model cache); the plan must not refuse it."""
    monkeypatch.setenv("EXPLORER_HOME", str(tmp_path))
    monkeypatch.setenv("EXPLORER_MODEL_CACHE", str(tmp_path / "models"))
    assert len(runner.make_plan("llm-counting", "smoke").points) == 4


# -- runs on the tiny test model -------------------------------------------------------------------
def _tiny_config(tiny_model_dir: Path, tmp_path: Path, **kw) -> Config:
    words = tmp_path / "words.txt"
    words.write_text("\n".join(WORDS[:14]) + "\n", encoding="utf-8")
    base = {"model": str(tiny_model_dir), "ms": (), "m": 3, "occurrences": 2, "samples": 5, "shots": 1,
            "words": str(words), "answer_tokens": 3, "batch": 2, "threads": 1}
    return Config(**{**base, **kw})


def _oracle(model, tokenizer, prompts, config, ctx, done=0, total=0):
    """Answers every question with its true count (read from the prompt), as a number word or digits."""
    out = []
    for p in prompts:
        words, query = re.findall(r"List: (.*)\nWord: (\S+)\nCount:$", p)[0]
        count = words.split().count(query)
        out.append(f" {['zero', 'one', 'two', 'three'][count]}" if count < 4 else f" {count}\n")
    return out


def test_run_with_an_oracle_scores_perfectly(tiny_model_dir, tmp_path, monkeypatch):
    from explorer.experiments import llm_counting

    monkeypatch.setattr(llm_counting, "answer_batches", _oracle)
    seen = []
    out = llm_counting.run(_tiny_config(tiny_model_dir, tmp_path), RunContext(0, seed=0, emit=seen.append))
    s = out.summary
    assert (s["m"], s["n"], s["samples"]) == (3, 6, 5)
    assert s["mae"] == s["binary_mae"] == 0.0 and s["exact"] == s["binary_exact"] == 1.0
    assert s["unparseable"] == s["binary_unparseable"] == 0.0
    assert s["answers"]["count"] == s["answers"]["vocabulary"] == s["answers"]["binary"] and s["same_answer"] == 1.0
    assert {e.name for e in seen if e.kind == "metric"} >= {"mae", "binary_mae", "exact", "binary_exact"}


def test_run_on_the_tiny_model_generates_and_parses(tiny_model_dir, tmp_path):
    """Real greedy decoding on a random 2-layer model: what it says is what is scored."""
    from explorer.experiments import llm_counting

    seen = []
    out = llm_counting.run(_tiny_config(tiny_model_dir, tmp_path), RunContext(0, seed=0, emit=seen.append))
    s = out.summary
    a = s["answers"]
    assert len(a["text"]) == 3 and a["vocabulary"][:3] == [parse_count_answer(t) for t in a["text"]]
    assert a["binary"][:3] == [parse_count_answer(t) for t in a["binary_text"]]
    assert s["unparseable"] == a["vocabulary"].count(None) / 5
    assert s["binary_unparseable"] == a["binary"].count(None) / 5
    assert s["prompt_tokens"] < 64  # the tiny model's context
    progress = [e for e in seen if e.kind == "progress"]
    assert progress[-1].step == progress[-1].total == 10


def test_run_refuses_words_that_are_not_one_token(tiny_model_dir, tmp_path):
    from explorer.errors import ExplorerError
    from explorer.experiments import llm_counting

    cfg = _tiny_config(tiny_model_dir, tmp_path, m=12)  # 14 words, of which 3 are examples: 11 to sample
    with pytest.raises(ExplorerError, match="m=12 needs 15 words that are one token"):
        llm_counting.run(cfg, RunContext(0, seed=0))
    cfg = _tiny_config(tiny_model_dir, tmp_path, m=8, occurrences=8)  # 64 words: past the tiny model's context
    with pytest.raises(ExplorerError, match="longer than"):
        llm_counting.run(cfg, RunContext(0, seed=0))


# -- the installed program on the real default model ----------------------------------------------
@pytest.mark.slow
def test_installed_explorer_counts_with_the_default_model(tmp_path, model_cache):
    """From another directory, no --root: points with the issue's keys, in range; at m = 2 the
    baseline is the vocabulary list itself, so both conditions answer alike."""
    assert EXPLORER.is_file(), f"no console script at {EXPLORER}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPLORER_")}
    env.update(EXPLORER_HOME=str(tmp_path / "home"), EXPLORER_MODEL_CACHE=str(model_cache), COLUMNS="80")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = subprocess.run([str(EXPLORER), "experiment", "run", "llm-counting", "--set", "ms=2,6", "--set", "samples=3",
                           "--set", "occurrences=3", "--json"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "finished" and out["experiment"] == "llm-counting"
    pts = out["summary"]["points"]
    assert [(p["m"], p["n"]) for p in pts] == [(2, 6), (6, 18)]
    for p in pts:
        for key in ("exact", "binary_exact", "unparseable", "binary_unparseable"):
            assert 0.0 <= p[key] <= 1.0
        for key in ("mae", "binary_mae"):
            assert p[key] is None or p[key] >= 0
    two = pts[0]
    assert two["same_answer"] == 1.0 and 0.0 <= pts[1]["same_answer"] <= 1.0
    assert (two["mae"], two["exact"], two["unparseable"]) == (two["binary_mae"], two["binary_exact"],
                                                               two["binary_unparseable"])
    assert [r["status"] for r in out["runs"]] == ["finished", "finished"]
