"""``explorer sql`` / ``explorer schema`` and the TUI's SQL pane: SQL over the catalog,
read-only and sandboxed unless ``write``."""

from __future__ import annotations

from pathlib import Path

from explorer.store.sql import SqlResult, check_output, describe_schema, run_sql, write_parquet, write_text

__all__ = ["SqlResult", "check_output", "describe_schema", "run", "write_parquet", "write_text"]


def run(root: Path, sql: str, *, write: bool = False, want_arrays: bool = False) -> SqlResult:
    """One SQL statement over the catalog at ``root``."""
    return run_sql(root, sql, write=write, want_arrays=want_arrays)
