"""Property-based tests over the CLI (Hypothesis; in-process CliRunner on a tiny-model root).

Every generated input either gives exit 0 and a correct answer (the --json output parses,
has the expected keys and agrees with the store), or a non-zero exit with exactly one line
on stderr starting with 'error: ' and no traceback; after a failure the store is as it was
(file checksums, rows per table through ``explorer sql --format json``).

Generated: query expressions (valid and malformed), option values (k, layers, positions,
--variant, --method, --vectors, --multi), token texts with Rich markup characters,
SQL fragments for --where, and malformed files for ``vectors import`` and
``lens translate --words`` (binary, empty, truncated, wrong header, NaN, huge sizes).
"""

from __future__ import annotations

import json
import math
import shutil

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clitools import one_line_error
from conftest import WORDS
from explorer.cli.main import app
from usertools import StoreState, checksums, count_sql

runner = CliRunner()
WIDE = {"COLUMNS": "200"}  # human output checked for exact text: wide enough that nothing wraps
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=15)  # examples that run a model or write files


class Store:
    """A private copy of the tiny-model root (with hidden states) and the CLI on it."""

    def __init__(self, root):
        self.root = root
        self._counts: dict[tuple, dict[str, int]] = {}  # catalog (+ WAL) digests -> rows per table

    def cli(self, *args: str, env: dict | None = None):
        return runner.invoke(app, ["--root", str(self.root), *args], env=env)

    def sql_json(self, query: str) -> list[dict]:
        r = self.cli("sql", query, "--format", "json")
        assert r.exit_code == 0, r.stderr
        rows = json.loads(r.stdout)
        return rows["rows"] if isinstance(rows, dict) else rows

    def state(self) -> StoreState:
        """File checksums and rows per table; the counts are asked again only when the
        catalog file (or its WAL) changed, since they are a function of its content."""
        files = checksums(self.root)
        key = tuple(sorted((k, v) for k, v in files.items() if k.startswith("catalog.duckdb")))
        if key not in self._counts:
            self._counts[key] = count_sql(self.sql_json)
        return StoreState(files, self._counts[key])

    def model_id(self, name: str) -> int:
        return self.sql_json(f"SELECT model_id FROM models WHERE name = '{name}'")[0]["model_id"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_root) -> Store:
    from explorer.services.states import export_states

    root = tmp_path_factory.mktemp("props") / "root"
    shutil.copytree(tiny_root, root)
    corpus = root.parent / "corpus.txt"
    corpus.write_text("the king and the queen\nman woman boy girl\nParis France Berlin Germany\n", encoding="utf-8")
    export_states("tiny-llama", root, corpus=corpus, name="props")
    return Store(root)


def failed_cleanly(result, store: Store, before: StoreState) -> str:
    """The failure contract: one 'error: ' line, no traceback, no internal error, the store as before."""
    line = one_line_error(result)
    assert "internal error" not in line, line
    after = store.state()
    assert not before.diff(after), before.diff(after)
    return line


# --- query expressions ------------------------------------------------------------------------

known = st.sampled_from(WORDS)  # three in four terms are words of the tiny vocabulary
words = st.one_of(known, known, known, st.sampled_from(["qqqq", "King", "xyz", "ing", "z", "<bos>", "Queen", "[bold]",
                                                        "\\", "kin g", ""]))
weights = st.one_of(st.just(""), st.just(""), st.sampled_from(["0.5*", "2*", "-1*", "1e3*", ".5*", "1.5 *"]),
                    st.sampled_from(["0*", "nan*", "inf*", "1e400*", "*", "-*", "1e-400*"]))


@st.composite
def valid_expressions(draw) -> str:
    terms = draw(st.lists(st.tuples(weights, words, st.booleans()), min_size=1, max_size=4))
    out = ""
    for i, (w, word, quoted) in enumerate(terms):
        op = "" if i == 0 else draw(st.sampled_from([" + ", " - ", "+", "-"]))
        out += op + w + (f'"{word}"' if quoted else word)
    return out


