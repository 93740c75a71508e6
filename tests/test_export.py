"""Export of a tiny seeded model: what lands in the store, tied sets, killed exports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import build_tiny_model
from explorer.models.export import export_model
from explorer.store.catalog import Catalog
from explorer.store.vectorset import VectorSet


def _weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def test_export_writes_both_matrices_exactly(tiny_root, tiny_model_dir):
    cat = Catalog(tiny_root)
    (m,) = cat.models()
    assert m.source_kind == "hf-dir" and m.tied is False and m.n_layers == 2 and m.d_model == 16
    w = _weights(tiny_model_dir)
    for name, key in (("input", "model.embed_tokens.weight"), ("output", "lm_head.weight")):
        row = cat.vector_set(m.model_id, name)
        vs = VectorSet.open(tiny_root / row.path)
        assert vs.vectors.tobytes() == w[key].astype(np.float32).tobytes()
        files = cat.files(row.set_id)
        assert set(files) == {"vectors", "norms", "index"}
        assert all(len(f.sha256) == 64 for f in files.values())


def test_token_table_describes_every_row(tiny_root):
    cat = Catalog(tiny_root)
    (m,) = cat.models()
    rows = cat.query(
        "SELECT token_id, raw, text, leading_space, script, is_special, is_byte FROM tokens WHERE model_id = ? ORDER BY token_id",
        [m.model_id],
    )
    assert len(rows) == m.vocab_size
    by_raw = {r[1]: r for r in rows}
    assert by_raw["▁king"][2:5] == (" king", True, "latin")
    assert by_raw["king"][2:5] == ("king", False, "latin")
    assert by_raw["▁花"][4] == "cjk"
    assert by_raw["▁король"][4] == "cyrillic"
    assert by_raw["<bos>"][5] is True
    assert by_raw["<0x41>"][6] is True


def test_tied_unembedding_is_stored_once(tmp_path):
    model_dir = build_tiny_model(tmp_path / "tied", tied=True)
    root = tmp_path / "root"
    export_model(str(model_dir), root)
    cat = Catalog(root)
    (m,) = cat.models()
    assert m.tied is True
    inp, out = cat.vector_set(m.model_id, "input"), cat.vector_set(m.model_id, "output")
    assert out.same_as == inp.set_id and cat.files(out.set_id) == {}
    assert len(list((root / "sets" / m.name).iterdir())) == 1


def test_rerun_is_a_no_op_and_force_redoes(tiny_model_dir, tmp_path):
    root = tmp_path / "root"
    first = export_model(str(tiny_model_dir), root)
    assert first.steps == ["tokens", "input", "output"]
    assert export_model(str(tiny_model_dir), root).steps == []
    assert export_model(str(tiny_model_dir), root, force=True).steps == ["tokens", "input", "output"]


def test_killed_export_loses_nothing_and_rerun_completes(tiny_model_dir, tmp_path):
    """SIGKILL the exporting process while it writes the unembedding."""
    root = tmp_path / "root"
    script = textwrap.dedent(
        f"""
        import os, signal
        from explorer.store import sets
        real = sets.write_vector_set
        def killing(catalog, model_id, model_name, set_name, matrix, **kw):
            if set_name == "output":
                from explorer.store import index
                index.build_index = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
            return real(catalog, model_id, model_name, set_name, matrix, **kw)
        sets.write_vector_set = killing
        from explorer.models.export import export_model
        export_model({str(tiny_model_dir)!r}, __import__("pathlib").Path({str(root)!r}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == -9, proc.stderr[-2000:]
    cat = Catalog(root)
    (m,) = cat.models()
    assert cat.vector_set(m.model_id, "input") is not None  # finished work is kept
    assert cat.vector_set(m.model_id, "output") is None  # the half-written set is invisible
    assert not (root / "sets" / m.name / "output").exists()
    report = export_model(str(tiny_model_dir), root)
    assert report.steps == ["output"]
    assert not list((root / "sets").rglob("*.tmp-*"))  # leftovers of the killed run are gone
    out = cat.vector_set(m.model_id, "output")
    w = _weights(tiny_model_dir)["lm_head.weight"]
    assert VectorSet.open(root / out.path).vectors.tobytes() == w.tobytes()


def test_unknown_model_spec_is_a_clear_error(tmp_path):
    from explorer.errors import UnknownModel

    with pytest.raises(UnknownModel, match="unknown model 'no-such-model'"):
        export_model("no-such-model", tmp_path)
    with pytest.raises(UnknownModel, match="without config.json"):
        export_model(str(tmp_path), tmp_path)
