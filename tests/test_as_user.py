"""The installed program as its users run it: the ``explorer`` console script in a
subprocess, from a directory that is not the checkout, with no ``--root``, with
``EXPLORER_HOME`` (a tiny-model data root under a long path) and without it (the
checkout's ``indexes/``, read-only commands only), at 40 and 200 columns; the TUI on a
pseudo-terminal; and bad input of every class: one line on stderr, the store unchanged."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import typer.main

from explorer.cli.main import app
from usertools import (
    EXPLORER, LONG, REPO, explorer, ok, one_line_error, run_in_pty, store_state, subprocess_sql, user_env, words,
)

WIDTHS = (40, 200)
CTRL_Q = b"\x11"  # the TUI's quit key


def command_paths() -> list[tuple[str, ...]]:
    """Every command and sub-command of the CLI, e.g. ('query',), ('index', 'verify')."""
    def walk(cmd, prefix: tuple[str, ...]):  # Typer may vendor its own Click: no isinstance
        for name, sub in sorted(cmd.commands.items()):
            if getattr(sub, "hidden", False):  # an alias (neighbors)
                continue
            if hasattr(sub, "commands"):
                yield from walk(sub, (*prefix, name))
            else:
                yield (*prefix, name)

    return list(walk(typer.main.get_command(app), ()))


# --- a person's files and data root -------------------------------------------------------

@dataclass
class User:
    home: Path  # EXPLORER_HOME: a copy of the tiny-model root
    cwd: Path  # where the commands run: neither the checkout nor the data root
    files: Path  # the person's own input files
    log: list[str] = field(default_factory=list)

    def __call__(self, *args: str, columns: int = 200, timeout: float = 300):
        return explorer(*args, cwd=self.cwd, home=self.home, columns=columns, timeout=timeout)

    def f(self, name: str) -> str:
        return str(self.files / name)


def write_user_files(d: Path, tiny_model_dir: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "words.csv").write_text("concept,en,ru\nking,king,король\nqueen,queen,королева\nwater,water,水\n", encoding="utf-8")
    (d / "pairs.csv").write_text("concept,a,b\ngender,man,woman\ngender,king,queen\ngender,boy,girl\n"
                                 "gender,prince,princess\ncapital,France,Paris\ncapital,Germany,Berlin\n", encoding="utf-8")
    (d / "analogies.txt").write_text(": family\nman woman king queen\nboy girl prince princess\n"
                                     ": capital\nFrance Paris Germany Berlin\n", encoding="utf-8")
    (d / "wordpairs.tsv").write_text("king\tqueen\t8\nman\twoman\t7\napple\tbanana\t6\nfire\twater\t2\n", encoding="utf-8")
    (d / "corpus.txt").write_text("the king and the queen\nthe man and the woman\n", encoding="utf-8")
    words = {"en": ["king", "queen", "man", "woman", "boy", "girl", "prince", "princess", "apple", "fire", "water"],
             "ru": ["король", "королева", "king", "queen", "water", "fire", "boy", "girl"]}
    (d / "lens.tsv").write_text("lang\ttext\n" + "".join(  # 10 documents of 16 words a language, for lens train
        f"{lang}\t{' '.join(ws[(i + j) % len(ws)] for j in range(16))}\n" for lang, ws in words.items() for i in range(10)),
        encoding="utf-8")
    shutil.copytree(tiny_model_dir, d / "tiny-two")  # a second local model to export
    write_junk(d)
    return d


def write_junk(d: Path) -> None:
    """Malformed files of every kind a person may hand the program by mistake."""
    import numpy as np

    noise = np.random.default_rng(0).bytes(4096)
    (d / "junk.bin").write_bytes(noise)
    (d / "junk.gguf").write_bytes(noise)
    (d / "truncated.gguf").write_bytes(b"GGUF\x03\x00\x00\x00\x10")
    (d / "empty.txt").write_bytes(b"")
    (d / "nul.csv").write_bytes(b"concept,en,ru\nking,ki\x00ng,\xd0\xba\n")
    (d / "nan.txt").write_text("2 3\nking nan 1 2\nqueen 1 2 3\n", encoding="utf-8")
    (d / "header.txt").write_text("3 x\nking 1 2\n", encoding="utf-8")
    (d / "short.txt").write_text("3 2\nking 1 2\nqueen 1\n", encoding="utf-8")
    (d / "huge.txt").write_text("99999999999 99999999999\nking 1 2\n", encoding="utf-8")
    (d / "huge.bin").write_bytes(b"1000000000 1000000\nking " + noise[:64])


@pytest.fixture(scope="module")
def user_files(tmp_path_factory, tiny_model_dir) -> Path:
    return write_user_files(tmp_path_factory.mktemp("user") / LONG / "my files", tiny_model_dir)


def copy_root(tiny_root: Path, dest: Path) -> Path:
    shutil.copytree(tiny_root, dest)
    return dest


@pytest.fixture
def user(tmp_path, tiny_root, user_files) -> User:
    base = tmp_path / LONG
    cwd = base / "work"
    cwd.mkdir(parents=True)
    return User(copy_root(tiny_root, base / "home"), cwd, user_files)


# --- one real call per command -------------------------------------------------------------

@dataclass
class Call:
    args: Callable[[User], list[str]]
    marker: str  # a short token the human output shows at any width (stdout or stderr)
    check: Callable[[Any, User], bool] | None = None  # on the --json output
    setup: Callable[[User], list[list[str]]] = lambda u: []
    json_flag: tuple[str, ...] = ("--json",)
    after: Callable[[User], bool] | None = None  # more checks on the data root afterwards


def _query(out, u) -> bool:
    return len(out["results"]) == 10 and out["expected"]["word"] == "queen" and \
        not {"woman", "man", "king"} & {h["token"].strip() for h in out["results"]}


def _export_after(u) -> bool:
    names = [m["name"] for m in json.loads(ok(u("models", "--json")).stdout)["models"]]
    return names.count("tiny-two") == 1 and ok(u("query", "king", "--model", "tiny-two", "--json")).returncode == 0


def _verify_ok(u) -> bool:
    return "ok" in words(ok(u("index", "verify")).stdout)


EXPORT_STATES = ["export-states", "tiny-llama", "--corpus", "{corpus.txt}", "--name", "docs"]
VECTORS_EXPORT = ["vectors", "export", "--model", "tiny-llama", "--format", "word2vec", "--output"]
LENS_TRAIN = ["lens", "train", "--model", "tiny-llama", "--corpus", "{lens.tsv}", "--tokens", "100"]
SWEEP = ["experiment", "run", "cooccurrence", "--set", "corpus=glitters"]


def _args(template: list[str]) -> Callable[[User], list[str]]:
    """Arguments with '{file}' naming one of the person's files (absolute, long path)."""
    return lambda u: [re.sub(r"\{([^{}]+)\}", lambda m: u.f(m.group(1)), a) for a in template]


