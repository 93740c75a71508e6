"""Writing, verifying and rebuilding vector sets (files first, catalog row last)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from explorer.core.types import Progress
from explorer.errors import CorruptFile
from explorer.store import index as index_mod
from explorer.store.catalog import Catalog, FileRow, VectorSetRow
from explorer.store.files import atomic_dir, read_into_cache, resident_fraction, sha256_file
from explorer.store.vectorset import INDEX, NORMS, VECTORS, VectorSet


# Reads shorter than this show no progress (nothing flashes by; a user error stays one line).
PROGRESS_AFTER = 1.0


def deferred(progress: Progress | None, label: str) -> Callable[[int, int], None] | None:
    """``progress`` for one read, as ``(done, total)``: silent for its first
    :data:`PROGRESS_AFTER` seconds, so only a slow read (a cold or slow disk) shows a bar."""
    if progress is None:
        return None
    import time

    start = time.monotonic()
    shown = False

    def report(done: int, total: int) -> None:
        nonlocal shown
        if shown or time.monotonic() - start >= PROGRESS_AFTER:
            shown = True
            progress(label, done, total)

    return report


def set_dir(model_name: str, set_name: str) -> str:
    return f"sets/{model_name}/{set_name}"


def _file_row(root: Path, rel: str, role: str, kind: str | None = None) -> FileRow:
    p = root / rel
    st = p.stat()
    return FileRow(0, role, rel, st.st_size, sha256_file(p), st.st_mtime_ns, kind)


def write_vector_set(
    catalog: Catalog,
    model_id: int,
    model_name: str,
    set_name: str,
    matrix: np.ndarray,
    *,
    kind: str = "token",
    note: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Store ``matrix`` (rows = ids) with norms and a FAISS index; register it last."""
    rel = set_dir(model_name, set_name)
    final = catalog.root / rel
    with atomic_dir(final) as tmp:
        VectorSet.write(tmp, matrix)
        vs = VectorSet.open(tmp)
        index_mod.build_index(
            vs, tmp / INDEX, progress=(lambda d, t: progress(f"index {set_name}", d, t)) if progress else None
        )
        del vs
    files = [
        _file_row(catalog.root, f"{rel}/{VECTORS}", "vectors"),
        _file_row(catalog.root, f"{rel}/{NORMS}", "norms"),
        _file_row(catalog.root, f"{rel}/{INDEX}", "index", index_mod.INDEX_KIND),
    ]
    n, d = matrix.shape
    return catalog.register_vector_set(
        model_id, set_name, files, kind=kind, n_rows=n, dim=d, dtype="float32", path=rel, note=note
    )


def register_alias(catalog: Catalog, model_id: int, set_name: str, target: VectorSetRow, note: str) -> int:
    """A set that shares another's rows (a tied unembedding): a row, no files."""
    return catalog.register_vector_set(
        model_id, set_name, (), kind=target.kind, n_rows=target.n_rows, dim=target.dim,
        dtype=target.dtype, same_as=target.set_id, path=target.path, note=note,
    )


def storage_row(catalog: Catalog, row: VectorSetRow) -> VectorSetRow:
    """The row that owns the files (follows ``same_as`` for tied sets)."""
    seen = set()
    while row.same_as is not None and row.set_id not in seen:
        seen.add(row.set_id)
        row = catalog.vector_set_by_id(row.same_as)
    return row


def check_file(catalog: Catalog, f: FileRow, full: bool = False, progress: Callable[[int, int], None] | None = None) -> str | None:
    """None if the file matches the catalog, else what is wrong. ``f`` is any recorded
    file row (path, bytes, sha256, mtime_ns): a vector set's or a corpus's.

    Fast path: size and mtime as recorded. On any difference (or ``full``) the
    SHA-256 decides, so a touched but intact file passes and an edited one fails;
    ``progress(done_bytes, total)`` follows the hashing.
    """
    p = catalog.root / f.path
    try:
        st = p.stat()
    except FileNotFoundError:
        return f"{f.path} is missing"
    if st.st_size != f.bytes:
        return f"{f.path} has {st.st_size} bytes, the catalog recorded {f.bytes}"
    if not full and st.st_mtime_ns == f.mtime_ns:
        return None
    if sha256_file(p, progress) != f.sha256:
        return f"{f.path} fails its SHA-256 checksum"
    return None


def verify(catalog: Catalog, row: VectorSetRow, model_name: str, full: bool = False, roles=None,
           progress: Progress | None = None) -> None:
    owner = storage_row(catalog, row)
    files = catalog.files(owner.set_id)
    for role in roles or ("vectors", "norms", "index"):
        f = files.get(role)
        if f is None:
            raise CorruptFile(f"vector set {model_name}/{owner.name} has no {role} file recorded; re-run `explorer export {model_name}`")
        problem = check_file(catalog, f, full, deferred(progress, f"checking {model_name}/{owner.name} {role} (SHA-256)"))
        if problem is None:
            _refresh_mtime(catalog, f, lambda mtime: catalog.put_file(replace(f, mtime_ns=mtime)))
        if problem:
            fix = (
                f"explorer index rebuild --model {model_name}"
                if role == "index"
                else f"explorer export {model_name} --force"
            )
            raise CorruptFile(f"corrupt {role} file: {problem}; fix with `{fix}`")


def _refresh_mtime(catalog: Catalog, f, record: Callable[[int], None]) -> None:
    """After the SHA-256 vouched for a file whose mtime changed (a copied data root),
    record the new mtime so that the next check is fast again; skipped if the catalog is
    busy or read-only (the next check hashes again)."""
    from explorer.errors import ExplorerError

    try:
        mtime = (catalog.root / f.path).stat().st_mtime_ns
        if mtime != f.mtime_ns:
            record(mtime)
    except (ExplorerError, OSError):
        pass


def open_verified(catalog: Catalog, owner: VectorSetRow, model_name: str, progress: Progress | None = None) -> VectorSet:
    """Check a set's vectors and norms (size and mtime; SHA-256, with progress, if the
    mtime changed) and open it."""
    verify(catalog, owner, model_name, roles=("vectors", "norms"), progress=progress)
    return VectorSet.open(catalog.root / owner.path)


def warm(path: Path, label: str, progress: Progress | None = None) -> None:
    """Read a file that is mostly not in the page cache (a first search after a reboot, a
    cold or network disk) sequentially with progress, if it fits in free memory; a warm
    file costs one mincore call."""
    try:
        cached = resident_fraction(path)
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return
    if cached is None or cached >= 0.9 or path.stat().st_size > free // 2:
        return
    read_into_cache(path, deferred(progress, label))


def rebuild_index(catalog: Catalog, row: VectorSetRow, model_name: str, progress: Progress | None = None) -> FileRow:
    """Rebuild a set's FAISS index from its (verified) vectors."""
    owner = storage_row(catalog, row)
    verify(catalog, owner, model_name, full=True, roles=("vectors", "norms"))
    vs = VectorSet.open(catalog.root / owner.path)
    path = catalog.root / owner.path / INDEX
    if path.exists():
        os.unlink(path)
    index_mod.build_index(vs, path, progress=(lambda d, t: progress(f"index {owner.name}", d, t)) if progress else None)
    f = _file_row(catalog.root, f"{owner.path}/{INDEX}", "index", index_mod.INDEX_KIND)
    f = FileRow(owner.set_id, f.role, f.path, f.bytes, f.sha256, f.mtime_ns, f.kind)
    catalog.put_file(f)
    return f

