"""`explorer compare`: the numbers of `explorer query`, per model; accuracy over a file; rows in SQL."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from clitools import one_line_error, run
from explorer.services.engine import Engine
from explorer.services.query import QueryOptions, SetChoice, analogy
from explorer.store.catalog import Catalog
from explorer.viz.comparison import read_analogy_items

TOY_WORDS = ["king", "queen", "man", "woman", "boy", "girl", "apple", "Paris"]  # no 'prince', no 'France'


@pytest.fixture(scope="module")
def two_root(tiny_root, tmp_path_factory):
    """A copy of the tiny store (the session fixture stays untouched) plus an imported toy set."""
    from explorer.store.interchange import import_arrays

    root = tmp_path_factory.mktemp("compare") / "root"
    shutil.copytree(tiny_root, root)
    matrix = np.random.default_rng(7).normal(size=(len(TOY_WORDS), 6)).astype(np.float32)
    import_arrays(root, "toy", TOY_WORDS, matrix)
    return root


def _check_equal(row: dict, q: dict) -> None:
    """One compare result against `explorer query --json` for the same inputs."""
    assert row["vector_set"] == q["vector_set"] and row["expression"] == q["expression"]
    assert [(h["token_id"], h["token"]) for h in row["top"]] == [(h["token_id"], h["token"]) for h in q["results"]]
    assert [h["score"] for h in row["top"]] == [h["score"] for h in q["results"]]
    assert row["rank_excluded"] == q["expected"]["rank_excluded"] and row["rank_kept"] == q["expected"]["rank_kept"]
    assert row["offset_cosine"] == q["diagnostics"]["offset_cosine"]
    assert row["reverse_cosine"] == q["diagnostics"]["reverse_cosine"]
    assert row["correct"] == (q["expected"]["rank_excluded"] == 1)


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_compare_equals_query(two_root, method):
    r = run(two_root, "compare", "woman - man + king", "--expect", "queen", "-m", "tiny-llama", "-m", "toy",
            "--method", method, "-k", "4", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["models"] == ["tiny-llama", "toy"] and out["kind"] == "expression" and out["comparison_id"] >= 1
    for row in out["results"]:
        q = run(two_root, "query", "woman - man + king", "--expect", "queen", "--model", row["model"],
                "--method", method, "-k", "4", "--json")
        assert q.exit_code == 0, q.stderr
        _check_equal(row, json.loads(q.stdout))


def test_compare_human_table_and_missing_word(two_root):
    r = run(two_root, "compare", "woman - man + prince", "--expect", "princess", "-m", "tiny-llama", "-m", "toy")
    assert r.exit_code == 0, r.stderr
    # the notes are plain lines (wrapped only at spaces, so whitespace is normalised); table
    # cells may be truncated at narrow widths, so only the first column's short names are checked
    text = " ".join(r.stdout.split())
    assert "┏" in r.stdout and "tiny-llama" in r.stdout.split() and "toy" in r.stdout.split()
    assert "unknown word 'prince' in toy" in text and "recorded as comparison" in text
    out = json.loads(run(two_root, "compare", "woman - man + prince", "-m", "toy", "--json").stdout)
    (row,) = out["results"]
    assert row["rank_excluded"] is None and row["top"] == [] and "prince" in row["note"]


def test_compare_file_accuracy(two_root, tmp_path):
    f = tmp_path / "analogies.txt"
    f.write_text(
        "# gender\n: section one\nman : woman :: king : queen\n\nman woman boy girl\n"
        "Paris : France :: Berlin : Germany\nking : queen :: man : woman\n",
        encoding="utf-8",
    )
    items = read_analogy_items(f)
    assert [i.item for i in items] == [3, 5, 6, 7]
    r = run(two_root, "compare", "--file", str(f), "-m", "tiny-llama", "-m", "toy", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "file" and len(out["results"]) == 8
    engine = Engine(two_root)
    for model in ("tiny-llama", "toy"):
        rows = [x for x in out["results"] if x["model"] == model]
        correct = 0
        for row, it in zip(rows, items):
            assert row["item"] == it.item
            if model == "toy" and it.item == 6:  # no 'France' in toy: a miss with a note
                assert row["note"] and row["correct"] is False and row["rank_excluded"] is None
                continue
            q = analogy(engine, it.expression, QueryOptions(SetChoice(model=model), k=5, expect=it.expected)).to_dict()
            _check_equal(row, q)
            correct += q["expected"]["rank_excluded"] == 1
        (s,) = [x for x in out["summary"] if x["model"] == model]
        covered = 4 if model == "tiny-llama" else 3
        assert (s["items"], s["covered"], s["correct"]) == (4, covered, correct)
        assert s["accuracy"] == pytest.approx(correct / 4) and s["accuracy_covered"] == pytest.approx(correct / covered)
    human = run(two_root, "compare", "--file", str(f), "-m", "tiny-llama", "-m", "toy")
    text = " ".join(human.stdout.split())  # the title follows the (long) file path and wraps
    assert human.exit_code == 0 and "accuracy per model" in text and "1 of 4 items missing" in text


def test_comparisons_are_visible_in_sql(two_root):
    out = json.loads(run(two_root, "compare", "woman - man + king", "--expect", "queen", "-m", "tiny-llama", "-m", "toy",
                         "--json").stdout)
    cid = out["comparison_id"]
    r = run(two_root, "sql", f"SELECT model, rank_excluded, rank_kept, offset_cosine, correct, top FROM comparison_results "
                             f"WHERE comparison_id = {cid} ORDER BY model", "--format", "json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)
    rows = rows["rows"] if isinstance(rows, dict) else rows
    by_model = {x["model"] if isinstance(x, dict) else x[0]: x for x in rows}
    assert set(by_model) == {"tiny-llama", "toy"}
    cat = Catalog(two_root)
    for res in out["results"]:
        (got,) = cat.query("SELECT rank_excluded, rank_kept, offset_cosine, reverse_cosine, correct, top FROM "
                           "comparison_results WHERE comparison_id = ? AND model = ?", [cid, res["model"]])
        assert got[:5] == (res["rank_excluded"], res["rank_kept"], res["offset_cosine"], res["reverse_cosine"], res["correct"])
        assert [h["token_id"] for h in json.loads(got[5])] == [h["token_id"] for h in res["top"]]
    (head,) = cat.query("SELECT kind, source, expect, method, vectors, models FROM comparisons WHERE comparison_id = ?", [cid])
    assert head == ("expression", "woman - man + king", "queen", "3cosadd", "input", ["tiny-llama", "toy"])
    summary = cat.query("SELECT model, items, covered, accuracy FROM comparison_summary WHERE comparison_id = ? ORDER BY model", [cid])
    assert [s[:3] for s in summary] == [("tiny-llama", 1, 1), ("toy", 1, 1)]


def test_missing_vector_set_is_a_note_not_a_crash(two_root):
    r = run(two_root, "compare", "woman - man + king", "-m", "tiny-llama", "-m", "toy", "--vectors", "output", "--json")
    assert r.exit_code == 0, r.stderr
    rows = {x["model"]: x for x in json.loads(r.stdout)["results"]}
    assert rows["tiny-llama"]["top"] and rows["toy"]["top"] == [] and "no 'output' vector set" in rows["toy"]["note"]


def test_a_comparison_is_stored_whole_or_not_at_all(two_root, tmp_path):
    """The repository writes a comparison and its results in one transaction (a failure
    half-way leaves nothing); ids come from a sequence."""
    from dataclasses import replace

    from explorer.services.compare import CompareOptions, compare_models, expression_question
    from explorer.store.comparisons import record_comparison

    root = tmp_path / "root"
    shutil.copytree(two_root, root)
    engine = Engine(root)
    first = compare_models(engine, expression_question("woman - man + king", "queen"), CompareOptions(("toy",)))
    cat = engine.catalog

    def counts():
        return [cat.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("comparisons", "comparison_results")]

    before = counts()
    unwritable = replace(first.outcomes[0], top=({"token": object()},))  # fails after the comparison row was inserted
    with pytest.raises(TypeError):
        record_comparison(cat, replace(first, outcomes=(first.outcomes[0], unwritable)))
    assert counts() == before
    second = record_comparison(cat, first)
    assert second > first.comparison_id and counts() == [before[0] + 1, before[1] + 1]


@pytest.mark.parametrize(
    "args, content, pattern",
    [
        (["woman - man + king", "-m", "nope"], None, r"unknown model 'nope'"),
        (["--file", "{f}", "-m", "toy"], "man : woman :: king : queen\n\nman : woman :: king\n", r"analogies\.txt:3: expected"),
        (["--file", "{f}", "-m", "toy"], "man woman king\n", r"analogies\.txt:1: expected"),
        (["--file", "{f}", "-m", "toy"], "# nothing\n", r"no analogies"),
        (["--file", "{missing}", "-m", "toy"], None, r"no such analogy file"),
        (["woman - man + king", "--file", "{f}"], "a : b :: c : d\n", r"exactly one of"),
        ([], None, r"exactly one of"),
        (["king +", "-m", "toy"], None, r"ends with an operator"),
        (["king", "-m", "toy", "--method", "cos"], None, r"unknown method"),
    ],
)
def test_compare_bad_input_is_one_line(two_root, tmp_path, args, content, pattern):
    f = tmp_path / "analogies.txt"
    if content is not None:
        f.write_text(content, encoding="utf-8")
    args = [a.format(f=f, missing=tmp_path / "missing.txt") for a in args]
    line = one_line_error(run(two_root, "compare", *args))
    assert re.search(pattern, line), line


def _trained_toy() -> tuple[list[str], np.ndarray]:
    """Toy embeddings trained on the bundled sample corpus: PPMI of +-2-word co-occurrence, then SVD."""
    import csv
    from importlib import resources

    with resources.files("explorer.data").joinpath("sample_corpus.tsv").open(encoding="utf-8") as f:
        sents = [re.findall(r"[a-z]+", r["text"].lower()) for r in csv.DictReader(f, delimiter="\t") if r["lang"] == "en"]
    words = sorted({w for s in sents for w in s})
    index = {w: i for i, w in enumerate(words)}
    counts = np.zeros((len(words), len(words)))
    for s in sents:
        for i, w in enumerate(s):
            for j in range(max(0, i - 2), min(len(s), i + 3)):
                if j != i:
                    counts[index[w], index[s[j]]] += 1
    total, rows, cols = counts.sum(), counts.sum(1, keepdims=True), counts.sum(0, keepdims=True)
    with np.errstate(divide="ignore"):
        ppmi = np.maximum(np.log(counts * total / (rows * cols)), 0)
    u, s, _ = np.linalg.svd(np.nan_to_num(ppmi), full_matrices=False)
    return words, (u[:, :16] * np.sqrt(s[:16])).astype(np.float32)


@pytest.mark.slow
def test_compare_default_model_and_a_trained_toy_set(gemma_root):
    from explorer.store.interchange import import_arrays

    words, matrix = _trained_toy()
    import_arrays(gemma_root, "toy-ppmi", words, matrix, replace=True)
    r = run(gemma_root, "compare", "mother - father + king", "--expect", "queen", "-m", "gemma3-270m", "-m", "toy-ppmi",
            "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["models"] == ["gemma3-270m", "toy-ppmi"]
    for row in out["results"]:
        assert row["note"] is None
        q = run(gemma_root, "query", "mother - father + king", "--expect", "queen", "--model", row["model"], "-k", "5",
                "--json")
        _check_equal(row, json.loads(q.stdout))