def _lens_layers(out, u) -> bool:
    return [v["layer"] for v in out["layers"]] == [0, 1, 2]


CALLS: dict[tuple[str, ...], Call | None] = {
    ("query",): Call(_args(["query", "woman - man + king", "--model", "tiny-llama", "--expect", "queen"]),
                     "Answers:", _query),
    ("neighbours",): Call(_args(["neighbours", "king", "--model", "tiny-llama"]), "Neighbours:",
                          lambda o, u: len(o["results"]) == 10 and " king" not in [h["token"] for h in o["results"]]),
    ("export",): Call(_args(["export", "{tiny-two}"]), "tiny-two:",
                      lambda o, u: (o["model"], o["vocab_rows"], o["d_model"]) == ("tiny-two", 31, 16),
                      after=_export_after),
    ("models",): Call(_args(["models"]), "tiny-llama",
                      lambda o, u: o["root"] == str(u.home) and "tiny-llama" in [m["name"] for m in o["models"]]),
    ("export-states",): Call(_args(EXPORT_STATES), "tiny-llama/docs:",
                             lambda o, u: (o["documents"], o["layers"], o["dim"]) == (2, 3, 16)),
    ("states-index",): Call(_args(["states-index", "--model", "tiny-llama", "--corpus", "docs", "--layer", "1"]), "sq8",
                            lambda o, u: [(i["layer"], i["kind"]) for i in o["indexes"]] == [(1, "sq8")],
                            setup=lambda u: [_args(EXPORT_STATES)(u)]),
    ("states-stats",): Call(_args(["states-stats", "--model", "tiny-llama", "--corpus", "docs", "--pairs", "500"]),
                            "tiny-llama/docs:", lambda o, u: [v["layer"] for v in o["layers"]] == [0, 1, 2],
                            setup=lambda u: [_args(EXPORT_STATES)(u)]),
    ("trajectory",): Call(_args(["trajectory", "king queen", "--model", "tiny-llama", "-k", "3"]), "tiny-llama:",
                          _lens_layers),
    ("sql",): Call(_args(["sql", "SELECT count(*) AS n FROM tokens WHERE model_id = 1"]), "31",
                   lambda o, u: o == [{"n": 31}], json_flag=("--format", "json")),
    ("schema",): Call(_args(["schema"]), "tokens", lambda o, u: "tokens" in json.dumps(o)),
    ("tui",): None,  # on a pseudo-terminal: test_tui_starts_and_quits
    ("map",): Call(_args(["map", "king", "queen", "man", "woman", "--model", "tiny-llama"]), "tiny-llama/input:",
                   lambda o, u: sorted(p["label"] for p in o["points"]) == ["king", "man", "queen", "woman"]),
    ("map-path",): Call(_args(["map-path", " king queen man", "--model", "tiny-llama", "-L", "king", "-L", "queen",
                               "-L", "man"]), "tiny-llama:", lambda o, u: len(o["layers"]) == 3),
    ("compare",): Call(_args(["compare", "woman - man + king", "--expect", "queen", "-m", "tiny-llama"]), "tiny-llama",
                       lambda o, u: o["models"] == ["tiny-llama"] and len(o["results"]) == 1),
    ("directions",): Call(_args(["directions", "--model", "tiny-llama", "--pairs", "{pairs.csv}"]), "Concept",
                          lambda o, u: {c["name"] for c in o["concepts"]} >= {"gender", "capital"}),
    ("evaluate",): Call(_args(["evaluate", "tiny-llama", "--analogies", "{analogies.txt}", "--pairs", "{wordpairs.tsv}"]),
                        "Analogies:", lambda o, u: o["analogies"]["questions"] == 3),
    ("index", "verify"): Call(_args(["index", "verify"]), "ok"),
    ("index", "rebuild"): Call(_args(["index", "rebuild", "--model", "tiny-llama"]), "rebuilt", after=_verify_ok),
    ("lens", "translate"): Call(_args(["lens", "translate", "--from", "en", "--to", "ru", "--model", "tiny-llama",
                                       "--words", "{words.csv}", "--shots", "1"]), "tiny-llama:", _lens_layers),
    ("lens", "repeat"): Call(_args(["lens", "repeat", "--lang", "en", "--model", "tiny-llama", "--words", "{words.csv}",
                                    "--shots", "1"]), "tiny-llama:", _lens_layers),
    ("lens", "cloze"): Call(_args(["lens", "cloze", "--lang", "en", "--model", "tiny-llama", "--limit", "2"]),
                            "tiny-llama:", _lens_layers),
    ("lens", "prompt"): Call(_args(["lens", "prompt", "king queen", "--model", "tiny-llama"]), "tiny-llama:",
                             _lens_layers),
    ("lens", "train"): Call(_args(LENS_TRAIN), "tiny-llama:",
                            lambda o, u: o["kind"] == "linear" and [v["layer"] for v in o["layers"]] == [0, 1, 2]
                            and all(v["kl_tuned"] >= 0 for v in o["layers"])),
    ("lens", "fidelity"): Call(_args(["lens", "fidelity", "--model", "tiny-llama", "--tokens", "8"]), "tiny-llama:",
                               lambda o, u: [v["layer"] for v in o["layers"]] == [0, 1, 2],
                               setup=lambda u: [_args(LENS_TRAIN)(u)]),
    ("vectors", "export"): Call(lambda u: VECTORS_EXPORT + [str(u.cwd / "v.txt")], "tiny-llama/input:",
                                after=lambda u: (u.cwd / "v.txt").read_text(encoding="utf-8").split("\n")[0] == "31 16"),
    ("vectors", "import"): Call(lambda u: ["vectors", "import", str(u.cwd / "v.txt"), "--name", "back"], "back:",
                                lambda o, u: (o["model"], o["rows"], o["dim"]) == ("back", 31, 16),
                                setup=lambda u: [VECTORS_EXPORT + [str(u.cwd / "v.txt")]]),
    ("experiment", "list"): Call(_args(["experiment", "list"]), "counting",
                                 lambda o, u: {e["name"] for e in o} >= {"counting", "concepts", "word2vec", "cooccurrence"}),
    ("experiment", "run"): Call(_args(SWEEP), "cooc-glitters:",
                                lambda o, u: o["status"] == "finished" and o["runs"][0]["status"] == "finished"),
    ("experiment", "status"): Call(_args(["experiment", "status"]), "sweeps",
                                   lambda o, u: [(s["experiment"], s["status"]) for s in o] == [("cooccurrence", "finished")],
                                   setup=lambda u: [SWEEP]),
}


