"""Projections (PCA, custom axes, sampling), pictures (PNG, terminal) and hidden-state paths."""

from __future__ import annotations

import json
import sys
import unicodedata
import warnings

import numpy as np
import pytest

from clitools import one_line_error, run
from explorer.errors import ExplorerError
from explorer.viz import project as P
from explorer.viz.project import ScatterPoint
from explorer.viz.scatter import save_scatter_png, terminal_scatter


def assert_same_up_to_sign(got: np.ndarray, want: np.ndarray) -> None:
    for j in range(want.shape[1]):
        sign = 1.0 if np.dot(got[:, j], want[:, j]) >= 0 else -1.0
        np.testing.assert_allclose(sign * got[:, j], want[:, j], atol=1e-9)


# -- pure numpy -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 40), (50, 8), (400, 6)])  # wide, SVD path, Gram path
def test_pca_matches_numpy_svd(shape):
    x = np.random.default_rng(3).normal(size=shape) @ np.diag(np.linspace(3, 0.5, shape[1]))
    fit = P.pca(x, 2)
    xc = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    assert_same_up_to_sign(fit.coords, u[:, :2] * s[:2])
    np.testing.assert_allclose(fit.explained_ratio, (s[:2] ** 2) / np.sum(s**2), rtol=1e-9)
    np.testing.assert_allclose(fit.transform(x), fit.coords, atol=1e-9)
    for c in fit.components:  # deterministic sign: largest loading positive
        assert c[np.argmax(np.abs(c))] > 0


def test_pca_degenerate_inputs():
    one = P.pca(np.ones((1, 4)), 2)
    assert one.coords.shape == (1, 2) and not one.coords.any() and one.explained_ratio == (0.0, 0.0)
    two = P.pca(np.array([[0.0, 0.0], [2.0, 0.0]]), 2)
    assert two.explained_ratio[0] == pytest.approx(1.0) and two.explained_ratio[1] == pytest.approx(0.0)


def test_custom_axes_are_dot_products():
    rng = np.random.default_rng(0)
    x, dx, dy = rng.normal(size=(30, 10)), rng.normal(size=10), rng.normal(size=10)
    got = P.axes_coords(x, dx, dy)
    np.testing.assert_allclose(got[:, 0], x @ dx / np.linalg.norm(dx), rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], x @ dy / np.linalg.norm(dy), rtol=1e-12)
    cos = P.axes_coords(x, dx, dy, unit_points=True)
    np.testing.assert_allclose(cos[:, 0], (x @ dx) / (np.linalg.norm(x, axis=1) * np.linalg.norm(dx)), rtol=1e-12)
    assert P.axes_cosine(dx, dy) == pytest.approx(dx @ dy / (np.linalg.norm(dx) * np.linalg.norm(dy)))
    with pytest.raises(ExplorerError, match="zero vector"):
        P.axes_coords(x, np.zeros(10), dy)


def test_sampling_is_stated_and_keeps_pinned_rows():
    s = P.sample(100, 10, seed=5, keep=[3, 97])
    assert (s.selected, s.shown, s.sampled) == (100, 10, True)
    assert {3, 97} <= set(s.indices.tolist()) and list(s.indices) == sorted(s.indices)
    assert np.array_equal(s.indices, P.sample(100, 10, seed=5, keep=[3, 97]).indices)
    assert "100 points selected" in s.note() and "seed 5" in s.note()
    assert s.to_dict() == {"sampled": True, "selected": 100, "shown": 10, "limit": 10, "seed": 5}
    full = P.sample(8, 10)
    assert not full.sampled and full.note() is None and full.shown == 8


def test_umap_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError
    with pytest.raises(ExplorerError, match=r"explorer\[umap\]"):
        P.umap_coords(np.zeros((10, 3)))


# -- pictures -----------------------------------------------------------------------------


POINTS = [ScatterPoint("king", 1, 0.0, 0.0, "word"), ScatterPoint("花", 2, 1.0, 1.0, "word"), ScatterPoint("水", 3, 0.5, -1.0, "expr"),
          ScatterPoint("x", 4, -1.0, 0.3, "where"), ScatterPoint("L0", None, 0.2, 0.2, "path")]


def _display_width(row: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in row)


def test_terminal_scatter_keeps_its_frame_with_wide_labels():
    out = terminal_scatter(POINTS, axis_titles=("PC1", "PC2"), width=40, height=10, zero_lines=True)
    rows = [r for r in out.splitlines() if r.startswith("│")]
    assert len(rows) == 10 and {_display_width(r) for r in rows} == {42}
    assert "king" in out and "花" in out and "PC1" in out and "PC2" in out
    assert terminal_scatter([], axis_titles=("a", "b")) == "(no points)"


