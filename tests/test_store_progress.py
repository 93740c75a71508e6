"""Long first reads report progress: a cold matrix is read once with a progress bar, a
file whose mtime changed is hashed with one, and then recorded so it is not hashed again."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from explorer.services.engine import Engine
from explorer.services.query import QueryOptions, SetChoice, analogy
from explorer.store import files, sets


class Recorder:
    def __init__(self):
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, label: str, done: int, total: int) -> None:
        self.calls.append((label, done, total))

    def labels(self, word: str) -> list[str]:
        return sorted({c[0] for c in self.calls if word in c[0]})

    def finished(self, word: str) -> bool:
        return any(word in label and done == total > 0 for label, done, total in self.calls)


@pytest.fixture(autouse=True)
def show_progress_at_once(monkeypatch):
    monkeypatch.setattr(sets, "PROGRESS_AFTER", 0.0)  # tiny files read in microseconds


@pytest.fixture
def root(tmp_path, tiny_root):
    r = tmp_path / "root"
    shutil.copytree(tiny_root, r, ignore=shutil.ignore_patterns("states"))  # keeps mtimes
    return r


def test_resident_fraction_sees_a_read_file(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(os.urandom(1 << 20))
    p.read_bytes()
    frac = files.resident_fraction(p)
    assert frac is None or frac >= 0.9
    (tmp_path / "empty").write_bytes(b"")
    assert files.resident_fraction(tmp_path / "empty") is None


def test_cold_matrix_is_read_once_with_progress(root, monkeypatch):
    monkeypatch.setattr(sets, "resident_fraction", lambda path: 0.0)  # as after a reboot
    rec = Recorder()
    eng = Engine(root)
    analogy(eng, "woman - man + king", QueryOptions(SetChoice("tiny-llama"), k=3), progress=rec)
    assert rec.finished("from disk"), rec.calls
    n = len(rec.calls)
    analogy(eng, "king", QueryOptions(SetChoice("tiny-llama"), k=3), progress=rec)  # same process: already read
    assert len(rec.calls) == n
    warm = Recorder()
    monkeypatch.setattr(sets, "resident_fraction", lambda path: 1.0)
    analogy(Engine(root), "king", QueryOptions(SetChoice("tiny-llama"), k=3), progress=warm)
    assert warm.calls == []


def test_changed_mtime_is_hashed_with_progress_then_recorded(root):
    cat = Engine(root).catalog
    row = cat.vector_set(cat.model("tiny-llama").model_id, "input")
    vectors = root / row.path / "vectors.npy"
    st = vectors.stat()
    os.utime(vectors, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # e.g. a data root copied without -p
    rec = Recorder()
    analogy(Engine(root), "king", QueryOptions(SetChoice("tiny-llama"), k=3), progress=rec)
    assert rec.finished("SHA-256"), rec.calls
    assert cat.files(row.set_id)["vectors"].mtime_ns == st.st_mtime_ns + 10**9
    again = Recorder()
    analogy(Engine(root), "king", QueryOptions(SetChoice("tiny-llama"), k=3), progress=again)
    assert again.labels("SHA-256") == []


def test_changed_file_with_changed_mtime_is_still_refused(root):
    from explorer.errors import CorruptFile

    cat = Engine(root).catalog
    row = cat.vector_set(cat.model("tiny-llama").model_id, "input")
    vectors = root / row.path / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 1
    vectors.write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match="vectors.npy"):
        analogy(Engine(root), "king", QueryOptions(SetChoice("tiny-llama"), k=3))
    assert cat.files(row.set_id)["vectors"].mtime_ns != vectors.stat().st_mtime_ns  # not vouched for


def test_quick_reads_show_no_progress(root, monkeypatch):
    monkeypatch.setattr(sets, "PROGRESS_AFTER", 60.0)
    monkeypatch.setattr(sets, "resident_fraction", lambda path: 0.0)
    rec = Recorder()
    analogy(Engine(root), "king", QueryOptions(SetChoice("tiny-llama"), k=3), progress=rec)
    assert rec.calls == []


def test_warm_reads_a_cold_file_and_skips_a_cached_one(tmp_path, monkeypatch):
    p = tmp_path / "m.npy"
    np.save(p, np.ones((300, 64), np.float32))
    rec = Recorder()
    monkeypatch.setattr(sets, "resident_fraction", lambda path: 0.2)
    sets.warm(p, "reading m", rec)
    assert rec.finished("reading m") and rec.calls[-1][2] == p.stat().st_size
    rec.calls.clear()
    monkeypatch.setattr(sets, "resident_fraction", lambda path: 0.95)
    sets.warm(p, "reading m", rec)
    assert rec.calls == []