def test_every_command_has_a_user_test():
    assert sorted(CALLS) == sorted(command_paths())


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("path", [p for p, c in CALLS.items() if c is not None], ids=" ".join)
def test_each_command_as_a_user(user, path, columns):
    """At 40 columns the human output (exit 0, its heading or name), at 200 the --json form
    with its content checked; from a directory that is not the checkout, EXPLORER_HOME set."""
    call = CALLS[path]
    for args in call.setup(user):
        ok(user(*args))
    args = call.args(user)
    if columns == 200 and call.check is not None:
        proc = ok(user(*args, *call.json_flag, columns=columns))
        out = json.loads(proc.stdout)
        assert call.check(out, user), json.dumps(out)[:3000]
    else:
        proc = ok(user(*args, columns=columns))
        assert call.marker in words(proc.stdout + "\n" + proc.stderr), proc.stdout[-2000:] + proc.stderr[-2000:]
    if call.after is not None:
        assert call.after(user)


def test_map_plot_fits_a_narrow_terminal(user):
    """The terminal scatter plot is drawn for the terminal's width: its frame's top line is
    whole (┌...┐), not wrapped onto the next line."""
    proc = ok(user("map", "king", "queen", "man", "woman", "--model", "tiny-llama", columns=40))
    top = [line.rstrip() for line in proc.stdout.splitlines() if line.startswith("┌")]
    assert top and top[0].endswith("┐") and len(top[0]) <= 40, proc.stdout


