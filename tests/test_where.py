"""``--where``: one boolean expression over a table's columns, checked by DuckDB's parser
(explorer.store.predicate), on every command that takes it."""

from __future__ import annotations

import json
import re

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clitools import one_line_error, run
from explorer.errors import ExplorerError
from explorer.store.predicate import check_where

INJECTION = "1=1) UNION SELECT 1 --"


@pytest.mark.parametrize(
    "expr, canonical",
    [
        ("leading_space AND length(text) > 3", '((leading_space AND (length("text") > 3)))'),
        ("script = 'cjk'", "((script = 'cjk'))"),
        ("token_id <> 5", "((token_id != 5))"),
        ("x = 1 -- a comment is dropped", "((x = 1))"),
        ("x = 'it''s -- not a comment'", "((x = 'it''s -- not a comment'))"),
        ("text LIKE '%[x]%'", "((\"text\" ~~ '%[x]%'))"),
    ],
)
def test_accepted_expressions_come_back_as_duckdb_renders_them(expr, canonical):
    assert check_where(expr) == canonical


@pytest.mark.parametrize(
    "expr, pattern",
    [
        (INJECTION, r"one boolean expression.*syntax error"),
        ("1=1) OR (1=1", r"syntax error"),
        ("x = 1; DROP TABLE tokens", r"more than one statement"),
        ("x = 1; SELECT 2", r"no second statement"),
        ("x = 1 ORDER BY 1", r"ORDER BY"),
        ("x = 1 LIMIT 1", r"LIMIT"),
        ("x = 1 GROUP BY x", r"GROUP BY"),
        ("x = 1 HAVING 1", r"one boolean expression"),
        ("x = 1 QUALIFY 1", r"one boolean expression"),
        ("token_id IN (SELECT 1)", r"subquery"),
        ("EXISTS (SELECT * FROM read_csv('/etc/passwd'))", r"subquery"),
        ("token_id = ?", r"parameter"),
        ("token_id = $1", r"parameter"),
        ("columns(*) > 0", r"COLUMNS"),
        ("x = 1 /* unterminated", r"unterminated"),
        ("", r"empty"),
        ("   ", r"empty"),
    ],
)
def test_anything_else_is_refused_naming_the_option(expr, pattern):
    with pytest.raises(ExplorerError) as info:
        check_where(expr)
    message = str(info.value)
    assert message.startswith("--where") and "\n" not in message
    assert re.search(pattern, message), message


def _tree(sql: str) -> dict:
    con = duckdb.connect()
    try:
        return json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    finally:
        con.close()


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not k.startswith("query_location")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


FRAGMENTS = ["1", "=", "1=1", ")", "(", "--", "/*", "*/", ";", "'", "''", "OR", "AND", "NOT", "UNION", "SELECT",
             "x", "token_id", "\n", "?", "$1", "LIMIT 1", "ORDER BY 1", "GROUP BY x", "FROM", "t", ",", "IN",
             "EXISTS", '"', "[", "]", "::INT", "->", "{", "}", "TRUE", "WHERE", "model_id"]
SQLISH = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map(" ".join) | st.text(max_size=40)


@given(SQLISH)
@settings(max_examples=300, deadline=None)
def test_an_accepted_filter_never_escapes_its_clause(text):
    """Spliced after ``model_id = 1 AND``, an accepted filter leaves one SELECT whose WHERE is
    a conjunction starting with ``model_id = 1``: nothing can drop the model filter, add a
    statement, a UNION or a modifier."""
    try:
        canonical = check_where(text)
    except ExplorerError as exc:
        assert "\n" not in str(exc)
        return
    tree = _tree("SELECT 1 FROM t WHERE model_id = 1 AND " + canonical)
    want = _tree("SELECT 1 FROM t WHERE model_id = 1 AND TRUE")
    assert not tree["error"] and len(tree["statements"]) == 1
    node, ref = tree["statements"][0]["node"], want["statements"][0]["node"]
    assert _strip({**node, "where_clause": None}) == _strip({**ref, "where_clause": None})
    where = node["where_clause"]
    assert where["type"] == "CONJUNCTION_AND"
    assert _strip(where["children"][0]) == _strip(ref["where_clause"]["children"][0])


WHERE_COMMANDS = [
    ["query", "king", "--model", "tiny-llama"],
    ["neighbours", "king", "--model", "tiny-llama"],
    ["neighbours", "the king", "--layer", "1", "--model", "tiny-llama"],
    ["map", "king", "queen", "--model", "tiny-llama"],
    ["vectors", "export", "--model", "tiny-llama", "-o", "{tmp}/out.txt"],
]


@pytest.mark.parametrize("args", WHERE_COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("bad", [INJECTION, "token_id = 1; DROP TABLE tokens", "token_id IN (SELECT 1)"])
def test_every_where_option_refuses_in_one_line(tiny_root, tmp_path, args, bad):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    line = one_line_error(run(tiny_root, *args, "--where", bad))
    assert "--where" in line
    assert not (tmp_path / "out.txt").exists()


def test_filters_still_filter(tiny_root, tmp_path):
    out = tmp_path / "latin.txt"
    r = run(tiny_root, "vectors", "export", "--model", "tiny-llama", "-o", str(out),
            "--where", "script = 'cyrillic' -- trailing comment", "--words", "text")
    assert r.exit_code == 0, r.stderr
    words = [line.split(" ")[0] for line in out.read_text(encoding="utf-8").splitlines()[1:]]
    assert sorted(words) == sorted(["▁король", "▁королева"])
    r = run(tiny_root, "query", "king", "--model", "tiny-llama", "--where", "NOT leading_space", "--json")
    assert r.exit_code == 0, r.stderr
    assert all(not h["token"].startswith(" ") for h in json.loads(r.stdout)["results"])
