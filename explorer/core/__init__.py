"""Foundations every layer may import: shared types and small numeric helpers (numpy only)."""
