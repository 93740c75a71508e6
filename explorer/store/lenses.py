"""Learned lenses: the ``lenses`` table, one row per model and kind (see
:mod:`explorer.lens.learned`). The translator file is written first (atomically), the
row last, so a row always names a complete file; opening checks its size and SHA-256."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from explorer.errors import CorruptFile
from explorer.store.files import sha256_file


@dataclass(frozen=True)
class LensRow:
    model_id: int
    kind: str
    data: str
    corpus_id: int | None
    train_tokens: int
    heldout_tokens: int
    path: str
    bytes: int
    sha256: str
    settings: dict
    kl_tuned: list[float]
    kl_logit: list[float]
    seconds: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_COLS = ", ".join(LensRow.__dataclass_fields__)


def lens_row(catalog, model_id: int, kind: str) -> LensRow | None:
    if not catalog.exists():
        return None
    rows = catalog.query(f"SELECT {_COLS} FROM lenses WHERE model_id = ? AND kind = ?", [model_id, kind])
    if not rows:
        return None
    r = list(rows[0])
    r[9] = json.loads(r[9]) if r[9] else {}
    r[10], r[11] = list(r[10] or []), list(r[11] or [])
    return LensRow(*r)


def lens_rows(catalog, model_id: int) -> list[LensRow]:
    kinds = catalog.query("SELECT kind FROM lenses WHERE model_id = ? ORDER BY created_at DESC", [model_id])
    return [row for (k,) in kinds if (row := lens_row(catalog, model_id, k)) is not None]


def record_lens(catalog, row: LensRow) -> None:
    """Store ``row`` (replacing the model's lens of that kind)."""
    values = row.to_dict()
    values["settings"] = json.dumps(values["settings"])
    with catalog.write() as con:
        con.execute("DELETE FROM lenses WHERE model_id = ? AND kind = ?", [row.model_id, row.kind])
        con.execute(f"INSERT INTO lenses ({_COLS}) VALUES ({', '.join('?' * len(values))})", list(values.values()))


def checked_path(root: Path, row: LensRow) -> Path:
    """The lens file of ``row``, after checking its size and SHA-256 against the catalog."""
    path = Path(root) / row.path
    if not path.is_file():
        raise CorruptFile(f"lens file {path} is missing; retrain with `explorer lens train --force`")
    if path.stat().st_size != row.bytes or sha256_file(path) != row.sha256:
        raise CorruptFile(f"lens file {path} does not match its checksum; retrain with `explorer lens train --force`")
    return path