def test_lens_bars_fit_a_narrow_terminal(user):
    """The lens's bar plot is drawn for the terminal's width: every bar line ends with its
    probability, not wrapped onto the next line."""
    for args in CALLS[("lens", "translate")].setup(user):
        ok(user(*args))
    proc = ok(user(*CALLS[("lens", "translate")].args(user), columns=40))
    bars = [line for line in proc.stdout.splitlines() if line[7:9] in ("T ", "E ")]
    assert bars and all(len(b) <= 40 and b.rstrip()[-4:].replace(".", "").isdigit() for b in bars), proc.stdout


# --- help, the version and the default data root (no EXPLORER_HOME) ------------------------

def checkout_manifest() -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file in the checkout's indexes/: a read-only command changes none."""
    root = REPO / "indexes"
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".wal")}


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    d = tmp_path / LONG / "somewhere else"
    d.mkdir(parents=True)
    return d


@pytest.mark.parametrize("columns", WIDTHS)
def test_help_lists_every_command(elsewhere, columns):
    for home in (None, elsewhere / "no such root"):
        proc = ok(explorer("--help", cwd=elsewhere, home=home, columns=columns))
        shown = set(words(proc.stdout))
        if columns == 200:  # at 40 columns a long name may be cut in its cell
            assert {p[0] for p in command_paths()} <= shown
        assert "Usage:" in shown and proc.stderr == ""


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_help_of_each_command(elsewhere, path, columns):
    before = checkout_manifest()
    proc = ok(explorer(*path, "--help", cwd=elsewhere, home=None, columns=columns))
    assert "Usage:" in words(proc.stdout) and proc.stderr == ""
    assert path[-1] in " ".join(proc.stdout.split())
    assert checkout_manifest() == before and not (elsewhere / "indexes").exists()


