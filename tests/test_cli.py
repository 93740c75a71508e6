"""The CLI: exit codes, --json shapes, one-line errors (no tracebacks)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clitools import one_line_error, run, runner
from explorer.cli.main import app
from explorer.store.catalog import Catalog

README = Path(__file__).resolve().parent.parent / "README.md"


def test_query_json_shape(tiny_root):
    r = run(tiny_root, "query", "woman - man + king", "--model", "tiny-llama", "--expect", "queen", "--json", "-k", "5")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert [h["rank"] for h in out["results"]] == [1, 2, 3, 4, 5]
    assert {"token", "token_id", "score", "rank"} == set(out["results"][0])
    ids = {i["word"]: i["token_id"] for i in out["inputs"]}
    cat = Catalog(tiny_root)
    (m,) = cat.models()
    want = dict(cat.query("SELECT text, token_id FROM tokens WHERE raw IN ('▁woman', '▁man', '▁king')"))
    assert ids == {"woman": want[" woman"], "man": want[" man"], "king": want[" king"]}
    assert not set(ids.values()) & {h["token_id"] for h in out["results"]}  # inputs excluded
    for key in ("offset_cosine", "reverse_cosine"):
        assert -1.0 <= out["diagnostics"][key] <= 1.0
    assert set(out["expected"]) >= {"word", "rank_excluded", "rank_kept"}
    assert out["expected"]["rank_kept"] >= out["expected"]["rank_excluded"]


def test_keep_inputs_and_cosmul(tiny_root):
    kept = json.loads(run(tiny_root, "query", "king", "--model", "tiny-llama", "--keep-inputs", "--json").stdout)
    assert kept["results"][0]["token"] == " king" and kept["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    mul = run(tiny_root, "query", "woman - man + king", "--model", "tiny-llama", "--method", "3cosmul", "--json")
    assert mul.exit_code == 0 and json.loads(mul.stdout)["method"] == "3cosmul"


def test_human_output_has_tables(tiny_root):
    """Four tables under their headings, whatever the terminal width (Rich wraps titles and
    truncates cells, so only each heading's first word and the box corners are asserted)."""
    r = run(tiny_root, "query", "woman - man + king", "--model", "tiny-llama", "--expect", "queen")
    assert r.exit_code == 0, r.stderr
    first_words = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    for heading in ("Answers:", "Inputs:", "Expected", "Diagnostics"):
        assert heading in first_words, r.stdout
    assert r.stdout.count("┏") == 4, r.stdout


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["query", "woman - man + qqqq"], r"unknown word 'qqqq'"),
        (["query", ""], r"empty expression"),
        (["query", "king +"], r"ends with an operator"),
        (["query", "king queen"], r"expected \+ or -"),
        (["query", "king", "--model", "nope"], r"unknown model 'nope'"),
        (["query", "king", "--method", "cos"], r"unknown method"),
        (["query", "xyz"], r"not a single token.*--multi average"),
        (["query", "king", "--where", "no_such_column = 1"], r"bad --where"),
        (["neighbours"], r"exactly one of"),
        (["neighbours", "--id", "99999"], r"outside"),
    ],
)
def test_bad_input_is_one_line(tiny_root, args, pattern):
    if "--model" not in args and args[0] in ("query", "neighbours"):
        args = [*args, "--model", "tiny-llama"]
    line = one_line_error(run(tiny_root, *args))
    assert re.search(pattern, line), line


def test_multi_token_average_is_announced(tiny_root):
    r = run(tiny_root, "query", "xyz", "--model", "tiny-llama", "--multi", "average", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["inputs"][0]["token_id"] is None and len(out["inputs"][0]["token_ids"]) == 2
    assert "mean of their vectors" in out["notices"][0]


def test_neighbours_filters(tiny_root):
    r = run(tiny_root, "neighbours", "king", "--model", "tiny-llama", "--script", "cyrillic", "--json")
    assert r.exit_code == 0, r.stderr
    assert {h["token"] for h in json.loads(r.stdout)["results"]} == {" король", " королева"}
    r = run(tiny_root, "neighbours", "--id", "4", "--model", "tiny-llama", "--where", "leading_space", "-k", "30", "--json")
    hits = json.loads(r.stdout)["results"]
    assert hits and all(h["token"].startswith(" ") for h in hits) and 4 not in {h["token_id"] for h in hits}
    r = run(tiny_root, "neighbours", "--expr", "king - man", "--model", "tiny-llama", "--vectors", "output", "--json")
    assert json.loads(r.stdout)["vector_set"] == "tiny-llama/output"


def test_corrupt_index_detected_and_rebuilt(tiny_model_dir, tmp_path):
    from explorer.models.export import export_model

    root = tmp_path / "root"
    export_model(str(tiny_model_dir), root)
    index = next((root / "sets").rglob("input/index.faiss"))
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0x55
    index.write_bytes(bytes(data))
    line = one_line_error(run(root, "--backend", "faiss", "neighbours", "king", "--model", "tiny-llama"))
    assert "checksum" in line and "explorer index rebuild" in line
    assert run(root, "index", "verify").exit_code != 0
    assert run(root, "index", "rebuild", "--model", "tiny-llama").exit_code == 0
    assert run(root, "index", "verify").exit_code == 0
    assert run(root, "--backend", "faiss", "neighbours", "king", "--model", "tiny-llama").exit_code == 0


def test_models_listing(tiny_root):
    out = json.loads(run(tiny_root, "models", "--json").stdout)
    (m,) = out["models"]
    assert m["name"] == "tiny-llama" and [s["name"] for s in m["vector_sets"]] == ["input", "output"]


def _commands(group, prefix=""):
    import typer.main

    cmd = typer.main.get_command(group)
    for name, sub in getattr(cmd, "commands", {}).items():
        if getattr(sub, "hidden", False):
            continue
        yield f"{prefix}{name}", sub
        if hasattr(sub, "commands"):
            for n, s in sub.commands.items():
                yield f"{prefix}{name} {n}", s


def test_every_command_has_help_and_is_in_readme():
    readme = README.read_text()
    for name, cmd in _commands(app):
        assert (cmd.help or "").strip(), f"{name} has no help"
        assert f"explorer {name}" in readme, f"`explorer {name}` is not documented in README.md"
        r = runner.invoke(app, [*name.split(), "--help"])
        assert r.exit_code == 0 and "Usage" in r.stdout
