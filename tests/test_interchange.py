"""Data in and out: projector TSV, Parquet, word2vec text/binary, GloVe (explorer.store.interchange)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clitools import one_line_error, run, runner
from explorer.cli import vectors as vectors_cli
from explorer.cli.main import app
from explorer.services.engine import Engine
from explorer.services.query import QueryOptions, SetChoice, analogy
from explorer.errors import ExplorerError
from explorer.store import interchange as ix
from explorer.store.catalog import Catalog
from explorer.store.sets import storage_row
from explorer.store.vectorset import VectorSet

FORMATS = ix.EXPORT_FORMATS
OUT_NAME = {"projector": "proj", "parquet": "v.parquet", "word2vec": "v.txt", "word2vec-binary": "v.bin"}


@pytest.fixture(scope="module", autouse=True)
def vectors_group():
    """The ``vectors`` group on the real app for this module's tests only (a no-op once
    main.py registers it), so other modules' checks of the command list are unaffected."""
    before = list(app.registered_groups)
    vectors_cli.register(app)
    yield
    app.registered_groups[:] = before


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def stored(root: Path, model: str, vectors: str = "input") -> tuple[np.ndarray, list[str]]:
    """A stored set's matrix and its tokens' raw strings, straight from the store."""
    cat = Catalog(root)
    m = cat.model(model)
    row = storage_row(cat, cat.vector_set(m.model_id, vectors))
    matrix = np.array(VectorSet.open(root / row.path).vectors)
    raws = [r[0] for r in cat.query("SELECT raw FROM tokens WHERE model_id = ? ORDER BY token_id", [m.model_id])]
    return matrix, raws


def expected_words(fmt: str, words: list[str]) -> list[str]:
    return [ix.word2vec_word(w) for w in words] if fmt.startswith("word2vec") else list(words)


def projector_tokens(directory: Path) -> list[str]:
    lines = (directory / "metadata.tsv").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "token\ttoken_id\tscript" and lines[-1] == ""
    return [ix.tsv_unescape(line.split("\t")[0]) for line in lines[1:-1]]


def round_trip(root: Path, model: str, fmt: str, out_dir: Path, words: list[str], matrix: np.ndarray) -> None:
    """Export model/input as fmt, import it as a fresh model, compare bit for bit, export
    that again and compare the files."""
    first = out_dir / f"first-{OUT_NAME[fmt]}"
    ix.export_set(root, model, "input", fmt, first)
    back_name = f"{model}-{fmt}"
    rep = ix.import_file(root, first, name=back_name)
    assert rep.format == fmt and (rep.rows, rep.dim) == matrix.shape
    got, got_words = stored(root, back_name)
    assert np.array_equal(bits(got), bits(matrix))
    assert got_words == expected_words(fmt, words)
    again = out_dir / f"again-{OUT_NAME[fmt]}"
    ix.export_set(root, back_name, "input", fmt, again)
    if fmt == "projector":
        assert (again / "vectors.tsv").read_bytes() == (first / "vectors.tsv").read_bytes()
        assert projector_tokens(again) == projector_tokens(first) == words
    elif fmt == "parquet":
        w2, m2, _ = ix.read_vectors(again)
        assert w2 == words and np.array_equal(bits(m2), bits(matrix))
    else:
        assert again.read_bytes() == first.read_bytes()


# -- words ------------------------------------------------------------------------------


def test_word2vec_words_hold_no_whitespace_and_mapping_is_idempotent():
    every_space = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    controls = [chr(c) for c in range(0x20)] + ["\x7f"]
    for c in every_space + controls:
        w = ix.word2vec_word(f"a{c}b")
        assert not any(ch.isspace() for ch in w) and not any(ord(ch) < 0x20 for ch in w), repr(w)
        assert ix.word2vec_word(w) == w
    assert ix.word2vec_word(" king") == "▁king"
    assert ix.word2vec_word("a\nb\tc") == "a␊b␉c"
    assert ix.word2vec_word("\u3000") == "<U+3000>"
    assert ix.word2vec_word("") == ix.EMPTY_WORD
    assert ix.word2vec_word("▁king") == "▁king"