def test_version(elsewhere):
    proc = ok(explorer("--version", cwd=elsewhere, home=None))
    assert proc.stdout.split()[-1][0].isdigit()


def test_default_root_is_the_checkouts_indexes(elsewhere):
    """No --root, no EXPLORER_HOME, run from elsewhere: the checkout's indexes/ (it is in git,
    so it always exists in a clone). Only read-only commands: nothing there changes."""
    before = checkout_manifest()
    out = json.loads(ok(explorer("models", "--json", cwd=elsewhere, home=None)).stdout)
    assert Path(out["root"]).resolve() == (REPO / "indexes").resolve()
    assert {e["name"] for e in json.loads(ok(explorer("experiment", "list", "--json", cwd=elsewhere, home=None)).stdout)}
    schema = explorer("schema", cwd=elsewhere, home=None)
    if (REPO / "indexes" / "catalog.duckdb").exists():
        ok(schema)
    else:  # a fresh clone: nothing exported yet
        assert "no catalog" in one_line_error(schema)
    assert checkout_manifest() == before and not (elsewhere / "indexes").exists()


# --- the terminal UI -------------------------------------------------------------------------

@pytest.mark.parametrize("columns, lines", [(40, 20), (200, 50)])
def test_tui_starts_and_quits(user, columns, lines):
    """`explorer tui` on a terminal: the first screen lists the stored vector sets; ctrl+q exits 0."""
    before = user.home / "catalog.duckdb"
    digest = before.read_bytes()
    run = run_in_pty([str(EXPLORER), "tui"], cwd=user.cwd, env=user_env(user.home), wait_for=["tiny-llama", "Quit"],
                     keys=CTRL_Q, columns=columns, lines=lines, timeout=90)
    assert run.saw_screen, run.screen_text[-3000:]
    assert run.returncode == 0, run.screen_text[-3000:]
    assert "Traceback" not in run.screen_text
    assert before.read_bytes() == digest


def test_tui_from_elsewhere_without_a_root(elsewhere):
    """No --root, no EXPLORER_HOME (this crashed with a TypeError): the checkout's catalog,
    or the empty first screen of a fresh clone; nothing in indexes/ changes."""
    before = checkout_manifest()
    run = run_in_pty([str(EXPLORER), "tui"], cwd=elsewhere, env=user_env(None), wait_for=["Quit"], keys=CTRL_Q,
                     columns=100, lines=30, timeout=90)
    assert run.saw_screen and run.returncode == 0, run.screen_text[-3000:]
    assert "Traceback" not in run.screen_text and "Error" not in run.screen_text
    assert checkout_manifest() == before and not (elsewhere / "indexes").exists()


# --- bad input: one line on stderr, the store unchanged -------------------------------------

