"""``explorer vectors export`` and ``explorer vectors import``: data in and out.

Formats and the escaping of words are described in :mod:`explorer.store.interchange`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from explorer.core.types import DEFAULT_MODEL
from explorer.cli.common import StageProgress, cli_errors, print_json, state

vectors_app = typer.Typer(
    help=(
        "Export vector sets (TensorFlow Embedding Projector TSV, Parquet, word2vec text and binary) "
        "and import word2vec, GloVe, projector or Parquet files as new models."
    ),
    no_args_is_help=True,
)

_EXPORT_FORMATS = "projector, parquet, word2vec or word2vec-binary"
_IMPORT_FORMATS = "auto, word2vec, word2vec-binary, glove, projector or parquet"
_BY_SUFFIX = {".parquet": "parquet", ".bin": "word2vec-binary", ".txt": "word2vec", ".vec": "word2vec", ".w2v": "word2vec"}


def register(app: typer.Typer) -> None:
    """Add the ``vectors`` group to ``app`` (once; calling again does nothing)."""
    if any(g.typer_instance is vectors_app or g.name == "vectors" for g in app.registered_groups):
        return
    app.add_typer(vectors_app, name="vectors")


@vectors_app.command("export")
@cli_errors
def export_cmd(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (a directory for projector).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=f"Model name or spec (default: {DEFAULT_MODEL}).")] = None,
    vectors: Annotated[str, typer.Option("--vectors", help="Vector set: input (embedding) or output (unembedding).")] = "input",
    fmt: Annotated[
        Optional[str],
        typer.Option("--format", "-f", help=f"{_EXPORT_FORMATS} (default: from the output's extension: .parquet, .bin, .txt/.vec/.w2v; none: projector)."),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="Only the first N rows (by token id, after --where).", min=1)] = None,
    where: Annotated[
        Optional[str], typer.Option("--where", help="One SQL boolean expression over the tokens table's columns, e.g. \"script = 'latin' AND NOT is_special\".")
    ] = None,
    words: Annotated[
        str, typer.Option("--words", help="Name tokens by their vocabulary string (raw, e.g. '▁king'; unique) or decoded text (text, e.g. ' king').")
    ] = "raw",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Write a stored vector set to a file others can read.

    projector: a directory with vectors.tsv and metadata.tsv for
    projector.tensorflow.org; parquet: token_id, token, vector FLOAT[]; word2vec and
    word2vec-binary: as gensim reads and writes them. Numbers are written so that they
    read back bit-for-bit. word2vec words cannot hold whitespace: a space is written
    '▁', a control character as its Unicode control picture (newline '␊'), other
    whitespace as <U+XXXX>.
    """
    from explorer.errors import ExplorerError
    from explorer.services.vectors import check_where, export_vectors

    if fmt is None:
        suffix = output.suffix.lower()
        if suffix and suffix not in _BY_SUFFIX:
            raise ExplorerError(f"cannot tell the format from {output.name!r}; pass --format ({_EXPORT_FORMATS})")
        fmt = _BY_SUFFIX.get(suffix, "projector")
    check_where(where)  # refused filters and unwritable paths: one line before any model loads
    _check_output(output)
    engine = state(ctx).engine()
    with StageProgress(quiet=as_json) as sp:
        rep = export_vectors(engine, model, vectors, fmt.lower(), output, limit=limit, where=where, words=words,
                             report=sp.report, progress=sp.progress)
    if as_json:
        print_json(rep.to_dict())
        return
    print(f"{rep.model}/{rep.vectors}: {rep.rows:,} x {rep.dim} -> {', '.join(rep.files)} ({rep.format})")


def _check_output(output: Path) -> None:
    """The nearest existing folder on the way to ``output`` must be a folder (the export
    creates the missing ones)."""
    from explorer.errors import ExplorerError

    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ExplorerError(f"cannot write {str(output)!r}: {str(parent)!r} is a file, not a folder")
            return


@vectors_app.command("import")
@cli_errors
def import_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="word2vec text or binary, GloVe text, a projector directory (or its vectors.tsv) or a Parquet file.")],
    name: Annotated[Optional[str], typer.Option("--name", help="Model name (default: the file name without its extension).")] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help=f"{_IMPORT_FORMATS}. auto: a directory or .tsv is projector, .parquet parquet; a first line 'N D' is word2vec (binary if the bytes after the first word are not text); otherwise GloVe."),
    ] = "auto",
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an earlier import of the same name.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Import a vector file as a new model with one vector set, input.

    Each word becomes a token (ids in file order; text and raw are the word as
    written), and the set gets norms, a FAISS index and checksums, so
    `explorer query --model NAME` works on it. Malformed files are refused with the
    file and line number.
    """
    from explorer.services.vectors import import_vectors

    engine = state(ctx).engine()
    with StageProgress(quiet=as_json) as sp:
        rep = import_vectors(engine, file, name=name, fmt=fmt.lower(), replace=replace, progress=sp.progress)
    if as_json:
        print_json(rep.to_dict())
        return
    print(f"{rep.model}: imported {rep.rows:,} x {rep.dim} ({rep.format}) from {rep.source} as vector set {rep.vector_set}")
