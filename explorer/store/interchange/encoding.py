"""What the file formats share: names, the escaping of words, the writing and reading
of float32 values, and the one-line error that names a file and a line (see the
package docstring)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np

from explorer.errors import ExplorerError


EXPORT_FORMATS = ("projector", "parquet", "word2vec", "word2vec-binary")
IMPORT_FORMATS = ("word2vec", "word2vec-binary", "glove", "projector", "parquet")
WORD_COLUMNS = ("raw", "text")
PROJECTOR_VECTORS = "vectors.tsv"
PROJECTOR_METADATA = "metadata.tsv"
METADATA_HEADER = ("token", "token_id", "script")
SOURCE_KIND = "imported"
SET_NAME = "input"

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
HEADER = re.compile(rb"\s*(\d+)[ \t]+(\d+)\s*")
MAX_WORD_BYTES = 1 << 16
CHUNK_VALUES = 1 << 20  # floats formatted or parsed per batch


def check_model_name(name: str, option: str = "") -> str:
    """``name`` if it is a valid model name (imports and experiments' vector sets alike);
    else a one-line error naming ``option`` (e.g. ``--name``) when given."""
    if not MODEL_NAME.fullmatch(name or ""):
        raise ExplorerError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-', starting with a "
                            "letter or digit" + (f" ({option})" if option else ""))
    return name


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


def format_rows(con: duckdb.DuckDBPyConnection, block: np.ndarray, sep: str) -> list[str]:
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


class FloatRows:
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
        if len(self.values) >= CHUNK_VALUES:
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
                        raise file_error(self.path, line, f"not a number: {what}", self.what) from None
            raise file_error(self.path, self.lines[0], "unreadable numbers", self.what) from None
        with np.errstate(over="ignore", invalid="ignore"):
            block = vals.astype(np.float32).reshape(len(self.lines), d)
        finite = np.isfinite(block)
        if not finite.all():
            r, c = map(int, np.argwhere(~finite)[0])
            raise file_error(
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


def file_error(path: Path, line: int | None, message: str, what: str = "line") -> ExplorerError:
    """``FILE, line N: message``; ``what="record"`` (binary files): ``FILE, line N (vector
    N-1): ...``, the header being line 1 and each vector a line as word2vec.c writes them."""
    if line is None:
        where = f"{path}"
    elif what == "record":
        where = f"{path}, line {line} (vector {line - 1})"
    else:
        where = f"{path}, {what} {line}"
    return ExplorerError(f"{where}: {message}")


def sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"