BAD: dict[str, list[list[str]]] = {  # class -> argument lists ('{file}': one of the person's files)
    "unknown word": [
        ["query", "woman - man + qqqq", "--model", "tiny-llama"],
        ["neighbours", "qqqq", "--model", "tiny-llama"],
        ["map", "king", "qqqq", "--model", "tiny-llama"],
        ["map-path", " king queen", "-L", "qqqq", "--model", "tiny-llama"],
    ],
    "malformed expression": [
        ["query", "king + + queen", "--model", "tiny-llama"],
        ["query", "king queen", "--model", "tiny-llama"],
        ["query", "", "--model", "tiny-llama"],
        ["query", "0.5*", "--model", "tiny-llama"],
        ["query", "king - (queen", "--model", "tiny-llama"],
        ["neighbours", "--expr", "king -", "--model", "tiny-llama"],
        ["map", "--expr", "+ * king", "--model", "tiny-llama"],
        ["compare", "king queen", "-m", "tiny-llama"],
    ],
    "missing model": [
        ["query", "king", "--model", "nope"],
        ["neighbours", "king", "--model", "nope"],
        ["evaluate", "nope", "--pairs", "{wordpairs.tsv}"],
        ["index", "rebuild", "--model", "nope"],
        ["index", "verify", "--model", "nope"],
        ["export", "{no such directory}"],
        ["export-states", "nope", "--prompt", "king"],
        ["trajectory", "king", "--model", "nope"],
        ["lens", "prompt", "king", "--model", "nope"],
    ],
    "junk file": [
        ["vectors", "import", "{junk.bin}", "--name", "j1"],
        ["vectors", "import", "{empty.txt}", "--name", "j2"],
        ["vectors", "import", "{nan.txt}", "--name", "j3"],
        ["vectors", "import", "{header.txt}", "--name", "j4"],
        ["vectors", "import", "{short.txt}", "--name", "j5"],
        ["vectors", "import", "{huge.txt}", "--name", "j6"],
        ["vectors", "import", "{huge.bin}", "--name", "j7"],
        ["lens", "translate", "--from", "en", "--to", "ru", "--model", "tiny-llama", "--words", "{junk.bin}"],
        ["lens", "translate", "--from", "en", "--to", "ru", "--model", "tiny-llama", "--words", "{empty.txt}"],
        ["lens", "repeat", "--lang", "en", "--model", "tiny-llama", "--words", "{nul.csv}"],
        ["export", "{junk.gguf}"],
        ["export", "{truncated.gguf}"],
        ["compare", "--file", "{junk.bin}", "-m", "tiny-llama"],
        ["evaluate", "tiny-llama", "--analogies", "{junk.bin}"],
        ["evaluate", "tiny-llama", "--pairs", "{junk.bin}"],
        ["directions", "--model", "tiny-llama", "--pairs", "{junk.bin}"],
        ["export-states", "tiny-llama", "--corpus", "{junk.bin}"],
        ["export-states", "tiny-llama", "--corpus", "{empty.txt}"],
    ],
    "wrong option value": [
        ["query", "king", "--model", "tiny-llama", "-k", "0"],
        ["query", "king", "--model", "tiny-llama", "-k", "many"],
        ["query", "king", "--model", "tiny-llama", "--method", "cos"],
        ["query", "king", "--model", "tiny-llama", "--variant", "nope"],
        ["query", "king", "--model", "tiny-llama", "--multi", "nope"],
        ["query", "king", "--model", "tiny-llama", "--vectors", "nope"],
        ["query", "king", "--model", "tiny-llama", "--where", "1=1) UNION SELECT 1 --"],
        ["query", "king", "--model", "tiny-llama", "--layer", "99"],
        ["--backend", "bogus", "query", "king", "--model", "tiny-llama"],
        ["--root", "{wordpairs.tsv}", "models"],
        ["neighbours", "king", "--model", "tiny-llama", "--where", "no_such_column = 1"],
        ["neighbours", "--id", "-5", "--model", "tiny-llama"],
        ["sql", "SELECT 1", "--format", "xml"],
        ["sql", "SELECT 1", "--output", "{no such directory}/x.csv"],
        ["sql", "DELETE FROM tokens"],
        ["trajectory", "king", "--model", "tiny-llama", "--position", "99"],
        ["states-index", "--model", "tiny-llama", "--kind", "nope"],
        ["states-stats", "--model", "tiny-llama", "--pairs", "0"],
        ["states-stats", "--model", "tiny-llama", "--layer", "9"],
        ["neighbours", "--layer", "1", "king", "--model", "tiny-llama", "--center", "--index", "ivfpq"],
        ["lens", "translate", "--from", "xx", "--model", "tiny-llama"],
        ["lens", "translate", "--shots", "-1", "--model", "tiny-llama"],
        ["map", "king", "queen", "--method", "nope", "--model", "tiny-llama"],
        ["map-path", " king", "-L", "king", "--fit", "landmarks", "--model", "tiny-llama"],
        ["export-states", "tiny-llama", "--prompt", "king", "--dtype", "float8"],
        ["experiment", "run", "counting", "--set", "d=-1", "--set", "steps=1"],
        ["experiment", "run", "counting", "--set", "no_such_setting=1"],
        ["experiment", "run", "nope"],
    ],
}
BAD_CASES = [(cls, args) for cls, cases in BAD.items() for args in cases]


