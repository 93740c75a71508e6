"""The lens, map-path, evaluate and directions: bad input is one line, found before any
weights load; help and output say what they mean; long waits say what they are doing."""

from __future__ import annotations

import json

import pytest
import typer

from clitools import one_line_error, run
from explorer.cli.main import app
from explorer.lens.words import bundled_count, load_words


@pytest.fixture
def no_weights(monkeypatch):
    """Loading a model's weights fails the test: errors must come before it."""
    from explorer.lens.runner import ModelRunner

    def refuse(self, row):
        raise AssertionError("the model's weights were loaded before the input was checked")

    monkeypatch.setattr(ModelRunner, "__init__", refuse)


def _words_files(tmp_path):
    d = tmp_path / "words"
    d.mkdir()
    files = {
        "binary": bytes(range(256)) * 8,
        "latin1": "concept,en,fr\ncafé,coffee,café\n".encode("latin-1"),
        "empty": b"",
        "header only": b"concept,en,fr\n",
        "wrong header": b"name,english,french\nx,y,z\n",
        "one language": b"concept,en\nwater,water\n",
        "truncated row": b"concept,en,fr\nwater,water\n",
    }
    out = {}
    for name, data in files.items():
        p = d / (name.replace(" ", "_") + ".csv")
        p.write_bytes(data)
        out[name] = p
    out["directory"] = d
    out["missing"] = d / "nope.csv"
    return out


@pytest.mark.parametrize("kind", ["binary", "latin1", "empty", "header only", "wrong header", "one language",
                                  "truncated row", "directory", "missing"])
def test_bad_word_lists_are_one_line_before_the_model_loads(tiny_root, tmp_path, no_weights, kind):
    path = _words_files(tmp_path)[kind]
    line = one_line_error(run(tiny_root, "lens", "translate", "--from", "fr", "--to", "en", "--model", "tiny-llama",
                              "--words", str(path)))
    assert "word list" in line or "header" in line or str(path) in line


@pytest.mark.parametrize("args, needle", [
    (["lens", "translate", "--strategy", "longest"], "unknown strategy"),
    (["lens", "prompt", " king queen", "--position", "999"], "position 999"),
    (["lens", "prompt", " king queen", "--position", "-999"], "position -999"),
    (["lens", "prompt", " king queen", "-k", "100000"], "-k 100000"),
    (["map-path", " king", "-L", "king", "-L", "queen", "--fit", "landmarks"], "at least 3 distinct"),
    (["map-path", " king", "-L", "king", "-L", "nosuchwordanywhere"], "nosuchwordanywhere"),
    (["map-path", " king", "--position", "50"], "position 50"),
    (["map-path", " king", "--fit", "sideways"], "--fit"),
    (["trajectory", " king queen", "--position", "999"], "position 999"),
    (["trajectory", " king queen", "-k", "100000"], "-k 100000"),
])
def test_ranges_are_checked_before_the_model_loads(tiny_root, no_weights, args, needle):
    line = one_line_error(run(tiny_root, *args, "--model", "tiny-llama"))
    assert needle in line


