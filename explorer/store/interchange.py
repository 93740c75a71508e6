"""Vector sets in and out of the store: Embedding Projector, Parquet, word2vec, GloVe.

numpy and DuckDB only (no torch). Exports read a stored set (a tied set follows its
``same_as`` row to the files); imports create a model (``source_kind = 'imported'``)
with a tokens table built from the words and one vector set named ``input``, written
with :func:`explorer.store.sets.write_vector_set` (norms, FAISS index, checksums), so
``explorer query --model NAME`` works on it.

Formats
-------
``projector``
    A directory holding ``vectors.tsv`` (one line per token: its floats separated by
    tabs, no header) and ``metadata.tsv`` (a header line ``token<TAB>token_id<TAB>script``,
    then one line per token in the same order), as https://projector.tensorflow.org loads
    them. Import reads ``vectors.tsv`` and the ``token`` column (or the only column) of
    ``metadata.tsv`` next to it.
``parquet``
    One file with columns ``token_id INTEGER, token VARCHAR, vector FLOAT[]``, written by
    DuckDB (``COPY ... TO ... (FORMAT parquet)``). Import needs ``token`` and ``vector``
    (any numeric list or array type); rows are taken in file order.
``word2vec``
    Text: a header line ``N D``, then ``word v1 ... vD`` per line, separated by single
    spaces (a trailing space, as word2vec.c writes, is accepted on import).
``word2vec-binary``
    A header line ``N D``, then per word: the UTF-8 word, one space and D little-endian
    float32 (4·D bytes), with nothing in between records -- exactly as gensim writes it.
    A newline before a word (as word2vec.c writes) is accepted on import.
``glove`` (import only)
    word2vec text without the header line; D is the number of fields of the first line
    minus one.

Words
-----
An export names each token by its vocabulary string (``words="raw"``, the default:
unique within a model, e.g. ``'▁king'``) or its decoded text (``words="text"``, e.g.
``' king'``; not always unique). The three formats treat the word differently:

* **Parquet** stores it exactly.
* **Projector metadata** escapes it with backslashes so that every token stays on its
  line and in its column: ``\\`` -> ``\\\\``, tab -> ``\\t``, newline -> ``\\n``,
  carriage return -> ``\\r``, and every other character that Python treats as a line
  break (U+000B, U+000C, U+001C-U+001E, U+0085, U+2028, U+2029) -> ``\\xHH`` or
  ``\\uHHHH``. Import undoes exactly these escapes (any other backslash is kept as is),
  so the word comes back unchanged.
* **word2vec** words cannot hold whitespace: the format separates fields by spaces and
  records by newlines, and gensim strips a leading newline from binary words. An export
  therefore maps, character by character: space -> ``'▁'`` (U+2581, SentencePiece's
  word-boundary mark, so ``' king'`` is written ``▁king``); a control character
  U+0000-U+001F or U+007F -> its Unicode control picture U+2400-U+241F or U+2421 (a
  newline becomes ``'␊'``, a tab ``'␉'``); any other whitespace character (U+0085, U+00A0,
  U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) -> ``<U+XXXX>``; the
  empty word -> ``<empty>``. The mapping leaves a word that is already valid unchanged,
  so export -> import -> export is byte-identical. It cannot be undone (``'a b'`` and
  ``'a▁b'`` are both written ``a▁b``), so an export where two tokens would be written as
  the same word is refused, naming both (drop one with ``--where``, or use Parquet or
  the projector format, which keep words exactly). Import never unescapes.

Imported tokens are ``token_id`` = line order (from 0), ``raw = text = word``,
``leading_space = false``, ``script`` from :func:`explorer.models.tokeninfo.script_of`.

Numbers
-------
Text formats write each float32 as the shortest decimal that DuckDB prints for it, then
read every value back the way this module, numpy and gensim read it (decimal ->
float64 -> float32) and rewrite the rare value that would not come back identical with
its float64 ``repr`` (exact). A round trip is therefore bit-for-bit (except NaN payloads,
and imports refuse NaN and infinity: a vector set is searched by cosine).

Malformed files are refused with one line naming the file and the line (for binary
files, the record counted as a line, the header being line 1; for Parquet, the row).
"""

from __future__ import annotations

import codecs
import mmap
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import duckdb
import numpy as np

from explorer.errors import ExplorerError, UnknownModel
from explorer.store import sets
from explorer.store.catalog import Catalog
from explorer.store.files import atomic_path
from explorer.store.vectorset import VectorSet