junk_expressions = st.text(alphabet="kingqueman +-*()\"'0.5[]\\:,;e", max_size=24)


def check_answer(out: dict, k: int, store: Store) -> None:
    """A correct query answer: at most k ranked results, best first, finite scores, no input among them."""
    assert {"expression", "results", "inputs", "method"} <= set(out)
    res = out["results"]
    assert len(res) <= k and [h["rank"] for h in res] == list(range(1, len(res) + 1))
    scores = [h["score"] for h in res]
    assert all(math.isfinite(s) for s in scores), scores
    assert scores == sorted(scores, reverse=True)
    if not out.get("keep_inputs"):  # single-token inputs (an averaged word's pieces are not the word)
        inputs = {i["token_id"] for i in out["inputs"] if i.get("token_id") is not None}
        assert not inputs & {h["token_id"] for h in res}


@SETTINGS
@given(expr=st.one_of(valid_expressions(), junk_expressions))
@example(expr="-k")  # an expression that looks like an option (it ran the default model on 'tiny-llama')
@example(expr="king - king")
@example(expr="1e-400*king")
def test_query_expressions(store, expr):
    before = store.state()
    # after '--' an expression that starts with '-' is not read as an option (as a user must write it)
    r = store.cli("query", "--model", "tiny-llama", "-k", "5", "--json", "--", expr)
    event("answered" if r.exit_code == 0 else "refused")
    if r.exit_code == 0:
        check_answer(json.loads(r.stdout), 5, store)
        assert not before.diff(store.state())  # a query writes nothing
    else:
        failed_cleanly(r, store, before)


# --- option values ----------------------------------------------------------------------------

ints = st.one_of(st.integers(-3, 40), st.sampled_from(["", "many", "1.5", "1e9", "99999999999999999999", "-0"]))
options = st.fixed_dictionaries({}, optional={
    "-k": ints,
    "--method": st.sampled_from(["3cosadd", "3cosmul", "3COSADD", "cos", ""]),
    "--variant": st.sampled_from(["auto", "initial", "bare", "raw", "nope", ""]),
    "--multi": st.sampled_from(["refuse", "average", "nope"]),
    "--vectors": st.sampled_from(["input", "output", "nope"]),
    "--layer": st.one_of(st.integers(-2, 4), st.just("x")),
})


@SETTINGS
@given(opts=options, word=st.sampled_from(["king", "woman - man + king", "xyz"]))
@example(opts={"--multi": "average"}, word="xyz")
def test_query_options(store, opts, word):
    before = store.state()
    args = [a for kv in opts.items() for a in kv]
    r = store.cli("query", word, "--model", "tiny-llama", "--json", *args)
    event("answered" if r.exit_code == 0 else "refused")
    if r.exit_code == 0:
        k = int(opts.get("-k", 10))
        assert k >= 1
        out = json.loads(r.stdout)
        check_answer(out, k, store)
        assert out["method"] == opts.get("--method", "3cosadd").lower()
        assert not before.diff(store.state())
    else:
        failed_cleanly(r, store, before)


@FEW
@given(layer=st.one_of(st.integers(-3, 4), st.just("last")), position=st.one_of(st.integers(-6, 6), st.just("x")),
       k=st.integers(-1, 12))
def test_positions_and_layers(store, layer, position, k):
    """neighbours --layer/--position over stored states; trajectory --position: in range or one line."""
    before = store.state()
    r = store.cli("neighbours", "--layer", str(layer), "king queen man", "--position", str(position), "-k", str(k),
                  "--model", "tiny-llama", "--corpus", "props", "--json")
    if r.exit_code == 0:
        out = json.loads(r.stdout)
        assert 0 <= int(layer) <= 2 and -3 <= int(position) <= 2 and k >= 1
        assert 1 <= len(out["results"]) <= k
    else:
        failed_cleanly(r, store, before)
    r = store.cli("trajectory", "king queen man", "--position", str(position), "-k", str(k), "--model", "tiny-llama",
                  "--json")
    if r.exit_code == 0:
        out = json.loads(r.stdout)
        assert -3 <= int(position) <= 2 and k >= 1
        assert [v["layer"] for v in out["layers"]] == [0, 1, 2]
        assert all(len(v["lens_top"]) == k for v in out["layers"])
    else:
        failed_cleanly(r, store, before)