def test_png_is_written_without_glyph_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "Glyph ... missing" warning would fail the test
        info = save_scatter_png(POINTS, tmp_path / "p.png", title="t", axis_titles=("x", "y"), notes=("a note",))
    data = (tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and info.bytes == len(data) > 1000
    assert info.labelled == len(POINTS)
    if not any("CJK" in f or "Hei" in f for f in info.fonts):
        assert info.undrawable_labels == 2 and "CJK font" in info.describe()


# -- the map command on the tiny model ------------------------------------------------------


def _rows(root, words, vectors="input"):
    from explorer.services.engine import Engine

    engine = Engine(root)
    with engine.catalog.session():
        s = engine.open_set("tiny-llama", vectors)
        ids = [engine.resolve(s, w).token_ids[0] for w in words]
    out = s.vectors.rows(ids).astype(np.float64)
    return ids, out


def test_map_pca_matches_numpy(tiny_root, tmp_path):
    words = ["king", "queen", "man", "woman", "boy", "girl", "apple"]
    r = run(tiny_root, "map", *words, "--model", "tiny-llama", "--json", "--png", str(tmp_path / "m.png"))
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    ids, x = _rows(tiny_root, words)
    assert [p["token_id"] for p in out["points"]] == ids and out["sampled"] is False and out["shown"] == 7
    xc = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    got = np.array([[p["x"], p["y"]] for p in out["points"]])
    assert_same_up_to_sign(got, u[:, :2] * s[:2])
    np.testing.assert_allclose(out["explained_variance_ratio"], s[:2] ** 2 / np.sum(s**2), rtol=1e-6)
    assert out["png"]["bytes"] > 1000 and (tmp_path / "m.png").stat().st_size == out["png"]["bytes"]


def test_map_axes_are_dot_products_and_match_offset_cosine(tiny_root):
    r = run(tiny_root, "map", "boy", "girl", "--model", "tiny-llama", "--x", "woman - man", "--y", "queen - king", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["method"] == "axes"
    words = [p["label"] for p in out["points"]]
    assert set(words) == {"woman", "man", "queen", "king", "boy", "girl"}
    ids, x = _rows(tiny_root, words)
    (w, m, q, k) = (x[words.index(n)] for n in ("woman", "man", "queen", "king"))
    dx, dy = w - m, q - k
    got = np.array([[p["x"], p["y"]] for p in out["points"]])
    np.testing.assert_allclose(got[:, 0], x @ dx / np.linalg.norm(dx), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[:, 1], x @ dy / np.linalg.norm(dy), rtol=1e-5, atol=1e-7)
    q = json.loads(run(tiny_root, "query", "woman - man + king", "--model", "tiny-llama", "--expect", "queen",
                       "--json").stdout)
    assert out["axes"]["cosine"] == pytest.approx(q["diagnostics"]["offset_cosine"], abs=1e-5)
    unit = json.loads(run(tiny_root, "map", "--model", "tiny-llama", "--x", "woman - man", "--y", "queen - king",
                          "--unit", "--json").stdout)
    assert all(-1 - 1e-6 <= p["x"] <= 1 + 1e-6 for p in unit["points"]) and unit["axes"]["unit_points"]


def test_map_sampling_is_stated(tiny_root):
    r = run(tiny_root, "map", "king", "--model", "tiny-llama", "--where", "true", "--limit", "10", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["sampled"], out["selected"], out["shown"]) == (True, 31, 10) and len(out["points"]) == 10
    assert "king" in [p["label"] for p in out["points"]]  # a named word is never sampled away
    assert any("random sample of 10" in n for n in out["notes"])
    human = run(tiny_root, "map", "--model", "tiny-llama", "--where", "true", "--limit", "10")
    assert "random sample of 10" in " ".join(human.stdout.split()) and "┌" in human.stdout


def test_map_expr_and_terminal_output(tiny_root):
    r = run(tiny_root, "map", "--model", "tiny-llama", "--expr", "woman - man + king", "-k", "5", "--vectors", "output")
    assert r.exit_code == 0, r.stderr
    assert "tiny-llama/output: pca, 8 points" in r.stdout and "Named words" in r.stdout and "PC1" in r.stdout


@pytest.mark.parametrize(
    "args, pattern",
    [
        ([], r"nothing to draw"),
        (["king", "--method", "tsne"], r"unknown method"),
        (["king", "--x", "woman - man"], r"needs both --x and --y"),
        (["king", "--method", "pca", "--x", "a", "--y", "b"], r"do not combine"),
        (["qqqq"], r"unknown word 'qqqq'"),
        (["king", "--where", "no_such_column"], r"bad --where"),
        (["king", "--png", "/no/such/dir/x.png"], r"cannot write figure"),
    ],
)
def test_map_bad_input_is_one_line(tiny_root, args, pattern):
    import re

    line = one_line_error(run(tiny_root, "map", *args, "--model", "tiny-llama"))
    assert re.search(pattern, line), line


# -- hidden-state path ------------------------------------------------------------------------


def test_map_path_on_tiny_model(tiny_root, tmp_path):
    import torch

    from explorer.lens.runner import ModelRunner
    from explorer.services.engine import Engine

    r = run(tiny_root, "map-path", " king queen man", "--model", "tiny-llama", "-L", "king", "-L", "queen",
            "--png", str(tmp_path / "p.png"), "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert [v["layer"] for v in out["layers"]] == [0, 1, 2] and out["token"] == " man"
    assert [m["word"] for m in out["landmarks"]] == ["king", "queen"] and out["png"]["bytes"] > 1000
    # cosines: final_norm(h_L) against the unembedding rows, computed here independently
    engine = Engine(tiny_root)
    mr = ModelRunner(engine.model("tiny-llama"))
    states = mr.run(" king queen man")
    with torch.inference_mode():
        normed = mr.anatomy.final_norm(torch.from_numpy(states.layers[:, -1, :])).numpy()
    _, rows = _rows(tiny_root, ["king", "queen"], "output")
    want = (normed / np.linalg.norm(normed, axis=1, keepdims=True)) @ (rows / np.linalg.norm(rows, axis=1, keepdims=True)).T
    got = np.array([[v["cosines"]["king"], v["cosines"]["queen"]] for v in out["layers"]])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert 0 < sum(out["explained_variance_ratio"]) <= 1 + 1e-9
    auto = json.loads(run(tiny_root, "map-path", " king queen man", "--model", "tiny-llama", "--json").stdout)
    assert auto["landmarks_auto"] and auto["landmarks"][0]["token_ids"] == [auto["layers"][-1]["lens_top_id"]]
    line = one_line_error(run(tiny_root, "map-path", " king", "--model", "tiny-llama", "-L", "king", "--fit", "landmarks"))
    assert "at least 3 distinct landmarks" in line


@pytest.mark.slow
def test_map_path_french_to_chinese_on_gemma(gemma_root, tmp_path):
    prompt = 'Français: "fleur" - 中文: "花"\nFrançais: "eau" - 中文: "'
    r = run(gemma_root, "map-path", prompt, "-L", "water", "-L", "水", "--png", str(tmp_path / "g.png"), "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["layers"]) == 19 and out["png"]["bytes"] > 1000
    assert [m["token_ids"] for m in out["landmarks"]][0] != [m["token_ids"] for m in out["landmarks"]][1]
    last = out["layers"][-1]
    assert last["lens_top"] == "水"  # the model answers in Chinese at the last layer


# -- fonts and warnings ----------------------------------------------------------------------


def _stix_only_glyph():
    """(a character DejaVu Sans lacks, the STIXGeneral file that has it): matplotlib ships both."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    dejavu = set(FT2Font(font_manager.findfont("DejaVu Sans")).get_charmap())
    stix = next(f.fname for f in font_manager.fontManager.ttflist if f.name == "STIXGeneral" and f.style == "normal"
                and f.weight in (400, "normal", "regular"))
    extra = sorted(c for c in FT2Font(stix).get_charmap() if c not in dejavu and chr(c).isprintable()
                   and unicodedata.category(chr(c)) in ("Sm", "So", "Lu", "Ll"))
    return chr(extra[0]), stix


def test_labels_get_a_font_that_has_their_glyphs():
    """A character DejaVu Sans lacks is drawn with an installed font that has it (matplotlib's
    STIX fonts stand in for a CJK font here); the Last Resort font never counts."""
    from explorer.viz import fonts

    ch, _ = _stix_only_glyph()
    choice = fonts.choose([f"a{ch}", "plain"])
    assert choice.families[0] == "DejaVu Sans" and len(choice.families) >= 2 and not choice.missing
    assert all("Last Resort" not in f for f in choice.families)
    assert fonts.choose(["plain"]).families == ("DejaVu Sans",)


def test_fonts_installed_after_matplotlibs_cache_are_found(tmp_path, monkeypatch):
    import shutil

    from matplotlib import font_manager

    from explorer.viz import fonts

    ch, stix = _stix_only_glyph()
    new = tmp_path / "NewlyInstalled.ttf"
    shutil.copy(stix, new)
    cached = [f for f in font_manager.fontManager.ttflist if not f.name.startswith("STIX")]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", cached)  # the cache predates the install
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [str(new)])
    monkeypatch.setattr(fonts, "_scanned", [])
    fonts._installed.cache_clear()
    try:
        choice = fonts.choose([ch])
    finally:
        fonts._installed.cache_clear()
    assert "STIXGeneral" in choice.families and not choice.missing


def test_missing_cjk_font_is_said_once_on_stderr(tmp_path, monkeypatch, capsys):
    from explorer.viz import fonts

    only_dejavu = tuple(nf for nf in fonts._installed() if nf[0] == "DejaVu Sans")
    monkeypatch.setattr(fonts, "_installed", lambda: only_dejavu)  # as on a machine without CJK fonts
    monkeypatch.setattr(fonts, "_scanned", [True])  # ... and none installed since matplotlib's cache
    monkeypatch.setattr(fonts, "_warned", set())
    for n in range(2):
        info = save_scatter_png(POINTS, tmp_path / f"p{n}.png", title="t", axis_titles=("x", "y"))
        assert info.undrawable_labels == 2 and info.fonts == ("DejaVu Sans",)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"warning: {fonts.NO_CJK_FONT}"]


def test_umap_warnings_stay_inside_the_call():
    pytest.importorskip("umap")
    from explorer.viz.project import umap_coords

    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coords = umap_coords(np.random.default_rng(0).standard_normal((30, 8)), seed=1)
    assert coords.shape == (30, 2)
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]
    assert list(warnings.filters) == before  # nothing silenced globally
