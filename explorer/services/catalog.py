"""What is stored: export a model, list models and their vector sets, verify every stored
file against the catalog, rebuild FAISS indexes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from explorer.core.types import Progress, Report
from explorer.errors import CorruptFile, ExplorerError
from explorer.services.engine import Engine
from explorer.store.catalog import FileRow, ModelRow

__all__ = ["FileCheck", "check_readable", "export_embeddings", "model_summary", "rebuild_indexes", "verify_files"]


def export_embeddings(engine: Engine, model: str, *, force: bool = False, report: Report = lambda s: None,
                 progress: Progress | None = None):
    """``explorer export``: input embedding and unembedding into FAISS + DuckDB."""
    from explorer.models.export import export_model as run

    return run(model, engine.root, force=force, report=report, progress=progress)


def model_summary(engine: Engine) -> list[dict]:
    """Every stored model with its vector sets, as plain dicts (``explorer models --json``)."""
    with engine.catalog.session():
        return [_model_dict(engine, m) for m in engine.models()]


def _model_dict(engine: Engine, m: ModelRow) -> dict:
    sets = engine.catalog.vector_sets(m.model_id)
    return {
        "name": m.name, "source": m.source, "kind": m.source_kind, "architecture": m.architecture,
        "layers": m.n_layers, "d_model": m.d_model, "vocab": m.vocab_size, "tied": m.tied,
        "embed_scale": m.embed_scale,
        "vector_sets": [
            {"name": s.name, "rows": s.n_rows, "dim": s.dim, "same_as": s.same_as, "path": s.path, "note": s.note}
            for s in sets
        ],
    }


@dataclass(frozen=True)
class FileCheck:
    """One stored item checked: ``problem`` is None when it matched the catalog."""

    label: str
    detail: str | None
    problem: str | None


def verify_files(engine: Engine, model: str | None = None, full: bool = True) -> Iterator[FileCheck]:
    """Check every stored file of ``model`` (default: all) against the catalog: vector sets
    (vectors, norms, FAISS index), hidden-state layer files and their compressed indexes.
    Yields as it goes (a full check reads every byte)."""
    from explorer.store import sets
    from explorer.store.states import StateStore, verify_corpus

    models = [m for m in engine.models() if model is None or m.name == model]
    if model is not None and not models:
        raise ExplorerError(f"model {model!r} is not in the catalog")
    store = StateStore(engine.catalog)
    for m in models:
        for row in engine.catalog.vector_sets(m.model_id):
            if row.same_as is None:
                yield _check(f"{m.name}/{row.name}", lambda: sets.verify(engine.catalog, row, m.name, full=full))
        for c in store.corpora(m.model_id):
            yield _check(f"{m.name}/{c.name}", lambda: verify_corpus(store, c, m.name, full=full))


def _check(label: str, fn) -> FileCheck:
    try:
        return FileCheck(label, fn() or None, None)
    except CorruptFile as exc:
        return FileCheck(label, None, str(exc))


def rebuild_indexes(engine: Engine, model: str, vectors: str | None = None, *,
                    progress: Progress | None = None) -> Iterator[FileRow]:
    """Rebuild FAISS index files from the stored vectors; yields each new file's row."""
    from explorer.store import sets

    m = engine.catalog.model(model) if engine.catalog.exists() else None
    if m is None:
        raise ExplorerError(f"model {model!r} is not in the catalog")
    rows = [r for r in engine.catalog.vector_sets(m.model_id) if r.same_as is None and (vectors is None or r.name == vectors)]
    if not rows:
        raise ExplorerError(f"model {model} has no stored vector set {vectors!r}")
    for row in rows:
        yield sets.rebuild_index(engine.catalog, row, m.name, progress=progress)


def check_readable(engine: Engine) -> None:
    """A corrupt or foreign catalog file is one error here, before a front end starts."""
    if engine.catalog.exists():
        engine.models()
