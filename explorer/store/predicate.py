"""User ``--where`` filters: one boolean expression over a table's columns, checked by
DuckDB's own parser, never by string matching.

``check_where`` parses ``SELECT 1 FROM t WHERE <expr>`` with ``json_serialize_sql`` and
accepts it only when the parse tree is that statement and nothing more: one SELECT (no
second statement, no set operation, no CTE, no GROUP BY / HAVING / QUALIFY / ORDER BY /
LIMIT / SAMPLE) whose WHERE holds an expression without subqueries or ``?`` parameters.
It returns DuckDB's own rendering of that expression (comments dropped, parentheses
explicit), checked to parse back to the same tree: what the program splices into its SQL
is exactly what was checked, so ``1=1) UNION SELECT 1 --`` or a trailing ``--`` comment
cannot change the query around it.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from explorer.errors import ExplorerError

_PREFIX = "SELECT 1 FROM t WHERE "
# expression classes that reach outside one row of the table, or into the caller's parameters
_REFUSED = {"SUBQUERY": "a subquery", "PARAMETER": "a ? parameter", "STAR": "a * or COLUMNS(...)"}
_EXAMPLE = "e.g. \"leading_space AND length(text) > 3\""


def check_where(where: str | None, option: str = "--where") -> str | None:
    """``None`` for no filter; else the checked expression, parenthesised, ready to be
    joined with ``AND`` into a WHERE clause. A refused filter is an ExplorerError naming
    ``option``."""
    if where is None:
        return None
    if not where.strip():
        raise ExplorerError(f"{option} is empty; give one boolean expression over the table's columns, {_EXAMPLE}")
    con = duckdb.connect()
    try:
        _where_clause(con, _PREFIX + where, option)  # names a UNION, ORDER BY, ... if there is one
        # then inside parentheses (the newline ends a trailing -- comment): what does not fit
        # in ( ... ), such as a trailing ';', is not one expression
        expr = _where_clause(con, _PREFIX + "(" + where + "\n)", option)
        canonical = _render(con, expr, option)
        if _strip(_where_clause(con, _PREFIX + canonical, option)) != _strip(expr):
            raise ExplorerError(f"{option} could not be checked (DuckDB renders it differently); simplify the expression")
    finally:
        con.close()
    return f"({canonical})"


def _serialize(con: duckdb.DuckDBPyConnection, sql: str) -> dict:
    return json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


def _where_clause(con: duckdb.DuckDBPyConnection, sql: str, option: str) -> dict:
    """The WHERE expression of ``sql``, after checking that the rest is exactly the template."""
    tree = _serialize(con, sql)
    if tree.get("error"):
        detail = str(tree.get("error_message", "")).splitlines()[0] if tree.get("error_message") else "not valid SQL"
        if "only select" in detail.lower():
            detail = "it holds more than one statement"
        raise ExplorerError(f"{option} must be one boolean expression over the table's columns ({detail}); {_EXAMPLE}")
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    expr = node.get("where_clause")
    if expr is None or _strip({**node, "where_clause": None}) != _template(con):
        raise ExplorerError(
            f"{option} must be one boolean expression over the table's columns, with no second statement, "
            f"UNION, GROUP BY, ORDER BY or LIMIT; {_EXAMPLE}"
        )
    for cls, what in _REFUSED.items():
        if _contains_class(expr, cls):
            raise ExplorerError(f"{option} may not contain {what}: use the table's own columns; {_EXAMPLE}")
    return expr


def _render(con: duckdb.DuckDBPyConnection, expr: dict, option: str) -> str:
    """DuckDB's SQL for ``expr`` (as the WHERE of the template statement)."""
    tree = _serialize(con, _PREFIX + "TRUE")
    tree["statements"][0]["node"]["where_clause"] = expr
    try:
        sql = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()[0]
    except duckdb.Error as exc:
        raise ExplorerError(f"{option} could not be checked: {str(exc).splitlines()[0]}") from None
    if not sql.startswith(_PREFIX):
        raise ExplorerError(f"{option} could not be checked (unexpected rendering); simplify the expression")
    return sql[len(_PREFIX):]


_TEMPLATE: dict | None = None


def _template(con: duckdb.DuckDBPyConnection) -> dict:
    """The SELECT node of ``SELECT 1 FROM t WHERE TRUE`` without its WHERE and locations."""
    global _TEMPLATE
    if _TEMPLATE is None:
        node = _serialize(con, _PREFIX + "TRUE")["statements"][0]["node"]
        _TEMPLATE = _strip({**node, "where_clause": None})
    return _TEMPLATE


def _strip(obj: Any) -> Any:
    """A parse tree without source positions (they differ between equal trees)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not k.startswith("query_location")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _contains_class(obj: Any, cls: str) -> bool:
    if isinstance(obj, dict):
        if obj.get("class") == cls:
            return True
        return any(_contains_class(v, cls) for v in obj.values())
    if isinstance(obj, list):
        return any(_contains_class(v, cls) for v in obj)
    return False