Progress = Callable[[str, int, int], None]

EXPORT_FORMATS = ("projector", "parquet", "word2vec", "word2vec-binary")
IMPORT_FORMATS = ("word2vec", "word2vec-binary", "glove", "projector", "parquet")
WORD_COLUMNS = ("raw", "text")
PROJECTOR_VECTORS = "vectors.tsv"
PROJECTOR_METADATA = "metadata.tsv"
METADATA_HEADER = ("token", "token_id", "script")
SOURCE_KIND = "imported"
SET_NAME = "input"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HEADER = re.compile(rb"\s*(\d+)[ \t]+(\d+)\s*")
_MAX_WORD_BYTES = 1 << 16
_CHUNK_VALUES = 1 << 20  # floats formatted or parsed per batch


# -- words -----------------------------------------------------------------------------

# every character str.isspace() accepts, plus the other C0 controls and DEL
_W2V_BAD = re.compile(
    "[\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
EMPTY_WORD = "<empty>"


def _w2v_char(m: re.Match) -> str:
    o = ord(m.group())
    if o == 0x20:
        return "\u2581"
    if o < 0x20:
        return chr(0x2400 + o)
    if o == 0x7F:
        return "\u2421"
    return f"<U+{o:04X}>"


def word2vec_word(word: str) -> str:
    """The word as written in word2vec files (see the module docstring); idempotent."""
    return _W2V_BAD.sub(_w2v_char, word) if word else EMPTY_WORD


_TSV_BAD = re.compile("[\\\\\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_TSV_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_TSV_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[\\tnr])")
_TSV_UNNAMED = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _tsv_char(m: re.Match) -> str:
    c = m.group()
    named = _TSV_NAMED.get(c)
    if named is not None:
        return named
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def tsv_escape(text: str) -> str:
    """A field of projector metadata: one line, one column, reversible."""
    return _TSV_BAD.sub(_tsv_char, text)


def tsv_unescape(text: str) -> str:
    """Undo :func:`tsv_escape`; any other backslash is kept as written."""
    if "\\" not in text:
        return text
    return _TSV_ESCAPE.sub(lambda m: _TSV_UNNAMED.get(m.group()) or chr(int(m.group()[2:], 16)), text)


# -- numbers ---------------------------------------------------------------------------


def _format_rows(con: duckdb.DuckDBPyConnection, block: np.ndarray, sep: str) -> list[str]:
    """One string per row of ``block``: its floats joined by ``sep``, each reading back
    (decimal -> float64 -> float32) to the identical float32."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    n = block.shape[0]
    vecs = np.empty(n, dtype=object)
    vecs[:] = list(block)
    _rows = {"i": np.arange(n, dtype=np.int64), "v": vecs}  # noqa: F841 - DuckDB replacement scan
    lines = [r[0] for r in con.execute("SELECT array_to_string(v, ?) FROM _rows ORDER BY i", [sep]).fetchall()]
    fields = sep.join(lines).split(sep)
    flat = block.reshape(-1)
    if len(fields) != flat.size:  # cannot happen: sep is never part of a number
        raise ExplorerError("internal error: formatted numbers do not match the vector shape")
    with np.errstate(over="ignore", invalid="ignore"):
        back = np.array(fields, dtype=np.float64).astype(np.float32)
    bad = back.view(np.uint32) != flat.view(np.uint32)
    if bad.any():
        bad &= ~(np.isnan(back) & np.isnan(flat))
    d = block.shape[1]
    for r in np.unique(np.nonzero(bad)[0] // d):
        row = lines[r].split(sep)
        for c in np.nonzero(bad[r * d : (r + 1) * d])[0]:
            row[c] = repr(float(block[r, c]))  # float64 repr is exact, and float32 -> float64 is too
        lines[r] = sep.join(row)
    return lines


class _FloatRows:
    """Collects rows of decimal strings (with their line numbers) into a float32 matrix."""

    def __init__(self, path: Path, what: str = "line"):
        self.path = path
        self.what = what
        self.blocks: list[np.ndarray] = []
        self.values: list[str] = []
        self.lines: list[int] = []
        self.d: int | None = None

    def add(self, line: int, fields: Sequence[str]) -> None:
        self.values.extend(fields)
        self.lines.append(line)
        if len(self.values) >= _CHUNK_VALUES:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        d = len(self.values) // len(self.lines)
        try:
            vals = np.array(self.values, dtype=np.float64)
        except ValueError:
            for k, line in enumerate(self.lines):
                for x in self.values[k * d : (k + 1) * d]:
                    try:
                        float(x)
                    except ValueError:
                        what = "an empty field (two separators in a row?)" if x == "" else f"{x!r}"
                        raise _error(self.path, line, f"not a number: {what}", self.what) from None
            raise _error(self.path, self.lines[0], "unreadable numbers", self.what) from None
        with np.errstate(over="ignore", invalid="ignore"):
            block = vals.astype(np.float32).reshape(len(self.lines), d)
        finite = np.isfinite(block)
        if not finite.all():
            r, c = map(int, np.argwhere(~finite)[0])
            raise _error(
                self.path, self.lines[r],
                f"value {self.values[r * d + c]!r} (column {c + 2}) is not a finite float32 (NaN, infinity or out of range)",
                self.what,
            )
        self.blocks.append(block)
        self.values, self.lines = [], []

    def matrix(self, d: int) -> np.ndarray:
        self.flush()
        if not self.blocks:
            return np.empty((0, d), dtype=np.float32)
        return self.blocks[0] if len(self.blocks) == 1 else np.concatenate(self.blocks)


def _error(path: Path, line: int | None, message: str, what: str = "line") -> ExplorerError:
    """``FILE, line N: message``; ``what="record"`` (binary files): ``FILE, line N (vector
    N-1): ...``, the header being line 1 and each vector a line as word2vec.c writes them."""
    if line is None:
        where = f"{path}"
    elif what == "record":
        where = f"{path}, line {line} (vector {line - 1})"
    else:
        where = f"{path}, {what} {line}"
    return ExplorerError(f"{where}: {message}")


# -- export ----------------------------------------------------------------------------


@dataclass
class ExportReport:
    model: str
    vectors: str
    format: str
    rows: int
    dim: int
    words: str
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def export_set(
    root: Path,
    model: str,
    vectors: str = "input",
    fmt: str = "word2vec",
    output: Path | str = "",
    *,
    limit: int | None = None,
    where: str | None = None,
    words: str = "raw",
    progress: Progress | None = None,
) -> ExportReport:
    """Write vector set ``model/vectors`` (or the rows ``where`` selects from the tokens
    table, the first ``limit`` of them by token id) to ``output`` in format ``fmt``."""
    if fmt not in EXPORT_FORMATS:
        raise ExplorerError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if words not in WORD_COLUMNS:
        raise ExplorerError(f"unknown word column {words!r}; choose raw or text")
    if limit is not None and limit < 1:
        raise ExplorerError("--limit must be at least 1")
    if not output:
        raise ExplorerError("no output path given")
    output = Path(output)
    catalog = Catalog(root)
    try:
        m = catalog.model(model) if catalog.exists() else None
        if m is None:
            raise UnknownModel(f"model {model!r} is not in the catalog of {root}; run `explorer export {model}`")
        row = catalog.vector_set(m.model_id, vectors)
        if row is None:
            names = ", ".join(r.name for r in catalog.vector_sets(m.model_id)) or "none"
            raise ExplorerError(f"model {m.name} has no {vectors!r} vector set (it has: {names})")
        owner = sets.storage_row(catalog, row)
        sets.verify(catalog, owner, m.name, roles=("vectors",))
        vs = VectorSet.open(catalog.root / owner.path)
        ids, labels, scripts = _selection(catalog, m.model_id, vs.n_rows, limit, where, words)
    finally:
        catalog.close()
    rep = ExportReport(m.name, vectors, fmt, len(ids), vs.dim, words)
    if fmt == "projector":
        rep.files = _write_projector(output, vs, ids, labels, scripts, progress)
    elif fmt == "parquet":
        rep.files = [_write_parquet(output, vs, ids, labels)]
    else:
        written = _unique_word2vec_words(ids, labels)
        rep.files = [_write_word2vec(output, vs, ids, written, fmt == "word2vec-binary", progress)]
    return rep


def _selection(
    catalog: Catalog, model_id: int, n_rows: int, limit: int | None, where: str | None, words: str
) -> tuple[np.ndarray, list[str], list[str]]:
    """Token ids (ascending), their words and scripts."""
    col = "raw" if words == "raw" else "text"
    clauses = ["model_id = ?", "token_id >= 0", "token_id < ?"]
    if where:
        clauses.append(f"({where})")
    sql = f"SELECT token_id, {col}, script FROM tokens WHERE {' AND '.join(clauses)} ORDER BY token_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    try:
        rows = catalog.query(sql, [model_id, n_rows])
    except ExplorerError:
        raise
    except Exception as exc:
        raise ExplorerError(f"bad --where predicate on the tokens table: {str(exc).splitlines()[0]}") from None
    if where:
        if not rows:
            raise ExplorerError("the --where predicate matches no tokens")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, [r[1] for r in rows], [r[2] for r in rows]
    # every row of the set, with a placeholder for a row the tokens table lacks
    n = n_rows if limit is None else min(n_rows, limit)
    known = {r[0]: r for r in rows}
    labels, scripts = [], []
    for i in range(n):
        r = known.get(i)
        labels.append(r[1] if r else f"<row {i}>")
        scripts.append(r[2] if r else "special")
    return np.arange(n, dtype=np.int64), labels, scripts


def _unique_word2vec_words(ids: np.ndarray, labels: list[str]) -> list[str]:
    written = [word2vec_word(w) for w in labels]
    seen: dict[str, int] = {}
    for k, w in enumerate(written):
        j = seen.setdefault(w, k)
        if j != k:
            raise ExplorerError(
                f"tokens {ids[j]} ({labels[j]!r}) and {ids[k]} ({labels[k]!r}) would both be written as the "
                f"word2vec word {w!r}; leave one out with --where \"token_id <> {ids[k]}\", or export parquet or "
                "projector, which keep words exactly"
            )
    return written


def _blocks(vs: VectorSet, ids: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    step = max(1, _CHUNK_VALUES // max(1, vs.dim))
    contiguous = len(ids) > 0 and ids[0] == 0 and ids[-1] == len(ids) - 1
    for a in range(0, len(ids), step):
        if contiguous:
            block = vs.vectors[a : min(a + step, len(ids))]
        else:
            block = vs.vectors[ids[a : a + step]]
        yield a, np.ascontiguousarray(block, dtype=np.float32)


def _write_projector(
    out: Path, vs: VectorSet, ids: np.ndarray, labels: list[str], scripts: list[str], progress: Progress | None
) -> list[str]:
    if out.exists() and not out.is_dir():
        raise ExplorerError(f"{out} is a file; the projector format writes a directory (vectors.tsv + metadata.tsv)")
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    vec_path, meta_path = out / PROJECTOR_VECTORS, out / PROJECTOR_METADATA
    try:
        with atomic_path(vec_path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for a, block in _blocks(vs, ids):
                f.write("\n".join(_format_rows(con, block, "\t")))
                f.write("\n")
                if progress:
                    progress("vectors.tsv", a + len(block), len(ids))
    finally:
        con.close()
    with atomic_path(meta_path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(METADATA_HEADER) + "\n")
        for i, w, s in zip(ids.tolist(), labels, scripts):
            f.write(f"{tsv_escape(w)}\t{i}\t{tsv_escape(s or '')}\n")
    return [str(vec_path), str(meta_path)]


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _write_parquet(out: Path, vs: VectorSet, ids: np.ndarray, labels: list[str]) -> str:
    if out.is_dir():
        raise ExplorerError(f"{out} is a directory; give a file name such as {out / 'vectors.parquet'}")
    contiguous = len(ids) > 0 and ids[0] == 0 and ids[-1] == len(ids) - 1
    matrix = vs.vectors[: len(ids)] if contiguous else vs.vectors[ids]
    if matrix.dtype != np.float32:
        matrix = np.asarray(matrix, dtype=np.float32)
    vecs = np.empty(len(ids), dtype=object)
    vecs[:] = list(matrix)  # rows (views of the memory map): DuckDB reads them as FLOAT[]
    _vectors = {  # noqa: F841 - DuckDB replacement scan
        "token_id": ids.astype(np.int32),
        "token": np.array(labels, dtype=object),
        "vector": vecs,
    }
    con = duckdb.connect()
    try:
        with atomic_path(out) as tmp:
            con.execute(
                "COPY (SELECT token_id, token, vector FROM _vectors ORDER BY token_id) "
                f"TO {_sql_path(tmp)} (FORMAT parquet)"
            )
    finally:
        con.close()
    return str(out)


def _write_word2vec(
    out: Path, vs: VectorSet, ids: np.ndarray, written: list[str], binary: bool, progress: Progress | None
) -> str:
    if out.is_dir():
        raise ExplorerError(f"{out} is a directory; give a file name")
    label = out.name
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        f.write(f"{len(ids)} {vs.dim}\n".encode("ascii"))
        if binary:
            for a, block in _blocks(vs, ids):
                le = block.astype("<f4", copy=False)
                f.write(b"".join(written[a + k].encode("utf-8") + b" " + le[k].tobytes() for k in range(len(le))))
                if progress:
                    progress(label, a + len(block), len(ids))
        else:
            con = duckdb.connect()
            try:
                for a, block in _blocks(vs, ids):
                    lines = _format_rows(con, block, " ")
                    f.write("".join(f"{written[a + k]} {s}\n" for k, s in enumerate(lines)).encode("utf-8"))
                    if progress:
                        progress(label, a + len(block), len(ids))
            finally:
                con.close()
    return str(out)


# -- import: reading files -------------------------------------------------------------


def detect_format(path: Path) -> str:
    """projector (a directory or .tsv), parquet (.parquet), else by sniffing.

    A first line of two integers is a word2vec header; the file is word2vec text when the
    next line is a word and D numbers, binary when the 4·D bytes after the first word are
    not text (or, in the rare case they look like text but are no text line, when the
    whole file reads as binary). Anything else is GloVe. ``--format`` overrides.
    """
    path = Path(path)
    if path.is_dir():
        return "projector"
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".tsv"):
        return "projector"
    with open(path, "rb") as f:
        head = f.read(4096)
        if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:4] == b"PK\x03\x04" or head[:6] == b"\xfd7zXZ\x00":
            raise ExplorerError(f"{path}: compressed file; decompress it first")
        if head[:4] == b"PAR1":
            return "parquet"
        nl = head.find(b"\n")
        m = _HEADER.fullmatch(head[: nl if nl >= 0 else len(head)])
        if m is None:
            return "glove"
        d = int(m.group(2))
        f.seek(nl + 1)
        window = f.read(_MAX_WORD_BYTES + 4 * d + 1)
    if _is_text_record(window, d):
        return "word2vec"
    start = len(window) - len(window.lstrip(b"\n"))
    sp = window.find(b" ", start)
    if sp < 0:
        return "word2vec"  # the text reader says what is wrong
    data = window[sp + 1 : sp + 1 + 4 * d]
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return "word2vec-binary"
    if any(ord(c) < 0x20 and c not in "\t\n\r" or c == "\x7f" for c in text):
        return "word2vec-binary"
    try:  # vector bytes that happen to be text, or a malformed text file
        _read_binary(path)
    except ExplorerError:
        return "word2vec"
    return "word2vec-binary"


def _is_text_record(window: bytes, d: int) -> bool:
    """Whether the first line of ``window`` is a word2vec text line: a word and d numbers."""
    nl = window.find(b"\n")
    if nl < 0:
        return False
    try:
        parts = window[:nl].decode("utf-8").rstrip(" \t\r").split(" ")
        if len(parts) != d + 1 or not parts[0]:
            return False
        for x in parts[1:]:
            float(x)
    except ValueError:  # UnicodeDecodeError is a ValueError
        return False
    return True


def read_vectors(path: Path, fmt: str = "auto") -> tuple[list[str], np.ndarray, str]:
    """(words, float32 matrix, format) of a file; refuses malformed files."""
    path = Path(path)
    if not path.exists():
        raise ExplorerError(f"{path}: no such file")
    if fmt in (None, "", "auto"):
        fmt = detect_format(path)
    if fmt not in IMPORT_FORMATS:
        raise ExplorerError(f"unknown import format {fmt!r}; choose one of auto, {', '.join(IMPORT_FORMATS)}")
    if path.is_dir() and fmt != "projector":
        raise ExplorerError(f"{path} is a directory; only the projector format is a directory")
    if fmt == "word2vec":
        words, matrix = _read_text(path, header=True)
    elif fmt == "glove":
        words, matrix = _read_text(path, header=False)
    elif fmt == "word2vec-binary":
        words, matrix = _read_binary(path)
    elif fmt == "projector":
        words, matrix = _read_projector(path)
    else:
        words, matrix = _read_parquet(path)
    return words, matrix, fmt


def _parse_header(path: Path, line: bytes) -> tuple[int, int]:
    m = _HEADER.fullmatch(line)
    if m is None:
        shown = line[:60].decode("utf-8", "replace")
        raise _error(path, 1, f"expected the header 'N D' (vector count and dimension), found {shown!r}")
    n, d = int(m.group(1)), int(m.group(2))
    if n < 1 or d < 1:
        raise _error(path, 1, f"the header announces {n} vectors of dimension {d}; nothing to import")
    return n, d


def _lines(f, path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines without their line end; empty lines are allowed only at the end."""
    blank = None
    for number, raw in enumerate(f, 1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            blank = blank or number
            continue
        if blank is not None:
            raise _error(path, blank, "empty line inside the file")
        yield number, line


def _decode(path: Path, line: int, data: bytes, what: str = "line") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(path, line, f"not valid UTF-8 (byte {exc.start + 1} of the {what})", what) from None


def _read_text(path: Path, header: bool) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    seen: dict[str, int] = {}
    rows = _FloatRows(path)
    n = d = None
    last = 0
    with open(path, "rb") as f:
        for number, line in _lines(f, path):
            last = number
            if header and number == 1:
                n, d = _parse_header(path, line)
                continue
            parts = _decode(path, number, line).rstrip(" \t").split(" ")
            if d is None:
                d = len(parts) - 1
                if d < 1:
                    raise _error(path, number, "expected a word followed by its numbers, separated by single spaces")
            if len(parts) != d + 1:
                because = "the header says" if header else "line 1 has"
                raise _error(
                    path, number,
                    f"{len(parts)} space-separated fields, expected {d + 1} (a word and {d} numbers, as {because})",
                )
            word = parts[0]
            if not word:
                raise _error(path, number, "empty word (the line starts with a space)")
            first = seen.setdefault(word, number)
            if first != number:
                raise _error(path, number, f"duplicate word {word!r} (first on line {first})")
            if n is not None and len(words) == n:
                raise _error(path, number, f"more vectors than the {n} the header announces")
            words.append(word)
            rows.add(number, parts[1:])
    if header and n is None:
        raise _error(path, 1, "empty file; expected the header 'N D'")
    if not words:
        raise _error(path, None, "no vectors")
    if n is not None and len(words) != n:
        raise _error(path, last + 1, f"the file ends after {len(words)} vectors; the header (line 1) announces {n}")
    return words, rows.matrix(d)


def _read_binary(path: Path) -> tuple[list[str], np.ndarray]:
    size = path.stat().st_size
    if size == 0:
        raise _error(path, 1, "empty file; expected the header 'N D'")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        nl = mm.find(b"\n", 0, 4096)
        if nl < 0:
            raise _error(path, 1, "expected the header 'N D' followed by a newline")
        n, d = _parse_header(path, mm[:nl])
        rec = 4 * d
        pos = nl + 1
        room = (size - pos) // (rec + 2)  # a record is at least a 1-byte word, a space and 4·D bytes
        matrix = np.empty((min(n, room), d), dtype=np.float32)
        words: list[str] = []
        seen: dict[str, int] = {}
        for k in range(n):
            line = k + 2
            while pos < size and mm[pos] == 0x0A:
                pos += 1
            if pos >= size:
                raise _error(path, line, f"truncated: the file ends after {k} of the {n} vectors the header announces", "record")
            sp = mm.find(b" ", pos, min(size, pos + _MAX_WORD_BYTES))
            if sp < 0:
                if size - pos < _MAX_WORD_BYTES:
                    raise _error(path, line, f"truncated inside a word (byte {pos})", "record")
                raise _error(path, line, f"no space after a word within {_MAX_WORD_BYTES} bytes (byte {pos}); not a word2vec binary file?", "record")
            if sp == pos:
                raise _error(path, line, f"empty word (byte {pos})", "record")
            word = _decode(path, line, mm[pos:sp], "record")
            if sp + 1 + rec > size:
                raise _error(
                    path, line,
                    f"truncated: the vector of {word!r} needs {rec} bytes, the file has {size - sp - 1} left",
                    "record",
                )
            first = seen.setdefault(word, line)
            if first != line:
                raise _error(path, line, f"duplicate word {word!r} (first on line {first})", "record")
            if k >= len(matrix):  # cannot happen when room counted right
                raise _error(path, line, "truncated", "record")
            matrix[k] = np.frombuffer(mm[sp + 1 : sp + 1 + rec], dtype="<f4")
            words.append(word)
            pos = sp + 1 + rec
        extra = re.compile(rb"[^\s]").search(mm, pos)
        if extra is not None:
            raise _error(
                path, n + 2, f"more data after the {n} vectors the header announces (byte {extra.start()})", "record"
            )
    finite = np.isfinite(matrix)
    if not finite.all():
        r, c = map(int, np.argwhere(~finite)[0])
        raise _error(path, r + 2, f"component {c + 1} of {words[r]!r} is not finite ({matrix[r, c]})", "record")
    return words, matrix


def _read_projector(path: Path) -> tuple[list[str], np.ndarray]:
    vec_path = path / PROJECTOR_VECTORS if path.is_dir() else path
    meta_path = vec_path.parent / PROJECTOR_METADATA
    if path.is_dir() and not vec_path.exists():
        raise ExplorerError(f"{path}: no {PROJECTOR_VECTORS} in this directory")
    if vec_path.name == PROJECTOR_METADATA:
        raise ExplorerError(f"{path}: give the vectors file ({PROJECTOR_VECTORS}) or its directory")
    if not meta_path.exists():
        raise ExplorerError(f"{vec_path}: needs {PROJECTOR_METADATA} next to it for the words")
    rows = _FloatRows(vec_path)
    d = None
    count = 0
    with open(vec_path, "rb") as f:
        for number, line in _lines(f, vec_path):
            parts = _decode(vec_path, number, line).split("\t")
            if d is None:
                d = len(parts)
            if len(parts) != d:
                raise _error(vec_path, number, f"{len(parts)} tab-separated numbers, expected {d} (as line 1 has)")
            rows.add(number, parts)
            count += 1
    if not count:
        raise _error(vec_path, None, "no vectors")
    matrix = rows.matrix(d)
    words: list[str] = []
    seen: dict[str, int] = {}
    col = 0
    n_cols = 1
    with open(meta_path, "rb") as f:
        for number, line in _lines(f, meta_path):
            fields = _decode(meta_path, number, line).split("\t")
            if number == 1 and len(fields) > 1:  # several columns: a header line
                if "token" not in fields:
                    raise _error(meta_path, 1, f"no 'token' column in the header ({', '.join(fields)})")
                col, n_cols = fields.index("token"), len(fields)
                continue
            if len(fields) != n_cols:
                raise _error(meta_path, number, f"{len(fields)} tab-separated fields, expected {n_cols}")
            word = tsv_unescape(fields[col])
            first = seen.setdefault(word, number)
            if first != number:
                raise _error(meta_path, number, f"duplicate token {word!r} (first on line {first})")
            words.append(word)
            if len(words) > count:
                raise _error(meta_path, number, f"more tokens than the {count} vectors of {vec_path.name}")
    if len(words) != count:
        raise _error(meta_path, None, f"{len(words)} tokens for the {count} vectors of {vec_path.name}")
    return words, matrix


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    con = duckdb.connect()
    src = f"read_parquet({_sql_path(path)}, file_row_number = true)"
    try:
        try:
            columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        except duckdb.Error as exc:
            raise _error(path, None, f"not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        missing = [c for c in ("token", "vector") if c not in columns]
        if missing:
            have = ", ".join(c for c in columns if c != "file_row_number")
            raise _error(path, None, f"no {' or '.join(missing)} column (it has: {have})")
        try:
            con.execute(
                f"CREATE TEMP TABLE t AS SELECT file_row_number + 1 AS r, CAST(token AS VARCHAR) AS token, "
                f"CAST(vector AS FLOAT[]) AS v FROM {src}"
            )
        except duckdb.Error as exc:
            raise _error(path, None, f"the vector column is not a list of numbers ({str(exc).splitlines()[0]})") from None

        def first_row(cond: str) -> int | None:
            row = con.execute(f"SELECT min(r) FROM t WHERE {cond}").fetchone()
            return row[0]

        if (r := first_row("token IS NULL")) is not None:
            raise _error(path, r, "the token is NULL", "row")
        if (r := first_row("v IS NULL OR list_count(v) <> len(v)")) is not None:
            raise _error(path, r, "the vector is NULL or holds NULLs", "row")
        n, d = con.execute("SELECT count(*), (SELECT len(v) FROM t ORDER BY r LIMIT 1) FROM t").fetchone()
        if not n:
            raise _error(path, None, "no rows")
        if not d:
            raise _error(path, 1, "empty vector", "row")
        if (r := first_row(f"len(v) <> {int(d)}")) is not None:
            raise _error(path, r, f"the vector has {con.execute('SELECT len(v) FROM t WHERE r = ?', [r]).fetchone()[0]} numbers, row 1 has {d}", "row")
        words = [w for (w,) in con.execute("SELECT token FROM t ORDER BY r").fetchall()]
        vecs = con.execute("SELECT v FROM t ORDER BY r").fetchnumpy()["v"]
    finally:
        con.close()
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in vecs]) if len(vecs) else np.empty((0, d), np.float32)
    finite = np.isfinite(matrix)
    if not finite.all():
        r = int(np.argwhere(~finite)[0][0])
        raise _error(path, r + 1, "the vector holds NaN or infinity", "row")
    seen: dict[str, int] = {}
    for k, w in enumerate(words, 1):
        first = seen.setdefault(w, k)
        if first != k:
            raise _error(path, k, f"duplicate token {w!r} (first in row {first})", "row")
    return words, matrix


# -- import: the store -----------------------------------------------------------------


@dataclass
class ImportReport:
    model: str
    format: str
    source: str
    rows: int
    dim: int
    vector_set: str = SET_NAME
    replaced: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def default_name(path: Path) -> str:
    """The model name an import takes without --name: the file stem (the directory's name
    for the projector format)."""
    path = Path(path)
    if path.is_dir():
        stem = path.resolve().name
    elif path.name.lower() in (PROJECTOR_VECTORS, PROJECTOR_METADATA):
        stem = path.resolve().parent.name
    else:
        stem = path.name
        for ext in (".parquet", ".txt", ".vec", ".bin", ".tsv", ".w2v"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "imported"


def import_file(
    root: Path,
    path: Path | str,
    *,
    name: str | None = None,
    fmt: str = "auto",
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a word2vec (text or binary), GloVe, projector or Parquet file as a new model."""
    path = Path(path)
    words, matrix, fmt = read_vectors(path, fmt)
    return import_arrays(
        root, name or default_name(path), words, matrix,
        source=str(path.resolve()), fmt=fmt, replace=replace, progress=progress,
    )


def import_arrays(
    root: Path,
    name: str,
    words: Sequence[str],
    matrix: np.ndarray,
    *,
    source: str = "arrays",
    fmt: str = "arrays",
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Store ``matrix`` (row i = ``words[i]``) as model ``name``, vector set ``input``."""
    if not _NAME.fullmatch(name or ""):
        raise ExplorerError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit (--name)"
        )
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ExplorerError(f"nothing to import: a matrix of shape {matrix.shape}")
    if len(words) != matrix.shape[0]:
        raise ExplorerError(f"{len(words)} words for {matrix.shape[0]} vectors")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if not np.isfinite(matrix).all():
        raise ExplorerError("the vectors hold NaN or infinity")
    words = [str(w) for w in words]
    if len(set(words)) != len(words):
        seen: dict[str, int] = {}
        for k, w in enumerate(words):
            if seen.setdefault(w, k) != k:
                raise ExplorerError(f"duplicate word {w!r} (rows {seen[w]} and {k})")
    from explorer.models.tokeninfo import script_of  # numpy, re and unicodedata only

    catalog = Catalog(root)
    catalog.migrate()
    replaced = False
    try:
        old = catalog.model(name)
        if old is not None:
            if old.source_kind != SOURCE_KIND:
                raise ExplorerError(
                    f"model {name!r} already exists ({old.source_kind} from {old.source}); choose another --name"
                )
            complete = catalog.vector_set(old.model_id, SET_NAME) is not None
            if complete and not replace:
                raise ExplorerError(
                    f"model {name!r} was already imported from {old.source}; pass --replace to overwrite it, "
                    "or choose another --name"
                )
            catalog.delete_model(old.model_id)  # an earlier import (or a killed one)
            replaced = True
        n, d = matrix.shape
        model_id = catalog.upsert_model(
            name=name,
            source=source,
            source_kind=SOURCE_KIND,
            model_type=fmt,
            d_model=d,
            vocab_size=n,
            tied=None,  # no unembedding
            config={"imported_from": source, "format": fmt},
        )
        catalog.replace_tokens(
            model_id,
            {
                "token_id": np.arange(n, dtype=np.int32),
                "raw": np.array(words, dtype=object),
                "text": np.array(words, dtype=object),
                "leading_space": np.zeros(n, dtype=bool),
                "script": np.array([script_of(w) for w in words], dtype=object),
                "is_special": np.zeros(n, dtype=bool),
                "is_byte": np.zeros(n, dtype=bool),
            },
        )
        sets.write_vector_set(
            catalog, model_id, name, SET_NAME, matrix, note=f"imported ({fmt}) from {source}", progress=progress
        )
    finally:
        catalog.close()
    return ImportReport(name, fmt, source, n, d, SET_NAME, replaced)


__all__ = [
    "EXPORT_FORMATS", "IMPORT_FORMATS", "ExportReport", "ImportReport", "detect_format", "export_set",
    "import_arrays", "import_file", "read_vectors", "tsv_escape", "tsv_unescape", "word2vec_word",
]
