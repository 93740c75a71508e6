"""Typer front end: thin commands over :mod:`explorer.engine`."""