@given(st.text())
def test_tsv_escape_is_reversible_and_one_line_one_column(text):
    esc = ix.tsv_escape(text)
    assert ix.tsv_unescape(esc) == text
    assert "\t" not in esc and len(esc.splitlines()) <= 1 and "\n" not in esc


# -- the tiny model: bit-for-bit round trips ------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_tiny_model_round_trip_bit_for_bit(tiny_root, tmp_path, fmt):
    matrix, raws = stored(tiny_root, "tiny-llama")
    assert matrix.shape == (31, 16)
    out = tmp_path / OUT_NAME[fmt]
    r = run(tiny_root, "vectors", "export", "--model", "tiny-llama", "--vectors", "input", "--format", fmt,
            "--output", str(out), "--json")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["rows"] == 31 and rep["dim"] == 16 and rep["format"] == fmt
    root = tmp_path / "root"
    r = run(root, "vectors", "import", str(out), "--name", "back", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == 31
    got, words = stored(root, "back")
    assert np.array_equal(bits(got), bits(matrix))
    assert words == expected_words(fmt, raws)
    # the imported copy exports to the identical file
    ix.import_arrays(root, "tiny", raws, matrix)  # same words as tiny-llama, in a writable root
    round_trip(root, "tiny", fmt, tmp_path, raws, matrix)


def test_tied_output_set_follows_its_alias(tmp_path_factory):
    from explorer.models.export import export_model
    from conftest import build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("tied") / "tiny-tied", tied=True)
    root = tmp_path_factory.mktemp("tied-root")
    export_model(str(model_dir), root)
    cat = Catalog(root)
    m = cat.model("tiny-tied")
    assert cat.vector_set(m.model_id, "output").same_as is not None
    out = tmp_path_factory.mktemp("tied-out")
    ix.export_set(root, "tiny-tied", "output", "word2vec-binary", out / "o.bin")
    ix.export_set(root, "tiny-tied", "input", "word2vec-binary", out / "i.bin")
    assert (out / "o.bin").read_bytes() == (out / "i.bin").read_bytes()


floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def matrices_and_words(draw):
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 5))
    matrix = draw(arrays(np.float32, (n, d), elements=floats32))
    words = draw(st.lists(st.text(min_size=1, max_size=6), min_size=n, max_size=n, unique=True))
    return matrix, words


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(matrices_and_words())
def test_generated_matrix_round_trips_bit_for_bit(case):
    matrix, words = case
    assume(len({ix.word2vec_word(w) for w in words}) == len(words))
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "root", Path(tmp) / "out"
        out.mkdir()
        ix.import_arrays(root, "gen", words, matrix)
        got, got_words = stored(root, "gen")
        assert np.array_equal(bits(got), bits(matrix)) and got_words == words
        for fmt in FORMATS:
            round_trip(root, "gen", fmt, out, words, matrix)


def test_glove_is_word2vec_text_without_the_header(tmp_path):
    root = tmp_path / "root"
    matrix = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    words = ["a", "b", "c", "d", "e"]
    ix.import_arrays(root, "g", words, matrix)
    ix.export_set(root, "g", "input", "word2vec", tmp_path / "g.txt")
    glove = tmp_path / "glove.6B.4d.txt"
    glove.write_text("".join((tmp_path / "g.txt").read_text().splitlines(keepends=True)[1:]))
    assert ix.detect_format(glove) == "glove"
    rep = ix.import_file(root, glove)
    assert rep.model == "glove.6B.4d" and rep.format == "glove"
    got, got_words = stored(root, "glove.6B.4d")
    assert got_words == words and np.array_equal(bits(got), bits(matrix))


