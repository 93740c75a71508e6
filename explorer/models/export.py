"""Export a model's token embeddings (input and unembedding) into the store.

Every step is idempotent and skipped when already done, so re-running a killed export
completes it: convert (cached), model row, tokens table, input set, output set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from explorer.core.types import Progress, Report
from explorer.models import sources, surgery
from explorer.models.loading import load_model
from explorer.models.loading import check_dir
from explorer.paths import model_cache_dir
from explorer.query.tokeninfo import token_columns
from explorer.store import sets
from explorer.store.catalog import Catalog
from explorer.store.files import remove_stale_temps


@dataclass
class ModelExportReport:
    model: str
    source: dict
    model_dir: str
    tied: bool | None  # None: the model has no unembedding (an encoder)
    embed_scale: float
    vocab_rows: int
    d_model: int
    n_layers: int
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def export_model(
    spec: str,
    root: Path,
    *,
    force: bool = False,
    report: Report = lambda s: None,
    progress: Progress | None = None,
) -> ModelExportReport:
    source = sources.resolve_source(spec)  # a bad spec or file fails here, before the catalog is touched
    cache = model_cache_dir(root)
    catalog = Catalog(root)
    if not force:
        stored = _already_stored(catalog, source, cache)
        if stored is not None:
            report(f"{source.name} is already stored and verified; --force redoes it")
            return stored
    directory = sources.convert(source, cache, report)
    check_dir(directory)  # a broken directory is one line, before the stage line below
    report(f"loading {source.name} from {directory}")
    model, tokenizer = load_model(directory, report)
    anat = surgery.anatomy(model)
    config = model.config.to_dict()
    catalog.migrate()  # only now: a file that fails to convert or load leaves the store as it was
    remove_stale_temps(root / "sets")
    model_id = catalog.upsert_model(
        name=source.name,
        source=source.spec,
        source_kind=source.kind,
        model_type=anat.model_type,
        architecture=anat.architecture,
        n_layers=anat.n_layers,
        d_model=anat.d_model,
        vocab_size=anat.vocab_rows,
        tied=anat.tied if anat.unembed is not None else None,  # NULL: no unembedding
        embed_scale=anat.embed_scale,
        model_dir=str(directory),
        config=json.dumps(config, default=str),
    )
    out = ModelExportReport(
        source.name, source.to_dict(), str(directory), anat.tied if anat.unembed is not None else None,
        anat.embed_scale, anat.vocab_rows, anat.d_model, anat.n_layers,
    )
    if force or catalog.token_count(model_id) != anat.vocab_rows:
        report(f"describing {anat.vocab_rows:,} tokens")
        catalog.replace_tokens(model_id, token_columns(tokenizer, anat.vocab_rows))
        out.steps.append("tokens")
    out.steps += _write_sets(catalog, model_id, source.name, anat, force, report, progress)
    return out


def _write_sets(catalog: Catalog, model_id: int, name: str, anat: surgery.Anatomy, force: bool,
                report: Report, progress: Progress | None) -> list[str]:
    """Write the input set and the unembedding (or its tied alias) unless stored intact."""
    steps = []
    input_row = catalog.vector_set(model_id, "input")
    if force or input_row is None or not _intact(catalog, input_row, name):
        report(f"writing the input embedding ({anat.vocab_rows:,} x {anat.d_model}) and its FAISS index")
        matrix = anat.embed.weight.detach().float().cpu().numpy()
        note = f"input embedding; the model multiplies rows by {anat.embed_scale:g} after lookup"
        sets.write_vector_set(catalog, model_id, name, "input", matrix, note=note, progress=progress)
        steps.append("input")
        input_row = catalog.vector_set(model_id, "input")
    output_row = catalog.vector_set(model_id, "output")
    if anat.unembed is None:
        report(f"{anat.architecture} has no unembedding (not a causal LM): only the input embedding is stored")
    elif anat.tied:
        if force or output_row is None or output_row.same_as != input_row.set_id:
            sets.register_alias(catalog, model_id, "output", input_row, "unembedding, tied: same rows as input")
            steps.append("output (tied alias)")
    elif force or output_row is None or output_row.same_as is not None or not _intact(catalog, output_row, name):
        report("writing the unembedding (lm_head) and its FAISS index")
        matrix = anat.unembed.weight.detach().float().cpu().numpy()
        sets.write_vector_set(catalog, model_id, name, "output", matrix, note="unembedding (lm_head)", progress=progress)
        steps.append("output")
    return steps


def _already_stored(catalog: Catalog, source: sources.ModelSource, cache: Path) -> ModelExportReport | None:
    """The report of a finished export of ``source`` whose files pass the quick check
    (size and mtime, SHA-256 when they differ), read from the catalog without loading
    the model; None when anything is missing or differs."""
    if not catalog.exists():
        return None
    m = catalog.model(source.name)
    directory = sources.model_dir(source, cache)
    if m is None or m.model_dir != str(directory) or not sources.is_converted(source, cache):
        return None
    if m.vocab_size is None or catalog.token_count(m.model_id) != m.vocab_size:
        return None
    inp, out = catalog.vector_set(m.model_id, "input"), catalog.vector_set(m.model_id, "output")
    if inp is None or not _intact(catalog, inp, m.name):
        return None
    if m.tied is None:
        done = out is None
    elif m.tied:
        done = out is not None and out.same_as == inp.set_id
    else:
        done = out is not None and out.same_as is None and _intact(catalog, out, m.name)
    if not done:
        return None
    return ModelExportReport(m.name, source.to_dict(), m.model_dir, m.tied, m.embed_scale or 1.0, m.vocab_size,
                        m.d_model or 0, m.n_layers or 0)


def _intact(catalog: Catalog, row, model_name: str) -> bool:
    try:
        sets.verify(catalog, row, model_name)
        return True
    except Exception:
        return False


