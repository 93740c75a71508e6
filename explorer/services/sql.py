"""``explorer sql`` / ``explorer schema`` and the TUI's SQL pane: SQL over the catalog,
read-only and sandboxed unless ``write``."""

from __future__ import annotations

from explorer.store.sql import SqlResult, check_output, describe_schema, run_sql, write_parquet, write_text

__all__ = ["SqlResult", "check_output", "describe_schema", "run_sql", "write_parquet", "write_text"]
