"""`explorer index verify` checks every stored file: vector sets and hidden-state layer files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clitools import one_line_error, run
from explorer.services.engine import Engine
from explorer.services.states import open_layer
from explorer.errors import CorruptFile
from explorer.store.catalog import Catalog
from explorer.store.states import StateStore, layer_file, norms_file

DOCS = ["king queen man woman", "Paris France Berlin Germany water", "花 水 король"]


@pytest.fixture
def states_root(tmp_path, tiny_model_dir) -> Path:
    """A fresh root with the tiny model and one finished corpus (named 'docs')."""
    from explorer.models.export import export_model
    from explorer.services.states import export_states

    root = tmp_path / "root"
    export_model(str(tiny_model_dir), root)
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(DOCS) + "\n")
    export_states("tiny-llama", root, corpus=corpus, batch_size=2)
    return root


def _corpus(root: Path):
    (c,) = StateStore(Catalog(root)).corpora()
    return c


def _flip_byte(path: Path, keep_mtime: bool) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x55  # same size, one changed value
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_finished_corpus_records_every_layer_file(states_root):
    c = _corpus(states_root)
    cat = Catalog(states_root)
    rows = StateStore(cat).files(c.corpus_id)
    assert sorted((r.layer, r.role) for r in rows) == sorted((i, role) for i in range(c.n_layers) for role in ("states", "norms"))
    assert {r.path for r in rows} == {f"{c.path}/{f(i)}" for i in range(c.n_layers) for f in (layer_file, norms_file)}
    r = run(states_root, "index", "verify")
    assert r.exit_code == 0, r.output
    assert "hidden states" in r.stdout and "CORRUPT" not in r.stdout


def test_corrupt_layer_file_fails_verify_naming_it(states_root):
    c = _corpus(states_root)
    name = layer_file(1)
    _flip_byte(states_root / c.path / name, keep_mtime=True)
    quick = run(states_root, "index", "verify", "--quick")
    assert quick.exit_code == 0, quick.output  # same size and mtime: --quick cannot see it, by design
    for args in ((), ("--full",)):
        line = one_line_error(run(states_root, "index", "verify", *args))
        assert name in line and "SHA-256" in line
    os.utime(states_root / c.path / name)  # a changed mtime makes --quick hash the file
    assert name in one_line_error(run(states_root, "index", "verify", "--quick"))


def test_truncated_norms_file_fails_quick_verify_and_search(states_root):
    c = _corpus(states_root)
    path = states_root / c.path / norms_file(2)
    path.write_bytes(path.read_bytes()[:-4])
    assert norms_file(2) in one_line_error(run(states_root, "index", "verify", "--quick"))
    with pytest.raises(CorruptFile, match=norms_file(2)):
        open_layer(Engine(states_root), "tiny-llama", None, 2)
    open_layer(Engine(states_root), "tiny-llama", None, 1)  # other layers still open


def test_corpus_without_recorded_checksums_gets_them(states_root):
    """A corpus exported before checksums were kept: its shapes are checked, its
    checksums recorded, and later corruption is caught."""
    c = _corpus(states_root)
    with Catalog(states_root).write() as con:
        con.execute("DELETE FROM state_files")
    r = run(states_root, "index", "verify")
    assert r.exit_code == 0, r.output
    cat = Catalog(states_root)
    assert len(StateStore(cat).files(c.corpus_id)) == 2 * c.n_layers
    _flip_byte(states_root / c.path / layer_file(0), keep_mtime=False)
    assert layer_file(0) in one_line_error(run(states_root, "index", "verify"))


def test_unrecorded_corpus_with_a_short_layer_file_is_not_recorded(states_root):
    c = _corpus(states_root)
    with Catalog(states_root).write() as con:
        con.execute("DELETE FROM state_files")
    path = states_root / c.path / layer_file(1)
    path.write_bytes(path.read_bytes()[:-64])
    assert layer_file(1) in one_line_error(run(states_root, "index", "verify"))
    cat = Catalog(states_root)
    assert StateStore(cat).files(c.corpus_id) == []


def test_touched_layer_file_is_hashed_once_then_recorded(states_root):
    c = _corpus(states_root)
    path = states_root / c.path / layer_file(1)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # content intact, mtime changed (a copy)
    open_layer(Engine(states_root), "tiny-llama", None, 1)
    cat = Catalog(states_root)
    (row,) = [f for f in StateStore(cat).files(c.corpus_id) if f.layer == 1 and f.role == "states"]
    assert row.mtime_ns == st.st_mtime_ns + 10**9
    assert run(states_root, "index", "verify", "--quick").exit_code == 0