# --- token texts with markup characters ---------------------------------------------------------

markup_texts = st.lists(
    st.one_of(st.sampled_from(["[multimodal]", "[bold]", "[/]", "[/bold]", "\\[x]", ":smile:", "[red]r[/red]",
                               "[link=http://x]l[/link]", "\\", "[", "]", "a]b[c", "[[", "x:y:z", ":thumbs_up:"]),
              st.text(alphabet="[]/\\:ab=#@", min_size=1, max_size=10)),
    min_size=3, max_size=6, unique=True)


@FEW
@given(texts=markup_texts, seed=st.integers(0, 2**16))
def test_markup_in_token_texts_is_shown_as_written(store, texts, seed):
    """Token texts are data, never Rich markup: each shows exactly as written (as repr in
    query and neighbour tables, as is in `sql` tables)."""
    from explorer.store.interchange import import_arrays

    matrix = np.random.default_rng(seed).normal(size=(len(texts), 4)).astype(np.float32)
    import_arrays(store.root, "markup", texts, matrix, replace=True)
    mid = store.model_id("markup")
    r = store.cli("neighbours", "--id", "0", "--model", "markup", "--keep-inputs", env=WIDE)
    assert r.exit_code == 0, r.stderr
    shown = json.loads(store.cli("neighbours", "--id", "0", "--model", "markup", "--keep-inputs", "--json").stdout)
    for h in shown["results"]:
        assert repr(h["token"]) in r.stdout, (h["token"], r.stdout)
    r = store.cli("sql", f"SELECT token_id, raw FROM tokens WHERE model_id = {mid} ORDER BY token_id", env=WIDE)
    assert r.exit_code == 0, r.stderr
    cells = [c.strip() for line in r.stdout.splitlines() for c in line.split("│")]
    for t in texts:
        assert t in cells, (t, r.stdout)
    r = store.cli("query", texts[1], "--model", "markup", "--variant", "raw", env=WIDE)
    if r.exit_code == 0:  # the heading names the expression as typed
        assert f"Answers: {texts[1]}" in r.stdout, r.stdout
    else:
        assert "internal error" not in one_line_error(r)


# --- SQL fragments for --where ------------------------------------------------------------------

columns = st.one_of(st.sampled_from(["token_id", "raw", "text", "leading_space", "script", "is_special", "is_byte"]),
                    st.sampled_from(["model_id", "no_such_column", "tokens.raw", "rowid"]))
literals = st.sampled_from(["1", "5", "'latin'", "'%in%'", "true", "NULL", "-5", "'a''b'", "'▁king'"])
comparisons = st.builds(lambda c, op, v: f"{c} {op} {v}", columns, st.sampled_from(["=", "<", ">", "<>", "LIKE"]),
                        literals)
atoms = st.one_of(comparisons, st.builds(lambda c: f"{c} IS NULL", columns), st.builds(lambda c: c, columns),
                  st.sampled_from(["length(text) > 3", "starts_with(raw, '▁')", "token_id % 2 = 0"]))
predicates = st.recursive(atoms, lambda p: st.one_of(
    st.builds(lambda a, b: f"{a} AND {b}", p, p), st.builds(lambda a, b: f"{a} OR {b}", p, p),
    st.builds(lambda a: f"NOT ({a})", p)), max_leaves=4)
attacks = st.sampled_from([")", "(", "--", ";", "/*", "1=1) UNION SELECT 1 --", "; DROP TABLE tokens",
                           "token_id IN (SELECT token_id FROM tokens)", "1=1; DELETE FROM tokens",
                           "raw = (SELECT current_setting('threads'))", "read_csv('/etc/passwd') IS NULL",
                           "getenv('HOME') IS NOT NULL", "true) OR (true", "", "  "])
