"""Learned lenses (`explorer lens train`, `lens fidelity`, `--lens tuned`): the mechanics on the
tiny model, the KL checked against a direct transformers forward, and (slow) the outcome on
the real default model: the learned lens below the logit lens at every layer but the last."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from clitools import one_line_error
from conftest import WORDS
from explorer.cli.main import app
from explorer.store.catalog import Catalog

runner = CliRunner()


def invoke(root, *args):
    return runner.invoke(app, ["--root", str(root), *args])


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """A tagged corpus the tiny model's word-level tokenizer reads: 12 documents in two 'languages'."""
    rng = np.random.default_rng(0)
    lines = ["lang\ttext"]
    for lang in ("en", "zh"):
        for _ in range(6):
            lines.append(f"{lang}\t" + " ".join(rng.choice(WORDS[:16], size=12)))
    path = tmp_path_factory.mktemp("lenscorpus") / "tiny.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_split_holds_out_the_last_tenth_of_each_language():
    from explorer.services.lenses import split_documents

    docs = [("en", f"e{i}") for i in range(20)] + [("fr", f"f{i}") for i in range(10)]
    train, held = split_documents(docs)
    assert held == [18, 19, 29]
    assert sorted(train + held) == list(range(30)) and not set(train) & set(held)
    assert train[:4] == [0, 20, 1, 21]  # round-robin over languages, file order within each


def test_fit_recovers_a_linear_map():
    from explorer.lens.learned import fit_layer

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    M, c = rng.normal(size=(8, 8)), rng.normal(size=8)
    y = (x @ M + c).astype(np.float32)
    A, b, alpha = fit_layer(x, y, np.arange(2500), np.arange(2500, 3000), lambda h: h)
    np.testing.assert_allclose(A, M, atol=1e-3)
    np.testing.assert_allclose(b, c, atol=1e-3)
    assert alpha == min(__import__("explorer.lens.learned", fromlist=["ALPHAS"]).ALPHAS)


def test_fit_never_reads_the_held_out_rows():
    """Alpha is chosen on a validation part of the training rows: held-out rows set to NaN
    leave the translator finite (a fit or a choice that read them would be NaN)."""
    from explorer.lens.learned import fit_linear, validation_split

    rng = np.random.default_rng(2)
    layers = [rng.normal(size=(1200, 8)).astype(np.float32) for _ in range(3)]
    train, held = np.arange(1000), np.arange(1000, 1200)
    for x in layers:
        x[held] = np.nan
    t = fit_linear(layers, train, lambda h: h / np.linalg.norm(h, axis=-1, keepdims=True))
    assert np.isfinite(t.A).all() and np.isfinite(t.b).all()
    fit, val = validation_split(train)
    assert len(val) == 100 and not set(fit) & set(val) and set(fit) | set(val) == set(train)


def _direct_kl(model, tokenizer, text):
    """KL(final || logit lens) per layer and position, straight from transformers: the logits
    of the forward pass, and hidden_states[l] (pre-norm for l < L) through norm and lm_head."""
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        final = torch.log_softmax(out.logits[0], -1)
        kls = []
        for h in out.hidden_states[:-1]:
            lens = torch.log_softmax(model.lm_head(model.model.norm(h[0])), -1)
            kls.append(torch.nn.functional.kl_div(lens, final, log_target=True, reduction="none").sum(-1) / math.log(2))
    return ids[0].tolist(), torch.stack(kls).numpy()


def test_logit_lens_kl_matches_a_direct_transformers_computation(tiny_root):
    from explorer.lens.fidelity import layer_fidelity
    from explorer.lens.learned import Translator
    from explorer.lens.runner import ModelRunner
    from explorer.models.capture import capture

    m = Catalog(tiny_root).model("tiny-llama")
    run = ModelRunner(m)
    with torch.no_grad():  # a random model's distributions are near uniform: sharpen them so the KL is large
        run.model.lm_head.weight.mul_(40.0)
    ids, direct = _direct_kl(run.model, run.tokenizer, " ".join(WORDS[:10]))
    cap = capture(run.model, run.anatomy, [ids])
    layers = [layer[0].float().numpy() for layer in cap.layers]
    fid = layer_fidelity(run.anatomy, run.model, layers)
    np.testing.assert_allclose([f.kl_logit for f in fid[:-1]], direct.mean(axis=1), rtol=1e-4, atol=1e-4)
    assert fid[-1].kl_logit == 0.0 and fid[-1].top1_logit == 1.0 and direct.mean() > 0.05
    # the identity translator is the logit lens, layer by layer
    d, n = run.anatomy.d_model, run.anatomy.n_layers
    ident = Translator("linear", np.tile(np.eye(d, dtype=np.float32), (n, 1, 1)), np.zeros((n, d), np.float32), np.zeros(n))
    same = layer_fidelity(run.anatomy, run.model, layers, ident)
    np.testing.assert_allclose([f.kl_tuned for f in same], [f.kl_logit for f in same], rtol=1e-5, atol=1e-6)


