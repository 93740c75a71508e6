"""`explorer export` given files that are not models, and given a model already stored."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct

import numpy as np
import pytest

from clitools import one_line_error, run
from explorer.models import loading, sources
from explorer.models.export import export_model


def _tiny_gguf(path, arch: str = "llama"):
    """A small but well-formed GGUF file (an architecture name, two tensors)."""
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(16)
    w.add_tensor("token_embd.weight", np.ones((8, 4), np.float32))
    w.add_tensor("output.weight", np.ones((8, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def _bad_files(tmp_path) -> dict[str, bytes]:
    good = _tiny_gguf(tmp_path / "good.gguf")
    rng = np.random.default_rng(0)
    return {
        "text": b"this is a text file, not a model\n" * 20,
        "noise": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty": b"",
        "magic-only": b"GG",
        "cut-header": good[:20],
        "cut-tables": good[:60],
        "cut-data": good[: len(good) - 40],
        "version-1": b"GGUF" + struct.pack("<IQQ", 1, 2, 2) + good[24:],
        "huge-counts": b"GGUF" + struct.pack("<IQQ", 3, 2**40, 2**40) + good[24:],
        "no-tensors": b"GGUF" + struct.pack("<IQQ", 3, 0, 0),
        "unsupported": _tiny_gguf(tmp_path / "bert.gguf", "nomic-bert"),  # well formed; transformers cannot build it
        "bad-tensor-type": good.replace(b"token_embd.weight\x02\x00\x00\x00", b"token_embd.weight\x07\x00\x00\x00"),
    }


def _snapshot(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def stored_root(tiny_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    return root


def test_files_that_are_not_gguf_models_are_one_line_errors(stored_root, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_MODEL_CACHE", str(tmp_path / "cache"))
    before = _snapshot(stored_root)
    for kind, data in _bad_files(tmp_path).items():
        path = tmp_path / f"{kind}.gguf"
        path.write_bytes(data)
        line = one_line_error(run(stored_root, "export", str(path)))
        assert f"{kind}.gguf" in line, (kind, line)
        assert _snapshot(stored_root) == before, kind  # the catalog and every stored file unchanged
    assert not any(p.name.startswith(".") for p in (tmp_path / "cache").glob("*")), "a conversion left its work dir"


def test_bad_gguf_touches_no_fresh_root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_MODEL_CACHE", str(tmp_path / "cache"))
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    line = one_line_error(run(tmp_path / "fresh", "export", str(junk)))
    assert "junk.gguf is not a GGUF file (bad magic)" in line
    assert not (tmp_path / "fresh" / "catalog.duckdb").exists()


def test_header_messages_name_the_problem(tmp_path):
    from explorer.errors import UnknownModel
    from explorer.models.ggufcheck import check_header

    cases = {b"": "empty", b"PK\x03\x04zip": "bad magic", b"GGUF\x03\x00": "truncated header",
             b"GGUF" + struct.pack("<IQQ", 7, 1, 1): "version 7"}
    for data, expected in cases.items():
        p = tmp_path / "x.gguf"
        p.write_bytes(data)
        with pytest.raises(UnknownModel, match=expected):
            check_header(p)
    p.write_bytes(_tiny_gguf(tmp_path / "ok.gguf"))
    check_header(p)  # a good header passes


def test_already_stored_model_is_reported_without_loading(stored_root, tiny_model_dir, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded or converted")

    monkeypatch.setattr(loading, "load_model", refuse)
    monkeypatch.setattr(sources, "convert", refuse)
    messages: list[str] = []
    rep = export_model(str(tiny_model_dir), stored_root, report=messages.append)
    assert rep.steps == [] and rep.model == "tiny-llama" and rep.tied is False
    assert (rep.vocab_rows, rep.d_model, rep.n_layers) == (31, 16, 2)
    assert any("already stored" in m for m in messages)
    r = run(stored_root, "export", str(tiny_model_dir), "--json")
    assert r.exit_code == 0, r.stderr
    assert __import__("json").loads(r.stdout)["steps"] == []
    with pytest.raises(AssertionError, match="loaded or converted"):
        export_model(str(tiny_model_dir), stored_root, force=True)  # --force always redoes


def test_damaged_store_is_not_taken_as_stored(stored_root, tiny_model_dir):
    vectors = next(stored_root.glob("sets/tiny-llama/output/vectors*"))
    os.unlink(vectors)
    rep = export_model(str(tiny_model_dir), stored_root)
    assert rep.steps == ["output"]  # the quick check saw the missing file and the export redid it


def test_a_conversion_failure_is_one_error_line(stored_root, tmp_path, monkeypatch):
    """A well-formed llama GGUF without the metadata transformers needs: the failure comes
    from inside transformers, after the conversion's stage line, and is still one error."""
    monkeypatch.setenv("EXPLORER_MODEL_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "bare-llama.gguf"
    _tiny_gguf(path)
    before = _snapshot(stored_root)
    r = run(stored_root, "export", str(path))
    assert r.exit_code == 1 and (r.exception is None or isinstance(r.exception, SystemExit))
    assert "Traceback" not in r.output + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot convert bare-llama.gguf" in errors[0], r.stderr
    assert r.stderr.rstrip().splitlines()[-1] == errors[0]
    assert _snapshot(stored_root) == before
    assert not list((tmp_path / "cache").glob(".*"))  # the work dir is gone


@pytest.mark.slow
def test_gemma_already_stored_is_answered_from_the_catalog(gemma_root, model_cache, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded or converted")

    monkeypatch.setenv("EXPLORER_MODEL_CACHE", str(model_cache))
    monkeypatch.setattr(loading, "load_model", refuse)
    monkeypatch.setattr(sources, "convert", refuse)
    rep = export_model("gemma3-270m", gemma_root)
    assert rep.steps == [] and rep.tied is True and (rep.vocab_rows, rep.d_model, rep.n_layers) == (262144, 640, 18)


def test_broken_model_directories_are_one_line_errors(stored_root, tiny_model_dir, tmp_path):
    before = _snapshot(stored_root)
    cases = {
        "bad-config": lambda d: (d / "config.json").write_text("{not json"),
        "cut-weights": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:500]),
        "cut-end": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-10]),
        "no-weights": lambda d: (d / "model.safetensors").unlink(),
        "unknown-type": lambda d: (d / "config.json").write_text('{"model_type": "no-such-arch"}'),
    }
    for name, damage in cases.items():
        d = tmp_path / name
        shutil.copytree(tiny_model_dir, d)
        damage(d)
        line = one_line_error(run(stored_root, "export", str(d)))
        assert name in line, line
        assert _snapshot(stored_root) == before, name