@pytest.mark.parametrize("header", [True, False])
def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path, header):
    root = tmp_path / "root"
    matrix = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    ix.import_arrays(root, "src", ["alpha", "beta", "gamma"], matrix)
    ix.export_set(root, "src", "input", "word2vec", tmp_path / "w.txt")
    lines = (tmp_path / "w.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    bom = tmp_path / ("bom.txt" if header else "bom-glove.txt")
    bom.write_bytes(b"\xef\xbb\xbf" + "".join(lines if header else lines[1:]).encode("utf-8"))
    assert ix.detect_format(bom) == ("word2vec" if header else "glove")
    rep = ix.import_file(root, bom)
    got, got_words = stored(root, rep.model)
    assert got_words == ["alpha", "beta", "gamma"] and np.array_equal(bits(got), bits(matrix))


def test_word2vec_c_style_files_are_read(tmp_path):
    """Trailing spaces in text, a newline after each binary vector (as word2vec.c writes)."""
    matrix = np.array([[1.5, -2.25], [0.125, 3.0]], dtype=np.float32)
    text = tmp_path / "c.txt"
    text.write_text("2 2\nx 1.5 -2.25 \ny 0.125 3 \n")
    binary = tmp_path / "c.bin"
    binary.write_bytes(b"2 2\n" + b"".join(w + b" " + v.astype("<f4").tobytes() + b"\n" for w, v in zip([b"x", b"y"], matrix)))
    for path, fmt in ((text, "word2vec"), (binary, "word2vec-binary")):
        words, got, detected = ix.read_vectors(path)
        assert detected == fmt and words == ["x", "y"] and np.array_equal(got, matrix)


# -- other tools read our files --------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_loads_word2vec_exports(tiny_root, tmp_path, binary):
    from gensim.models import KeyedVectors

    matrix, raws = stored(tiny_root, "tiny-llama")
    out = tmp_path / ("t.bin" if binary else "t.txt")
    ix.export_set(tiny_root, "tiny-llama", "input", "word2vec-binary" if binary else "word2vec", out)
    kv = KeyedVectors.load_word2vec_format(str(out), binary=binary)
    assert kv.index_to_key == [ix.word2vec_word(w) for w in raws]
    assert np.array_equal(bits(kv.vectors), bits(matrix))


def test_gensim_loads_awkward_words(tmp_path):
    from gensim.models import KeyedVectors

    root = tmp_path / "root"
    words = [" lead", "tab\there", "new\nline", "\nstart", "nbsp\xa0x", "ls\u2028x", "plain", "☃"]
    matrix = np.random.default_rng(2).standard_normal((len(words), 3)).astype(np.float32)
    matrix[0, 0] = np.float32(1e-45)  # a subnormal
    matrix[1, 1] = np.float32(-0.0)
    ix.import_arrays(root, "awk", words, matrix)
    for binary in (False, True):
        out = tmp_path / ("a.bin" if binary else "a.txt")
        ix.export_set(root, "awk", "input", "word2vec-binary" if binary else "word2vec", out)
        kv = KeyedVectors.load_word2vec_format(str(out), binary=binary)
        assert kv.index_to_key == [ix.word2vec_word(w) for w in words]
        assert np.array_equal(bits(kv.vectors), bits(matrix))


def test_parquet_schema_and_contents(tiny_root, tmp_path):
    matrix, raws = stored(tiny_root, "tiny-llama")
    out = tmp_path / "t.parquet"
    ix.export_set(tiny_root, "tiny-llama", "input", "parquet", out)
    con = duckdb.connect()
    schema = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out}')").fetchall()}
    assert schema == {"token_id": "INTEGER", "token": "VARCHAR", "vector": "FLOAT[]"}
    rows = con.execute(f"SELECT token_id, token, vector FROM read_parquet('{out}') ORDER BY token_id").fetchall()
    assert [r[0] for r in rows] == list(range(31)) and [r[1] for r in rows] == raws
    assert np.array_equal(bits(np.array([r[2] for r in rows], dtype=np.float32)), bits(matrix))


