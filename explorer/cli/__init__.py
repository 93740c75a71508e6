"""Typer front end: thin commands over the service layer (:mod:`explorer.services`)."""