@pytest.fixture(scope="module")
def bad_user(tmp_path_factory, tiny_root, user_files):
    """A data root with vectors and hidden states; its state (file checksums, rows per
    table through `explorer sql`) before any bad input, and a copy to restore it from."""
    base = tmp_path_factory.mktemp("bad") / LONG
    (base / "work").mkdir(parents=True)
    u = User(copy_root(tiny_root, base / "home"), base / "work", user_files)
    ok(u(*_args(EXPORT_STATES)(u)))
    shutil.copytree(u.home, base / "pristine")
    return u, base / "pristine", store_state(u.home, subprocess_sql(u.home, u.cwd))


@pytest.mark.parametrize("cls, args", BAD_CASES, ids=[f"{c}: {' '.join(a)}" for c, a in BAD_CASES])
def test_bad_input_is_one_line_and_changes_nothing(bad_user, cls, args):
    u, pristine, before = bad_user
    one_line_error(u(*_args(args)(u), columns=40))
    after = store_state(u.home, subprocess_sql(u.home, u.cwd), like=before)
    changed = before.diff(after)
    if changed:  # put the store back for the next case, then fail
        shutil.rmtree(u.home)
        shutil.copytree(pristine, u.home)
    assert not changed, changed


def test_corrupt_index_files_are_one_line_and_rebuilt(user):
    """A damaged FAISS file is named in one line by whatever reads it, nothing else changes,
    and `index rebuild` repairs it; a damaged vectors file is refused the same way."""
    index = user.home / "sets" / "tiny-llama" / "input" / "index.faiss"
    index.write_bytes(bytes(reversed(index.read_bytes())))  # same size, wrong content
    before = store_state(user.home, subprocess_sql(user.home, user.cwd))
    for args in (["index", "verify"], ["index", "verify", "--quick"],
                 ["--backend", "faiss", "query", "woman - man + king", "--model", "tiny-llama"],
                 ["--backend", "faiss", "neighbours", "king", "--model", "tiny-llama"]):
        assert "index.faiss" in one_line_error(user(*args, columns=40)), args
    assert not before.diff(store_state(user.home, subprocess_sql(user.home, user.cwd)))
    ok(user("index", "rebuild", "--model", "tiny-llama"))
    assert _verify_ok(user)
    vectors = user.home / "sets" / "tiny-llama" / "output" / "vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-8] + b"garbage!")
    before = store_state(user.home, subprocess_sql(user.home, user.cwd))
    for args in (["index", "verify"], ["query", "king", "--model", "tiny-llama", "--vectors", "output"]):
        assert "vectors.npy" in one_line_error(user(*args, columns=40)), args
    assert not before.diff(store_state(user.home, subprocess_sql(user.home, user.cwd)))