def test_projector_files_are_line_aligned(tmp_path):
    root = tmp_path / "root"
    words = ["plain", "tab\there", "new\nline", "cr\rx", "ls\u2028x", "back\\slash", " lead", "ff\x0cx", "nel\x85x"]
    matrix = np.random.default_rng(3).standard_normal((len(words), 4)).astype(np.float32)
    ix.import_arrays(root, "awk", words, matrix)
    out = tmp_path / "proj"
    ix.export_set(root, "awk", "input", "projector", out)
    vec = (out / "vectors.tsv").read_text(encoding="utf-8")
    meta = (out / "metadata.tsv").read_text(encoding="utf-8")
    n = len(words)
    assert vec.count("\n") == n and len(vec.splitlines()) == n
    assert meta.count("\n") == n + 1 and len(meta.splitlines()) == n + 1
    assert all(len(line.split("\t")) == 4 for line in vec.splitlines())
    assert all(len(line.split("\t")) == 3 for line in meta.splitlines())
    assert meta.splitlines()[0] == "token\ttoken_id\tscript"
    assert meta.splitlines()[2].split("\t")[0] == "tab\\there"
    assert projector_tokens(out) == words


def test_tiny_projector_line_counts(tiny_root, tmp_path):
    out = tmp_path / "proj"
    r = run(tiny_root, "vectors", "export", "-m", "tiny-llama", "--format", "projector", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert len((out / "vectors.tsv").read_text().splitlines()) == 31
    assert len((out / "metadata.tsv").read_text().splitlines()) == 32


# -- selection ---------------------------------------------------------------------------


def test_limit_and_where_select_rows(tiny_root, tmp_path):
    matrix, raws = stored(tiny_root, "tiny-llama")
    out = tmp_path / "l.txt"
    r = run(tiny_root, "vectors", "export", "-m", "tiny-llama", "-f", "word2vec", "-o", str(out), "--limit", "5")
    assert r.exit_code == 0, r.stderr
    words, got, _ = ix.read_vectors(out)
    assert words == raws[:5] and np.array_equal(bits(got), bits(matrix[:5]))

    cat = Catalog(tiny_root)
    want = [r[0] for r in cat.query(
        "SELECT token_id FROM tokens WHERE model_id = (SELECT model_id FROM models WHERE name = 'tiny-llama') "
        "AND script = 'cyrillic' ORDER BY token_id")]
    assert want
    rep = ix.export_set(tiny_root, "tiny-llama", "input", "parquet", tmp_path / "w.parquet", where="script = 'cyrillic'")
    assert rep.rows == len(want)
    rows = duckdb.connect().execute(f"SELECT token_id, vector FROM read_parquet('{tmp_path / 'w.parquet'}')").fetchall()
    assert [r[0] for r in rows] == want
    assert np.array_equal(bits(np.array([r[1] for r in rows], np.float32)), bits(matrix[want]))

    rep = ix.export_set(tiny_root, "tiny-llama", "input", "word2vec", tmp_path / "wl.txt", where="leading_space", limit=3)
    words, got, _ = ix.read_vectors(tmp_path / "wl.txt")
    assert rep.rows == 3 and all(w.startswith("▁") for w in words)


def test_bad_selection_is_one_line_error(tiny_root, tmp_path):
    line = one_line_error(run(tiny_root, "vectors", "export", "-m", "tiny-llama", "-f", "word2vec", "-o",
                              str(tmp_path / "x.txt"), "--where", "no_such_column = 1"))
    assert "--where" in line
    line = one_line_error(run(tiny_root, "vectors", "export", "-m", "tiny-llama", "-f", "word2vec", "-o",
                              str(tmp_path / "x.txt"), "--where", "false"))
    assert "matches no tokens" in line
    line = one_line_error(run(tiny_root, "vectors", "export", "-m", "tiny-llama", "--vectors", "nope", "-f",
                              "parquet", "-o", str(tmp_path / "x.parquet")))
    assert "nope" in line
    one_line_error(run(tiny_root, "vectors", "export", "-m", "tiny-llama", "-f", "csv", "-o", str(tmp_path / "x.csv")))


def test_text_words_and_colliding_word2vec_words(tmp_path):
    root = tmp_path / "root"
    ix.import_arrays(root, "c", ["a b", "a▁b", "z"], np.eye(3, dtype=np.float32))
    with pytest.raises(ExplorerError, match="a▁b"):
        ix.export_set(root, "c", "input", "word2vec", tmp_path / "c.txt")
    ix.export_set(root, "c", "input", "word2vec", tmp_path / "c.txt", where="token_id <> 1")
    assert ix.read_vectors(tmp_path / "c.txt")[0] == ["a▁b", "z"]
    ix.export_set(root, "c", "input", "parquet", tmp_path / "c.parquet")
    assert ix.read_vectors(tmp_path / "c.parquet")[0] == ["a b", "a▁b", "z"]


def test_text_word_column(tiny_root, tmp_path):
    ix.export_set(tiny_root, "tiny-llama", "input", "parquet", tmp_path / "t.parquet", words="text", limit=8)
    cat = Catalog(tiny_root)
    texts = [r[0] for r in cat.query(
        "SELECT text FROM tokens WHERE model_id = (SELECT model_id FROM models WHERE name = 'tiny-llama') "
        "ORDER BY token_id LIMIT 8")]
    assert ix.read_vectors(tmp_path / "t.parquet")[0] == texts


# -- imported sets are queryable -----------------------------------------------------------


def analogy_file(path: Path) -> None:
    rng = np.random.default_rng(4)
    e = np.linalg.qr(rng.standard_normal((16, 16)))[0].astype(np.float32)  # orthonormal rows
    w4 = e[1] - e[0] + e[2]
    rows = {"w1": e[1], "w2": e[0], "w3": e[2], "w4": w4 / np.linalg.norm(w4)}
    for i in range(3, 12):
        rows[f"n{i}"] = e[i]
    lines = [f"{len(rows)} 16"] + [w + " " + " ".join(repr(float(x)) for x in v) for w, v in rows.items()]
    path.write_text("\n".join(lines) + "\n")


def test_imported_set_answers_queries(tmp_path):
    root = tmp_path / "root"
    src = tmp_path / "analogy.txt"
    analogy_file(src)
    rep = ix.import_file(root, src)
    assert rep.model == "analogy" and rep.format == "word2vec"
    res = analogy(Engine(root), "w1 - w2 + w3", QueryOptions(SetChoice("analogy"), k=3))
    assert res.to_dict()["results"][0]["token"] == "w4"
    r = run(root, "query", "w1 - w2 + w3", "--model", "analogy", "--json", "-k", "3")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"][0]["token"] == "w4" and out["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    r = run(root, "models", "--json")
    (m,) = json.loads(r.stdout)["models"]
    assert m["kind"] == "imported" and m["vector_sets"][0]["name"] == "input" and m["vocab"] == 13
    r = run(root, "index", "verify", "--model", "analogy")
    assert r.exit_code == 0 and "ok" in r.stdout


def test_import_names_and_replace(tmp_path, tiny_root):
    root = tmp_path / "root"
    src = tmp_path / "analogy.txt"
    analogy_file(src)
    assert run(root, "vectors", "import", str(src)).exit_code == 0
    line = one_line_error(run(root, "vectors", "import", str(src)))
    assert "--replace" in line
    r = run(root, "vectors", "import", str(src), "--replace", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["replaced"] is True
    assert len(Catalog(root).models()) == 1
    assert "invalid model name" in one_line_error(run(root, "vectors", "import", str(src), "--name", "a/b"))
    assert "invalid model name" in one_line_error(run(root, "vectors", "import", str(src), "--name", ""))
    # an exported (not imported) model is never overwritten
    assert "already exists" in one_line_error(run(tiny_root, "vectors", "import", str(src), "--name", "tiny-llama"))


def test_register_is_idempotent():
    before = len(app.registered_groups)
    vectors_cli.register(app)
    vectors_cli.register(app)
    assert len(app.registered_groups) == before
    assert sum(g.name == "vectors" for g in app.registered_groups) == 1
    r = runner.invoke(app, ["vectors", "--help"])
    assert r.exit_code == 0 and "export" in r.stdout and "import" in r.stdout


# -- malformed files ---------------------------------------------------------------------

F32 = lambda *v: np.array(v, dtype="<f4").tobytes()  # noqa: E731

MALFORMED = [
    # (name, file name, content, --format, location in the message, words in the message)
    ("w2v-field-count", "a.txt", b"2 3\na 1 2 3\nb 1 2\n", None, "line 3", "3 space-separated fields, expected 4"),
    ("w2v-too-many-fields", "a.txt", b"2 2\na 1 2\nb 1 2 3\n", None, "line 3", "4 space-separated fields"),
    ("w2v-non-numeric", "a.txt", b"2 3\na 1 2 3\nb 1 x 3\n", None, "line 3", "'x'"),
    ("w2v-double-space", "a.txt", b"1 2\na 1  2\n", None, "line 2", ""),
    ("w2v-header-says-more", "a.txt", b"3 2\na 1 2\nb 3 4\n", None, "line 4", "header"),
    ("w2v-header-says-fewer", "a.txt", b"1 2\na 1 2\nb 3 4\n", None, "line 3", "header"),
    ("w2v-duplicate", "a.txt", b"3 2\na 1 2\nb 3 4\na 5 6\n", None, "line 4", "duplicate word 'a' (first on line 2)"),
    ("w2v-bad-header", "a.txt", b"two 2\na 1 2\n", "word2vec", "line 1", "header"),
    ("w2v-nan", "a.txt", b"2 2\na 1 2\nb nan 1\n", None, "line 3", "finite"),
    ("w2v-overflow", "a.txt", b"1 2\na 1e39 1\n", None, "line 2", "finite"),
    ("w2v-blank-line", "a.txt", b"2 2\na 1 2\n\nb 3 4\n", None, "line 3", "empty line"),
    ("w2v-not-utf8", "a.txt", b"1 2\n\xff\xfe 1 2\n", "word2vec", "line 2", "UTF-8"),
    ("glove-field-count", "g.txt", b"a 1 2\nb 1 2\nc 1\n", None, "line 3", "expected 3"),
    ("glove-duplicate", "g.txt", b"a 1 2\nb 1 2\nb 1 2\n", None, "line 3", "duplicate"),
    ("glove-non-numeric", "g.txt", b"a 1 2\nb 1 2,5\n", None, "line 2", "'2,5'"),
    ("bin-truncated-vector", "a.bin", b"2 3\na " + F32(1, 2, 3) + b"b " + F32(1)[:3], None, "line 3", "truncated"),
    ("bin-truncated-count", "a.bin", b"3 2\na " + F32(1, 2) + b"b " + F32(3, 4), None, "line 4", "truncated"),
    ("bin-duplicate", "a.bin", b"2 2\na " + F32(1, 2) + b"a " + F32(3, 4), None, "line 3", "duplicate word 'a'"),
    ("bin-extra-data", "a.bin", b"1 2\na " + F32(1, 2) + b"b " + F32(3, 4), "word2vec-binary", "line 3", "more data"),
    ("bin-nan", "a.bin", b"2 2\na " + F32(1, 2) + b"b " + F32(np.nan, 4), None, "line 3", "not finite"),
    ("bin-header-zero", "a.bin", b"0 2\n", "word2vec-binary", "line 1", "nothing to import"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_files_are_refused_with_their_line(tmp_path, case):
    _, name, content, fmt, where, words = case
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ExplorerError) as exc:
        ix.read_vectors(path, fmt or "auto")
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and where in msg, msg
    assert words in msg, msg
    root = tmp_path / "root"
    line = one_line_error(run(root, "vectors", "import", str(path), *(["--format", fmt] if fmt else [])))
    assert str(path) in line and where in line and words in line
    assert not Catalog(root).exists() or not Catalog(root).models()


def test_malformed_projector_and_parquet(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "vectors.tsv").write_text("1\t2\n3\t4\n5\n")
    (proj / "metadata.tsv").write_text("a\nb\nc\n")
    line = one_line_error(run(tmp_path / "root", "vectors", "import", str(proj)))
    assert "vectors.tsv, line 3" in line
    (proj / "vectors.tsv").write_text("1\t2\n3\t4\n5\t6\n")
    (proj / "metadata.tsv").write_text("token\ttoken_id\tscript\na\t0\tlatin\nb\t1\n")
    assert "metadata.tsv, line 3" in one_line_error(run(tmp_path / "root", "vectors", "import", str(proj)))
    (proj / "metadata.tsv").write_text("a\nb\n")
    assert "2 tokens for the 3 vectors" in one_line_error(run(tmp_path / "root", "vectors", "import", str(proj)))
    (proj / "metadata.tsv").write_text("a\nb\na\n")
    assert "metadata.tsv, line 3: duplicate" in one_line_error(run(tmp_path / "root", "vectors", "import", str(proj)))

    con = duckdb.connect()
    bad = tmp_path / "bad.parquet"
    con.execute(f"COPY (SELECT * FROM (VALUES ('a', [1.0, 2.0]), ('b', [1.0]))  t(token, vector)) TO '{bad}' (FORMAT parquet)")
    assert "row 2" in one_line_error(run(tmp_path / "root", "vectors", "import", str(bad)))
    con.execute(f"COPY (SELECT * FROM (VALUES ('a', [1.0, 2.0]), ('a', [3.0, 4.0]))  t(token, vector)) TO '{bad}' (FORMAT parquet)")
    assert "row 2: duplicate" in one_line_error(run(tmp_path / "root", "vectors", "import", str(bad)))
    con.execute(f"COPY (SELECT 1 AS x) TO '{bad}' (FORMAT parquet)")
    assert "no token or vector column" in one_line_error(run(tmp_path / "root", "vectors", "import", str(bad)))
    (tmp_path / "not.parquet").write_text("hello")
    assert "not a readable Parquet file" in one_line_error(run(tmp_path / "root", "vectors", "import", str(tmp_path / "not.parquet")))
    assert "no such file" in one_line_error(run(tmp_path / "root", "vectors", "import", str(tmp_path / "missing.txt")))


def test_format_sniffing(tmp_path):
    root = tmp_path / "root"
    matrix = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
    ix.import_arrays(root, "s", ["a", "b", "c", "d"], matrix)
    for fmt in FORMATS:
        out = tmp_path / ("noext-" + fmt if fmt.startswith("word2vec") else OUT_NAME[fmt])
        ix.export_set(root, "s", "input", fmt, out)
        assert ix.detect_format(out) == fmt
    assert ix.detect_format(tmp_path / "proj" / "vectors.tsv") == "projector"


def test_interrupted_import_gets_a_clear_error(tmp_path):
    from explorer.services.engine import Engine
    from explorer.errors import ExplorerError
    from explorer.store.catalog import Catalog

    Catalog(tmp_path).upsert_model(name="half", source="/data/half.vec", source_kind="imported")
    with pytest.raises(ExplorerError, match="not fully imported.*--replace"):
        analogy(Engine(tmp_path), "king", QueryOptions(SetChoice("half")))
