"""``explorer vectors export|import``: stored vector sets to and from the files other tools
read (word2vec, GloVe, the TensorFlow projector, Parquet)."""

from __future__ import annotations

from pathlib import Path

from explorer.core.types import Progress, Report
from explorer.services.engine import Engine
from explorer.store.predicate import check_where

__all__ = ["check_where", "export_vectors", "import_vectors"]


def export_vectors(engine: Engine, model: str | None, vectors: str, fmt: str, output: Path, *, limit: int | None = None,
                   where: str | None = None, words: Path | None = None, report: Report | None = None,
                   progress: Progress | None = None):
    """Write a stored vector set (the model is exported first if it is not stored yet); a
    file system refusal (permission, full disk, a path that cannot exist) is one line."""
    from explorer.store.interchange import export_set

    m = engine.model(model, report=report, progress=progress)
    return export_set(engine.root, m.name, vectors, fmt, output, limit=limit, where=where, words=words,
                      progress=progress)


def import_vectors(engine: Engine, file: Path, *, name: str | None = None, fmt: str = "auto", replace: bool = False,
                   progress: Progress | None = None):
    """Import a vector file as a new model with one vector set, ``input``."""
    from explorer.store.interchange import import_file

    return import_file(engine.root, file, name=name, fmt=fmt, replace=replace, progress=progress)
