"""Import, second half: words and a matrix become a model with a tokens table and one
vector set named ``input``."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from explorer.core.types import Progress
from explorer.errors import ExplorerError
from explorer.store import sets
from explorer.store.catalog import Catalog
from explorer.store.interchange.encoding import (
    PROJECTOR_METADATA, PROJECTOR_VECTORS, SET_NAME, SOURCE_KIND, check_model_name,
)
from explorer.store.interchange.readers import read_vectors

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
        root, default_name(path) if name is None else name, words, matrix,
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
    check_model_name(name, "--name")
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
    from explorer.query.tokeninfo import script_of  # numpy, re and unicodedata only

    catalog = Catalog(root)
    catalog.migrate()
    replaced = False
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
    return ImportReport(name, fmt, source, n, d, SET_NAME, replaced)
