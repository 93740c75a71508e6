"""Import, first half: read a file into (words, float32 matrix), refusing malformed files
with one line that names the file and the line."""

from __future__ import annotations

import codecs
import mmap
import re
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np

from explorer.errors import ExplorerError
from explorer.store.interchange.encoding import (
    HEADER, IMPORT_FORMATS, MAX_WORD_BYTES, PROJECTOR_METADATA, PROJECTOR_VECTORS, FloatRows, file_error, sql_path,
    tsv_unescape,
)

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
        skip = len(BOM) if head.startswith(BOM) else 0
        head = head[skip:]
        if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:4] == b"PK\x03\x04" or head[:6] == b"\xfd7zXZ\x00":
            raise ExplorerError(f"{path}: compressed file; decompress it first")
        if head[:4] == b"PAR1":
            return "parquet"
        nl = head.find(b"\n")
        m = HEADER.fullmatch(head[: nl if nl >= 0 else len(head)])
        if m is None:
            return "glove"
        d = int(m.group(2))
        f.seek(skip + nl + 1)
        window = f.read(MAX_WORD_BYTES + 4 * d + 1)
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
    m = HEADER.fullmatch(line)
    if m is None:
        shown = line[:60].decode("utf-8", "replace")
        raise file_error(path, 1, f"expected the header 'N D' (vector count and dimension), found {shown!r}")
    n, d = int(m.group(1)), int(m.group(2))
    if n < 1 or d < 1:
        raise file_error(path, 1, f"the header announces {n} vectors of dimension {d}; nothing to import")
    return n, d


BOM = b"\xef\xbb\xbf"


