"""Storage: the DuckDB catalog (source of truth) and the files derived from it.

Needs numpy, duckdb and faiss only; never torch.
"""