def test_train_reuse_force_and_stored_file(tiny_root, tiny_corpus, tmp_path):
    import shutil

    root = shutil.copytree(tiny_root, tmp_path / "root")  # the session's tiny root stays as other modules expect it
    args = ("lens", "train", "--model", "tiny-llama", "--corpus", str(tiny_corpus), "--tokens", "100", "--json")
    r = invoke(root, *args)
    assert r.exit_code == 0, r.stderr
    first = json.loads(r.stdout)
    assert not first["reused"] and first["train_tokens"] >= 100 and first["heldout_tokens"] > 0
    assert [v["layer"] for v in first["layers"]] == [0, 1, 2]
    cat = Catalog(root)
    (path, sha, kl), = cat.query("SELECT path, sha256, kl_tuned FROM lenses l JOIN models m USING (model_id) "
                                 "WHERE m.name = 'tiny-llama' AND kind = 'linear'")
    import hashlib

    assert hashlib.sha256((root / path).read_bytes()).hexdigest() == sha == first["sha256"]
    assert len(kl) == 3 and kl[-1] == 0.0
    again = json.loads(invoke(root, *args).stdout)
    assert again["reused"] and again["sha256"] == sha
    forced = invoke(root, *args, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert not json.loads(forced.stdout)["reused"]
    other = invoke(root, *args[:-2], "200")  # other settings, no --force: refused, nothing lost
    assert one_line_error(other) and "--force" in other.stderr
    assert (root / path).is_file()
    r = invoke(root, "lens", "fidelity", "--model", "tiny-llama", "--tokens", "8", "--json")
    assert r.exit_code == 0, r.stderr
    fid = json.loads(r.stdout)
    assert fid["heldout_tokens"] == 8 and [v["layer"] for v in fid["layers"]] == [0, 1, 2]
    assert all(v["kl_logit"] >= 0 and v["kl_tuned"] >= 0 for v in fid["layers"])
    traj = {lens: json.loads(invoke(root, "trajectory", "king queen water", "--model", "tiny-llama", "-k", "3",
                                    "--lens", lens, "--json").stdout)["layers"] for lens in ("logit", "tuned")}
    top = {lens: [[t["prob"] for t in v["lens_top"]] for v in layers] for lens, layers in traj.items()}
    assert top["tuned"][-1] == pytest.approx(top["logit"][-1])  # the last layer is the model's own distribution
    assert top["tuned"][0] != pytest.approx(top["logit"][0], abs=1e-6)  # earlier ones are translated
    with open(root / path, "r+b") as f:  # a lens file changed behind the catalog's back is refused
        f.seek(200)
        f.write(b"\xff\xff")
    bad = invoke(root, "lens", "fidelity", "--model", "tiny-llama")
    assert one_line_error(bad) and "checksum" in bad.stderr


@pytest.mark.parametrize("args, needle", [
    (("lens", "train", "--kind", "bogus"), "unknown lens kind"),
    (("lens", "train", "--kind", "kl", "--steps", "0"), "--steps"),
    (("lens", "train", "--kind", "kl", "--lr", "-1"), "--lr"),
    (("lens", "train", "--kind", "kl", "--batch", "0"), "--batch"),
    (("lens", "train", "--kind", "kl", "--vocab", "most"), "--vocab"),
    (("lens", "train", "--kind", "kl", "--init", "random"), "--init"),
    (("lens", "train", "--tokens", "5"), "--tokens"),
    (("lens", "train", "--corpus", "/nonexistent/x.tsv"), "not found"),
])
def test_train_refuses_bad_input_before_any_model(tmp_path, args, needle):
    r = invoke(tmp_path / "empty-root", *args)
    assert one_line_error(r) and needle in r.stderr
    assert not (tmp_path / "empty-root" / "catalog.duckdb").exists()


def test_kl_lens_trains_from_linear_and_keeps_it_where_training_does_not_help(tiny_root, tiny_corpus, tmp_path):
    """--kind kl: started from the stored linear lens, Adam on KL; a layer where training did
    not help on the validation rows keeps the linear translator; stored with checksum and catalog row, reused, --force;
    the restricted vocabulary recorded; `--lens tuned` then reads with kl."""
    import hashlib
    import shutil

    root = shutil.copytree(tiny_root, tmp_path / "root")
    base = ("lens", "train", "--model", "tiny-llama", "--corpus", str(tiny_corpus), "--tokens", "100")
    lin = invoke(root, *base, "--json")
    assert lin.exit_code == 0, lin.stderr
    ident = invoke(root, *base, "--kind", "kl", "--init", "identity", "--steps", "60", "--lr", "0.01", "--json")
    assert ident.exit_code == 0, ident.stderr  # from the logit lens, training must improve on it
    out = json.loads(ident.stdout)
    assert out["training"]["kept_start_layers"] == []  # every layer improved by training itself
    assert out["training"]["start"] == "identity" and out["training"]["train_kl_last"] < out["training"]["train_kl_first"]
    assert all(v["kl_tuned"] < v["kl_logit"] for v in out["layers"][:-1]) and out["layers"][-1]["kl_tuned"] == 0.0
    kl_args = (*base, "--kind", "kl", "--steps", "60", "--vocab", "full", "--json")
    r = invoke(root, *kl_args)
    assert one_line_error(r) and "--force" in r.stderr  # a kl lens with other settings is stored
    r = invoke(root, *kl_args, "--force")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "kl" and not out["reused"]
    t = out["training"]
    assert t["start"] == "stored linear lens" and t["vocab"] == "full" and t["vocab_size"] == 31 and t["vocab_mass"] == 1.0
    linear = [v["kl_tuned"] for v in json.loads(lin.stdout)["layers"]]
    tuned = [v["kl_tuned"] for v in out["layers"]]
    assert all(tuned[i] == pytest.approx(linear[i], abs=1e-6) for i in t["kept_start_layers"])  # linear kept there
    assert all(v["kl_tuned"] < v["kl_logit"] for v in out["layers"][:-1]) and tuned[-1] == 0.0
    cat = Catalog(root)
    (path, sha, settings), = cat.query("SELECT path, sha256, settings FROM lenses WHERE kind = 'kl'")
    assert path.endswith("kl.npz") and hashlib.sha256((root / path).read_bytes()).hexdigest() == sha == out["sha256"]
    assert json.loads(settings)["vocab_size"] == 31
    again = json.loads(invoke(root, *kl_args).stdout)  # the same settings: reused
    assert again["reused"] and again["sha256"] == sha
    other = invoke(root, *kl_args[:-1], "--seed", "1")  # other settings without --force: refused
    assert one_line_error(other) and "--force" in other.stderr
    fid = json.loads(invoke(root, "lens", "fidelity", "--model", "tiny-llama", "--tokens", "8", "--json").stdout)
    assert fid["kind"] == "kl"  # with both stored, `tuned` means the kl lens
    words = tmp_path / "w.csv"
    words.write_text("concept,en,zh\nwater,water,水\nking,king,王\n")
    r = invoke(root, "lens", "repeat", "--lang", "en", "--model", "tiny-llama", "--words", str(words), "--shots", "1",
               "--lens", "tuned", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["config"]["lens"] == "tuned (kl)"
    restricted = invoke(root, *base, "--kind", "kl", "--steps", "5", "--vocab", "restricted", "--force", "--json")
    assert restricted.exit_code == 0, restricted.stderr
    t = json.loads(restricted.stdout)["training"]
    assert t["vocab"] == "restricted" and 1 <= t["vocab_size"] <= 31 and 0 < t["vocab_mass"] <= 1.0
    assert "top 16" in t["vocab_rule"]
    shown = invoke(root, *base, "--kind", "kl", "--steps", "5", "--vocab", "restricted")  # reused, for people
    assert shown.exit_code == 0, shown.stderr
    assert "restricted" in shown.stdout.split()


def test_kl_training_is_deterministic_with_a_seed(tiny_root):
    from explorer.lens.kl_settings import KLSettings
    from explorer.lens.runner import ModelRunner
    from explorer.lens.tuned import identity, train_kl
    from explorer.models.capture import capture

    m = Catalog(tiny_root).model("tiny-llama")
    run = ModelRunner(m)
    ids = run.tokenizer(" ".join(WORDS[:20]), return_tensors="pt").input_ids[0].tolist()
    layers = [x[0].float().numpy() for x in capture(run.model, run.anatomy, [ids]).layers]
    init = identity(len(layers) - 1, layers[0].shape[1])
    s = KLSettings(steps=5, batch=8, lr=0.01, vocab="restricted")
    a, info = train_kl(run.anatomy, run.model, layers, np.arange(1, len(ids)), init, s)
    b, _ = train_kl(run.anatomy, run.model, layers, np.arange(1, len(ids)), init, s)
    np.testing.assert_array_equal(a.A, b.A)
    assert not np.allclose(a.A, init.A) and info["vocab"] == "restricted"


def test_without_a_stored_lens(tmp_path_factory, tiny_model_dir):
    from explorer.models.export import export_model

    root = tmp_path_factory.mktemp("no-lens-root")
    export_model(str(tiny_model_dir), root)
    words = root / "w.csv"
    words.write_text("concept,en,zh\nwater,water,水\nking,king,王\n")
    r = invoke(root, "lens", "translate", "--from", "zh", "--to", "en", "--model", "tiny-llama", "--words", str(words),
               "--shots", "1", "--lens", "tuned")
    assert one_line_error(r) and "run `explorer lens train" in r.stderr
    r = invoke(root, "lens", "fidelity", "--model", "tiny-llama")
    assert one_line_error(r) and "run `explorer lens train" in r.stderr
    r = invoke(root, "trajectory", "king", "--model", "tiny-llama", "--lens", "tuned")
    assert one_line_error(r) and "run `explorer lens train" in r.stderr
    r = invoke(root, "lens", "repeat", "--model", "tiny-llama", "--lens", "sideways")
    assert one_line_error(r) and "unknown lens" in r.stderr


def test_bundled_corpus_is_five_languages_split_by_document():
    from explorer.models.states import read_corpus
    from explorer.services.lenses import bundled_lens_corpus, split_documents

    docs = read_corpus(bundled_lens_corpus())
    assert {lang for lang, _ in docs} == {"en", "fr", "de", "ru", "zh"}
    train, held = split_documents(docs)
    assert 0.08 < len(held) / len(docs) < 0.12
    with gzip.open(bundled_lens_corpus(), "rt", encoding="utf-8") as f:
        assert f.readline().strip() == "lang\ttext"


@pytest.mark.slow
def test_learned_lens_beats_the_logit_lens_on_gemma(gemma_root, tmp_path, monkeypatch):
    """A small training run (a few thousand states) is enough to put the linear lens below
    the logit lens at every layer before the last on held-out text; translate reads with it."""
    from explorer.services import lenses

    monkeypatch.setattr(lenses, "TRAIN_KL_TOKENS", 16)
    with gzip.open(lenses.bundled_lens_corpus(), "rt", encoding="utf-8") as f:
        rows = f.read().splitlines()[1:]
    small = tmp_path / "small.tsv"
    per_lang: dict[str, list[str]] = {}
    for line in rows:
        per_lang.setdefault(line.split("\t")[0], []).append(line)
    small.write_text("lang\ttext\n" + "\n".join(x for v in per_lang.values() for x in v[:10]) + "\n")
    r = invoke(gemma_root, "lens", "train", "--corpus", str(small), "--tokens", "2000", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["train_tokens"] >= 2000
    r = invoke(gemma_root, "lens", "fidelity", "--tokens", "32", "--json")
    assert r.exit_code == 0, r.stderr
    layers = json.loads(r.stdout)["layers"]
    assert len(layers) == 19 and layers[-1]["kl_logit"] == 0.0
    worse = [v["layer"] for v in layers[:-1] if not v["kl_tuned"] < v["kl_logit"]]
    assert worse == []
    r = invoke(gemma_root, "lens", "translate", "--from", "fr", "--to", "zh", "--lens", "tuned", "--limit", "2", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["layers"]) == 19 and out["config"]["lens"] == "tuned (linear)"
    (config,), = Catalog(gemma_root).query("SELECT config FROM lens_runs WHERE run_id = ?", [out["run_id"]])
    assert json.loads(config)["lens"] == "tuned (linear)"