def _lines(f, path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines without their line end; empty lines are allowed only at the end."""
    blank = None
    for number, raw in enumerate(f, 1):
        if number == 1 and raw.startswith(BOM):  # editors on Windows write one; it is not part of a word
            raw = raw[len(BOM):]
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            blank = blank or number
            continue
        if blank is not None:
            raise file_error(path, blank, "empty line inside the file")
        yield number, line


def _decode(path: Path, line: int, data: bytes, what: str = "line") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise file_error(path, line, f"not valid UTF-8 (byte {exc.start + 1} of the {what})", what) from None


def _read_text(path: Path, header: bool) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    seen: dict[str, int] = {}
    rows = FloatRows(path)
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
                    raise file_error(path, number, "expected a word followed by its numbers, separated by single spaces")
            if len(parts) != d + 1:
                because = "the header says" if header else "line 1 has"
                raise file_error(
                    path, number,
                    f"{len(parts)} space-separated fields, expected {d + 1} (a word and {d} numbers, as {because})",
                )
            word = parts[0]
            if not word:
                raise file_error(path, number, "empty word (the line starts with a space)")
            first = seen.setdefault(word, number)
            if first != number:
                raise file_error(path, number, f"duplicate word {word!r} (first on line {first})")
            if n is not None and len(words) == n:
                raise file_error(path, number, f"more vectors than the {n} the header announces")
            words.append(word)
            rows.add(number, parts[1:])
    if header and n is None:
        raise file_error(path, 1, "empty file; expected the header 'N D'")
    if not words:
        raise file_error(path, None, "no vectors")
    if n is not None and len(words) != n:
        raise file_error(path, last + 1, f"the file ends after {len(words)} vectors; the header (line 1) announces {n}")
    return words, rows.matrix(d)


def _read_binary(path: Path) -> tuple[list[str], np.ndarray]:
    size = path.stat().st_size
    if size == 0:
        raise file_error(path, 1, "empty file; expected the header 'N D'")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        nl = mm.find(b"\n", 0, 4096)
        if nl < 0:
            raise file_error(path, 1, "expected the header 'N D' followed by a newline")
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
                raise file_error(path, line, f"truncated: the file ends after {k} of the {n} vectors the header announces", "record")
            sp = mm.find(b" ", pos, min(size, pos + MAX_WORD_BYTES))
            if sp < 0:
                if size - pos < MAX_WORD_BYTES:
                    raise file_error(path, line, f"truncated inside a word (byte {pos})", "record")
                raise file_error(path, line, f"no space after a word within {MAX_WORD_BYTES} bytes (byte {pos}); not a word2vec binary file?", "record")
            if sp == pos:
                raise file_error(path, line, f"empty word (byte {pos})", "record")
            word = _decode(path, line, mm[pos:sp], "record")
            if sp + 1 + rec > size:
                raise file_error(
                    path, line,
                    f"truncated: the vector of {word!r} needs {rec} bytes, the file has {size - sp - 1} left",
                    "record",
                )
            first = seen.setdefault(word, line)
            if first != line:
                raise file_error(path, line, f"duplicate word {word!r} (first on line {first})", "record")
            if k >= len(matrix):  # cannot happen when room counted right
                raise file_error(path, line, "truncated", "record")
            matrix[k] = np.frombuffer(mm[sp + 1 : sp + 1 + rec], dtype="<f4")
            words.append(word)
            pos = sp + 1 + rec
        extra = re.compile(rb"[^\s]").search(mm, pos)
        if extra is not None:
            raise file_error(
                path, n + 2, f"more data after the {n} vectors the header announces (byte {extra.start()})", "record"
            )
    finite = np.isfinite(matrix)
    if not finite.all():
        r, c = map(int, np.argwhere(~finite)[0])
        raise file_error(path, r + 2, f"component {c + 1} of {words[r]!r} is not finite ({matrix[r, c]})", "record")
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
    rows = FloatRows(vec_path)
    d = None
    count = 0
    with open(vec_path, "rb") as f:
        for number, line in _lines(f, vec_path):
            parts = _decode(vec_path, number, line).split("\t")
            if d is None:
                d = len(parts)
            if len(parts) != d:
                raise file_error(vec_path, number, f"{len(parts)} tab-separated numbers, expected {d} (as line 1 has)")
            rows.add(number, parts)
            count += 1
    if not count:
        raise file_error(vec_path, None, "no vectors")
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
                    raise file_error(meta_path, 1, f"no 'token' column in the header ({', '.join(fields)})")
                col, n_cols = fields.index("token"), len(fields)
                continue
            if len(fields) != n_cols:
                raise file_error(meta_path, number, f"{len(fields)} tab-separated fields, expected {n_cols}")
            word = tsv_unescape(fields[col])
            first = seen.setdefault(word, number)
            if first != number:
                raise file_error(meta_path, number, f"duplicate token {word!r} (first on line {first})")
            words.append(word)
            if len(words) > count:
                raise file_error(meta_path, number, f"more tokens than the {count} vectors of {vec_path.name}")
    if len(words) != count:
        raise file_error(meta_path, None, f"{len(words)} tokens for the {count} vectors of {vec_path.name}")
    return words, matrix


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    con = duckdb.connect()
    src = f"read_parquet({sql_path(path)}, file_row_number = true)"
    try:
        try:
            columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        except duckdb.Error as exc:
            raise file_error(path, None, f"not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        missing = [c for c in ("token", "vector") if c not in columns]
        if missing:
            have = ", ".join(c for c in columns if c != "file_row_number")
            raise file_error(path, None, f"no {' or '.join(missing)} column (it has: {have})")
        try:
            con.execute(
                f"CREATE TEMP TABLE t AS SELECT file_row_number + 1 AS r, CAST(token AS VARCHAR) AS token, "
                f"CAST(vector AS FLOAT[]) AS v FROM {src}"
            )
        except duckdb.Error as exc:
            raise file_error(path, None, f"the vector column is not a list of numbers ({str(exc).splitlines()[0]})") from None

        def first_row(cond: str) -> int | None:
            row = con.execute(f"SELECT min(r) FROM t WHERE {cond}").fetchone()
            return row[0]

        if (r := first_row("token IS NULL")) is not None:
            raise file_error(path, r, "the token is NULL", "row")
        if (r := first_row("v IS NULL OR list_count(v) <> len(v)")) is not None:
            raise file_error(path, r, "the vector is NULL or holds NULLs", "row")
        n, d = con.execute("SELECT count(*), (SELECT len(v) FROM t ORDER BY r LIMIT 1) FROM t").fetchone()
        if not n:
            raise file_error(path, None, "no rows")
        if not d:
            raise file_error(path, 1, "empty vector", "row")
        if (r := first_row(f"len(v) <> {int(d)}")) is not None:
            raise file_error(path, r, f"the vector has {con.execute('SELECT len(v) FROM t WHERE r = ?', [r]).fetchone()[0]} numbers, row 1 has {d}", "row")
        words = [w for (w,) in con.execute("SELECT token FROM t ORDER BY r").fetchall()]
        vecs = con.execute("SELECT v FROM t ORDER BY r").fetchnumpy()["v"]
    finally:
        con.close()
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in vecs]) if len(vecs) else np.empty((0, d), np.float32)
    finite = np.isfinite(matrix)
    if not finite.all():
        r = int(np.argwhere(~finite)[0][0])
        raise file_error(path, r + 1, "the vector holds NaN or infinity", "row")
    seen: dict[str, int] = {}
    for k, w in enumerate(words, 1):
        first = seen.setdefault(w, k)
        if first != k:
            raise file_error(path, k, f"duplicate token {w!r} (first in row {first})", "row")
    return words, matrix
