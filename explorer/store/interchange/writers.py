"""Export: a stored vector set to a projector directory, Parquet or word2vec file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np

from explorer.core.types import Progress
from explorer.errors import ExplorerError, UnknownModel
from explorer.store import sets
from explorer.store.catalog import Catalog
from explorer.store.files import atomic_path
from explorer.store.interchange.encoding import (
    CHUNK_VALUES, EXPORT_FORMATS, METADATA_HEADER, PROJECTOR_METADATA, PROJECTOR_VECTORS, WORD_COLUMNS,
    format_rows, sql_path, tsv_escape, word2vec_word,
)
from explorer.store.predicate import check_where
from explorer.store.vectorset import VectorSet

# -- export ----------------------------------------------------------------------------


@dataclass
class VectorFileReport:
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
) -> VectorFileReport:
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
    with catalog.session():  # the reads of this selection on one connection
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
    rep = VectorFileReport(m.name, vectors, fmt, len(ids), vs.dim, words)
    try:
        rep.files = _write(fmt, output, vs, ids, labels, scripts, progress)
    except OSError as exc:  # permission, full disk, a path that cannot exist: one line
        raise ExplorerError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
    except duckdb.IOException as exc:
        raise ExplorerError(f"cannot write {str(output)!r}: {str(exc).splitlines()[0]}") from None
    return rep


def _write(fmt: str, output: Path, vs: VectorSet, ids: np.ndarray, labels: list[str], scripts: list[str],
           progress: Progress | None) -> list[str]:
    if fmt == "projector":
        return _write_projector(output, vs, ids, labels, scripts, progress)
    if fmt == "parquet":
        return [_write_parquet(output, vs, ids, labels)]
    written = _unique_word2vec_words(ids, labels)
    return [_write_word2vec(output, vs, ids, written, fmt == "word2vec-binary", progress)]


def _selection(
    catalog: Catalog, model_id: int, n_rows: int, limit: int | None, where: str | None, words: str
) -> tuple[np.ndarray, list[str], list[str]]:
    """Token ids (ascending), their words and scripts."""
    col = "raw" if words == "raw" else "text"
    clauses = ["model_id = ?", "token_id >= 0", "token_id < ?"]
    if where := check_where(where):  # one expression, checked by DuckDB's parser
        clauses.append(where)
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
    step = max(1, CHUNK_VALUES // max(1, vs.dim))
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
                f.write("\n".join(format_rows(con, block, "\t")))
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
                f"TO {sql_path(tmp)} (FORMAT parquet)"
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
                    lines = format_rows(con, block, " ")
                    f.write("".join(f"{written[a + k]} {s}\n" for k, s in enumerate(lines)).encode("utf-8"))
                    if progress:
                        progress(label, a + len(block), len(ids))
            finally:
                con.close()
    return str(out)