where = st.one_of(predicates, predicates, attacks, st.builds(lambda p, a: f"{p} {a}", predicates, attacks))


@SETTINGS
@given(pred=where, command=st.sampled_from(["query", "neighbours"]))
@example(pred="token_id --", command="query")
@example(pred="token_id ;", command="query")  # found: accepted, though ';' ends a statement
@example(pred="1=1) UNION SELECT 1 --", command="neighbours")
def test_where_fragments(store, pred, command):
    before = store.state()
    r = store.cli(command, "king", "--model", "tiny-llama", "--where", pred, "-k", "31", "--json")
    event("answered" if r.exit_code == 0 else "refused")
    if r.exit_code != 0:
        failed_cleanly(r, store, before)
        return
    out = json.loads(r.stdout)
    check_answer(out, 31, store)
    ids = [h["token_id"] for h in out["results"]]
    assert not before.diff(store.state())
    if ids:  # every answer satisfies the predicate, checked by DuckDB directly on the catalog
        con = duckdb.connect(str(store.root / "catalog.duckdb"), read_only=True)
        try:
            matching = {t for (t,) in con.execute(
                f"SELECT token_id FROM tokens WHERE model_id = (SELECT model_id FROM models WHERE name = 'tiny-llama') "
                f"AND ({pred}\n)").fetchall()}  # the newline ends a trailing -- comment
        except duckdb.Error as exc:
            pytest.fail(f"--where {pred!r} was accepted but is not a valid predicate on tokens: {exc}")
        finally:
            con.close()
        assert set(ids) <= matching, (pred, set(ids) - matching)


# --- malformed files ----------------------------------------------------------------------------

VALID_W2V = "4 3\nking 0.1 0.2 0.3\nqueen 0.2 0.1 0.0\nman -1 0 1\nwoman 1 1 1\n"
# a file that says it holds more (or other) than it does, or holds NaN / inf: refused with its line
MUST_FAIL = {"truncated", "header", "nan", "empty", "huge", "extra column", "missing column", "fewer rows"}


@st.composite
def vector_files(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["valid", "truncated", "header", "nan", "binary", "empty", "huge", "extra column",
                                 "missing column", "nul", "flipped", "glove", "fewer rows", "duplicate word"]))
    data = VALID_W2V.encode()
    if kind == "truncated":
        data = data[:draw(st.integers(1, len(data) - 2))]
    elif kind == "header":
        data = draw(st.sampled_from([b"x y\n", b"4\n", b"4 3 2\n", b"-4 3\n", b"4 0\n", b"0 3\n"])) + data.split(b"\n", 1)[1]
    elif kind == "nan":
        data = data.replace(b"0.2", draw(st.sampled_from([b"nan", b"inf", b"-inf", b"NaN", b"1e999"])), 1)
    elif kind == "binary":
        data = draw(st.binary(min_size=1, max_size=200))
    elif kind == "empty":
        data = b""
    elif kind == "huge":
        data = draw(st.sampled_from([b"99999999999 99999999999\n", b"1000000000 3\n", b"4 1000000000\n",
                                     b"9223372036854775807 3\n"])) + data.split(b"\n", 1)[1]
    elif kind == "extra column":
        data = data.replace(b"0.3\n", b"0.3 0.4\n")
    elif kind == "missing column":
        data = data.replace(b" 0.3\n", b"\n")
    elif kind == "nul":
        data = data.replace(b"king", b"ki\x00ng")
    elif kind == "flipped":
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    elif kind == "glove":
        data = data.split(b"\n", 1)[1]
    elif kind == "fewer rows":
        data = data.replace(b"4 3", b"5 3")
    elif kind == "duplicate word":
        data = data.replace(b"queen", b"king")
    return kind, data