def test_token_count_matches_the_model_run(tiny_root):
    """The early position check counts tokens as the run does (tokenizer.json alone)."""
    from explorer.services.engine import Engine
    from explorer.lens.runner import ModelRunner, token_count

    m = Engine(tiny_root).model("tiny-llama", auto_export=False)
    runner = ModelRunner(m)
    for text in (" king", " king queen man", "Paris France ing", "xyz 花 水"):
        assert token_count(m, text) == len(runner.run(text).token_ids)
    # the last valid positions pass, and the run agrees
    res = run(tiny_root, "lens", "prompt", " king queen", "--model", "tiny-llama", "--position", "-1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["position"] == token_count(m, " king queen") - 1


def _param_help(path: list[str], name: str) -> str:
    cmd = typer.main.get_command(app)
    for part in path:
        cmd = cmd.commands[part]
    return next(p.help for p in cmd.params if p.name == name)


def test_help_texts_say_what_they_mean():
    assert f"bundled {bundled_count()} concepts" in _param_help(["lens", "translate"], "words")
    assert bundled_count() == len(load_words()) > 100
    prompt_json = _param_help(["lens", "prompt"], "as_json")
    assert "lens_top" in prompt_json and "accuracy" not in prompt_json
    assert "the 'ray' extra" in _param_help(["experiment", "run"], "ray")  # was "Needs explorer."


def test_lens_output_is_readable_text_and_summary_is_rounded(tiny_root, tmp_path):
    words = tmp_path / "w.csv"
    words.write_text("concept,en,zh,ru\nwater,water,水,королева\nflower,fire,花,король\nking,king,王,королева\n")
    res = run(tiny_root, "lens", "translate", "--from", "zh", "--to", "en", "--model", "tiny-llama",
              "--words", str(words), "--shots", "1")
    assert res.exit_code == 0, res.output
    assert "{'" not in res.stdout and "'from'" not in res.stdout  # no Python dict in the header
    assert "shots" in res.stdout and "entries" in res.stdout
    assert "weights" in res.stderr  # a stage line while the model loads
    res = run(tiny_root, "sql", "SELECT * FROM lens_summary ORDER BY run_id DESC LIMIT 1", "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    row = out[0] if isinstance(out, list) else out["rows"][0]
    for key in ("accuracy", "english_peak", "p_target_last", "p_english_last"):
        value = row[key]
        assert value == round(value, 4)
    from explorer.store.catalog import Catalog

    raw = Catalog(tiny_root).query("SELECT max_by(p_target, layer) FROM lens_layers WHERE run_id = ?", [row["run_id"]])[0][0]
    assert row["p_target_last"] == round(raw, 4)


@pytest.mark.parametrize("data", [bytes(range(256)), b"", b"concept,a\nx,y\n", "concept,a,b\nx,é,z\n".encode("latin-1")])
def test_directions_bad_pairs_files(tiny_root, tmp_path, data):
    p = tmp_path / "pairs.csv"
    p.write_bytes(data)
    line = one_line_error(run(tiny_root, "directions", "--model", "tiny-llama", "--pairs", str(p)))
    assert "pairs file" in line


def test_directions_variant_is_checked(tiny_root):
    assert "unknown variant 'bogus'" in one_line_error(run(tiny_root, "directions", "--model", "tiny-llama",
                                                           "--variant", "bogus"))


def test_evaluate_says_what_it_is_doing(tiny_root, tmp_path):
    q = tmp_path / "q.txt"
    q.write_text(": family\nking queen man woman\nboy girl man woman\n")
    res = run(tiny_root, "evaluate", "tiny-llama", "--analogies", str(q), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["analogies"]["questions"] == 2
    assert "scoring" in res.stderr and "q.txt" in res.stderr


def test_the_trajectory_service_gives_the_cli_answer_with_a_given_runner(tiny_root):
    """The TUI passes its loaded models (runner_for); the answer is the CLI's, and an
    empty prompt is refused before any runner is asked for."""
    import json

    from explorer.errors import ExplorerError
    from explorer.jsonsafe import clean
    from explorer.services.engine import Engine
    from explorer.services.lens import ModelRunner, TrajectoryOptions, trajectory

    engine, asked = Engine(tiny_root), []

    def runner_for(row):
        asked.append(row.name)
        return ModelRunner(row)

    options = TrajectoryOptions(" king queen man", 1, "tiny-llama", 3, export=False)
    got = json.loads(json.dumps(clean(trajectory(engine, options, runner_for=runner_for).to_dict())))
    res = run(tiny_root, "trajectory", " king queen man", "-p", "1", "-k", "3", "--model", "tiny-llama", "--json")
    assert res.exit_code == 0, res.output
    assert asked == ["tiny-llama"] and got == json.loads(res.stdout) and len(got["layers"]) == 3
    with pytest.raises(ExplorerError, match="empty text"):
        trajectory(engine, TrajectoryOptions("", model="tiny-llama", export=False), runner_for=runner_for)
    assert asked == ["tiny-llama"]
