"""Logit and learned lens side by side: `lens translate --lens both` (JSON, terminal, the
paper's figure twice) and the `lens` column of lens_summary, on the tiny model."""

from __future__ import annotations

import json
import struct

from typer.testing import CliRunner

from clitools import one_line_error
from explorer.cli.main import app
from explorer.store.catalog import Catalog

runner = CliRunner()
WORDS_CSV = "concept,en,zh\nwater,water,水\nflower,fire,花\nking,king,王\n"


def invoke(root, *args):
    return runner.invoke(app, ["--root", str(root), *args])


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _translate(root, words, *more):
    return invoke(root, "lens", "translate", "--from", "zh", "--to", "en", "--model", "tiny-llama",
                  "--words", str(words), "--shots", "1", *more)


def test_both_lenses_json_png_and_summary(tiny_lens_root, tmp_path):
    words = tmp_path / "w.csv"
    words.write_text(WORDS_CSV)
    single, pair = tmp_path / "one.png", tmp_path / "two.png"
    r = _translate(tiny_lens_root, words, "--png", str(single))
    assert r.exit_code == 0, r.stderr
    r = _translate(tiny_lens_root, words, "--lens", "both", "--png", str(pair), "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert sorted(out) == ["logit", "tuned"]
    assert out["logit"]["config"]["lens"] == "logit" and out["tuned"]["config"]["lens"] == "tuned (linear)"
    for res in out.values():
        assert [v["layer"] for v in res["layers"]] == [0, 1, 2]
    assert out["logit"]["entries"] == out["tuned"]["entries"] > 0
    # the last layer is the model's own distribution under both lenses; earlier layers differ
    assert out["tuned"]["layers"][-1]["p_target"] == out["logit"]["layers"][-1]["p_target"]
    assert out["tuned"]["layers"][0]["entropy"] != out["logit"]["layers"][0]["entropy"]
    (w1, h1), (w2, h2) = png_size(single), png_size(pair)
    assert h2 == h1 and w2 == 2 * w1  # two panels of the single figure's size, side by side
    rows = Catalog(tiny_lens_root).query(
        "SELECT run_id, lens FROM lens_summary WHERE run_id IN (?, ?) ORDER BY run_id",
        [out["logit"]["run_id"], out["tuned"]["run_id"]])
    assert [lens for _, lens in rows] == ["logit", "tuned (linear)"]
    before = {row[0] for row in Catalog(tiny_lens_root).query("SELECT run_id FROM lens_runs")}
    r = _translate(tiny_lens_root, words, "--lens", "both")  # the terminal shows both runs
    assert r.exit_code == 0, r.stderr
    new = Catalog(tiny_lens_root).query("SELECT run_id, lens FROM lens_summary ORDER BY run_id")
    added = [(run_id, lens) for run_id, lens in new if run_id not in before]
    assert [lens for _, lens in added] == ["logit", "tuned (linear)"]
    words_out = r.stdout.split()
    assert all(str(run_id) in words_out for run_id, _ in added) and "tuned" in r.stdout


def test_summary_reads_old_runs_as_logit(tiny_lens_root, tmp_path):
    words = tmp_path / "w.csv"
    words.write_text(WORDS_CSV)
    r = _translate(tiny_lens_root, words, "--lens", "tuned", "--json")
    assert r.exit_code == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    cat = Catalog(tiny_lens_root)
    assert cat.query("SELECT lens FROM lens_summary WHERE run_id = ?", [run_id]) == [("tuned (linear)",)]
    with cat.write() as con:  # as a run recorded before learned lenses: no "lens" in its config
        con.execute("UPDATE lens_runs SET config = json_remove(config, '$.lens') WHERE run_id = ?", [run_id])
    assert cat.query("SELECT lens FROM lens_summary WHERE run_id = ?", [run_id]) == [("logit",)]
    cols = [c for c, *_ in cat.query("DESCRIBE lens_summary")]
    assert cols[:3] == ["run_id", "model", "task"] and cols[-2:] == ["created_at", "lens"]


def test_both_without_a_stored_lens_is_one_line(tiny_root, tmp_path):
    words = tmp_path / "w.csv"
    words.write_text(WORDS_CSV)
    r = _translate(tiny_root, words, "--lens", "both", "--png", str(tmp_path / "x.png"))
    assert one_line_error(r) and "run `explorer lens train" in r.stderr
    assert not (tmp_path / "x.png").exists()