@SETTINGS
@given(case=vector_files(), suffix=st.sampled_from([".txt", ".vec", ".bin", ".tsv"]))
def test_vectors_import_of_malformed_files(store, tmp_path_factory, case, suffix):
    kind, data = case
    path = tmp_path_factory.getbasetemp() / f"import{suffix}"
    path.write_bytes(data)
    before = store.state()
    r = store.cli("vectors", "import", str(path), "--name", "imported", "--replace", "--json")
    event(f"{kind}: {'imported' if r.exit_code == 0 else 'refused'}")
    if r.exit_code != 0:
        assert kind not in ("valid", "glove") or suffix == ".tsv", r.stderr  # a .tsv is read as a projector file
        failed_cleanly(r, store, before)
        return
    assert kind not in MUST_FAIL, f"{kind} file accepted: {r.stdout}"
    out = json.loads(r.stdout)
    stored = np.load(store.root / "sets" / "imported" / "input" / "vectors.npy")
    assert stored.shape == (out["rows"], out["dim"]) and out["rows"] >= 1 and out["dim"] >= 1
    assert np.isfinite(stored).all(), f"{kind}: non-finite vectors stored"
    mid = store.model_id("imported")
    (n,) = store.sql_json(f"SELECT count(DISTINCT raw) AS n FROM tokens WHERE model_id = {mid}")
    assert n["n"] == out["rows"]  # one row per distinct word
    if kind in ("valid", "glove"):
        assert (out["rows"], out["dim"]) == (4, 3)
        np.testing.assert_allclose(stored[0], [0.1, 0.2, 0.3], rtol=1e-6)


VALID_WORDS = "concept,en,ru\nking,king,король\nqueen,queen,королева\nwater,water,水\n"


@st.composite
def word_lists(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["valid", "binary", "empty", "header only", "no source column", "unknown language",
                                 "nul", "quote", "long line", "blank cells", "truncated", "bom", "latin-1"]))
    data = VALID_WORDS.encode()
    if kind == "binary":
        data = draw(st.binary(min_size=1, max_size=200))
    elif kind == "empty":
        data = b""
    elif kind == "header only":
        data = b"concept,en,ru\n"
    elif kind == "no source column":
        data = data.replace(b"concept,en,ru", b"concept,fr,ru")
    elif kind == "unknown language":
        data = data.replace(b"concept,en,ru", b"concept,en,xx")
    elif kind == "nul":
        data = data.replace(b"queen,queen", b"queen,qu\x00een")
    elif kind == "quote":
        data = data.replace(b"water,water", b'water,"water')
    elif kind == "long line":
        data += b"x," + b"a" * 100_000 + b",b\n"
    elif kind == "blank cells":
        data = data.replace(b"water,water,", b"water,,")
    elif kind == "truncated":
        data = data[:draw(st.integers(1, len(data) - 1))]
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + data
    elif kind == "latin-1":
        data = "concept,en,ru\nking,king,r\xf6i\n".encode("latin-1")
    return kind, data


@FEW
@given(case=word_lists())
@example(case=("truncated", "concept,en,ru\nking,king,\u043a".encode()))  # found: refused after the model loaded
def test_lens_word_lists(store, tmp_path_factory, case):
    kind, data = case
    path = tmp_path_factory.getbasetemp() / "words.csv"
    path.write_bytes(data)
    before = store.state()
    r = store.cli("lens", "translate", "--from", "en", "--to", "ru", "--model", "tiny-llama", "--words", str(path),
                  "--shots", "1", "--json")
    event(f"{kind}: {'ran' if r.exit_code == 0 else 'refused'}")
    if r.exit_code != 0:
        assert kind != "valid", r.stderr
        failed_cleanly(r, store, before)
        return
    assert kind not in ("binary", "empty", "header only", "no source column", "unknown language", "latin-1"), \
        f"{kind} word list accepted: {r.stdout[:500]}"
    out = json.loads(r.stdout)
    assert [v["layer"] for v in out["layers"]] == [0, 1, 2]
    assert 1 <= out["entries"] <= data.count(b"\n")
    assert 0.0 <= out["accuracy"] <= 1.0
