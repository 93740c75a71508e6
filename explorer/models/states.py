"""``explorer export-states``: run a model over a corpus and store every layer's states.

Documents are tokenised and planned first (their rows in every layer file are fixed),
then run in batches: rows written in place, then committed with their metadata. Memory
holds one batch. A killed run resumes with the documents not yet committed; ``workers``
processes can share the document range.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from explorer.errors import ExplorerError
from explorer.store.catalog import Catalog
from explorer.store.states import CorpusRow, StateStore

SAMPLE = "sample"
Report = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass
class StatesReport:
    model: str
    corpus: str
    documents: int
    states: int
    layers: int
    dim: int
    dtype: str
    bytes_per_token: float
    seconds: float
    tokens_per_second: float
    resumed_from: int

    def to_dict(self) -> dict:
        return asdict(self)


def sample_corpus_path() -> Path:
    return Path(str(resources.files("explorer.data").joinpath("sample_corpus.tsv")))


def read_corpus(path: Path) -> list[tuple[str | None, str]]:
    """Plain text: one document per line. ``.tsv`` with a header ``lang<TAB>text``: tagged."""
    path = Path(path)
    if not path.is_file():
        raise ExplorerError(f"corpus file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ExplorerError(f"corpus {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    docs: list[tuple[str | None, str]] = []
    if path.suffix == ".tsv" and lines and lines[0].strip().lower() == "lang\ttext":
        for n, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise ExplorerError(f"{path}:{n}: expected two tab-separated columns lang, text")
            docs.append((parts[0].strip() or None, parts[1].strip()))
    else:
        docs = [(None, line.strip()) for line in lines if line.strip()]
    if not docs:
        raise ExplorerError(f"corpus {path} has no documents")
    return docs


def corpus_name(corpus: Path | None, prompts: Sequence[str]) -> str:
    if corpus is not None:
        return Path(corpus).stem
    digest = hashlib.sha1("\n".join(prompts).encode()).hexdigest()[:8]
    return f"prompts-{digest}"


def export_states(
    spec: str | None,
    root: Path,
    *,
    corpus: Path | None = None,
    prompts: Sequence[str] = (),
    name: str | None = None,
    dtype: str = "float32",
    batch_size: int = 8,
    max_tokens: int = 128,
    workers: int = 1,
    force: bool = False,
    report: Report = lambda s: None,
    progress: Progress | None = None,
) -> StatesReport:
    from explorer.engine import Engine
    from explorer.models import sources, surgery
    from explorer.models.capture import tokenize

    if corpus is None and not prompts:
        corpus = sample_corpus_path()
    docs = read_corpus(corpus) if corpus is not None else [(None, p) for p in prompts]
    name = name or corpus_name(corpus, prompts)
    engine = Engine(root)
    m = engine.model(spec, report=report)
    store = StateStore(engine.catalog)
    row = store.corpus(m.model_id, name)
    if row is not None and force:
        store.delete(row)
        row = None
    if row is not None and row.status == "done":
        report(f"corpus {name} is already exported for {m.name} ({row.committed:,} states); --force redoes it")
        return _report(engine, row, m.name, 0.0, 0, row.committed)
    model, tokenizer = sources.load(Path(m.model_dir))
    anat = surgery.anatomy(model)
    if row is None:
        report(f"tokenising {len(docs):,} documents")
        ids = tokenize(tokenizer, [t for _, t in docs], max_tokens)
        planned = [(lang, text, len(t)) for (lang, text), t in zip(docs, ids)]
        row = store.plan(m.model_id, name, str(corpus or "prompts"), planned, anat.n_layers + 1, anat.d_model, dtype, m.name)
    elif (row.n_docs, row.dim, row.n_layers) != (len(docs), anat.d_model, anat.n_layers + 1) or row.dtype != dtype:
        raise ExplorerError(f"corpus {name} exists with different contents or settings; pass --force to redo it")
    resumed = row.committed
    if resumed:
        report(f"resuming {name}: {resumed:,} states already committed")
    engine.catalog.close()
    t0 = time.perf_counter()
    if workers > 1:
        _run_workers(spec, root, row, workers, batch_size, progress)
    else:
        _run_range(model, anat, tokenizer, store, row, 0, row.n_docs, batch_size, max_tokens, progress)
    seconds = time.perf_counter() - t0
    row = store.finish(store.corpus(m.model_id, name), progress)
    return _report(engine, row, m.name, seconds, row.committed - resumed, resumed)


def _report(engine, row: CorpusRow, model: str, seconds: float, new: int, resumed: int) -> StatesReport:
    directory = engine.root / row.path
    size = sum(p.stat().st_size for p in directory.glob("layer_??.npy"))
    return StatesReport(
        model, row.name, row.n_docs, row.committed, row.n_layers, row.dim, row.dtype,
        size / max(row.committed, 1), seconds, new / seconds if seconds else 0.0, resumed,
    )


COMMIT_SECONDS = 2.0  # commit metadata at most this often (each commit opens the catalog)


def _run_range(model, anat, tokenizer, store: StateStore, row: CorpusRow, lo: int, hi: int,
               batch_size: int, max_tokens: int, progress: Progress | None) -> None:
    """Run pending documents in [lo, hi): write rows in place; every ~2 s, msync the
    layer files and commit the finished documents' metadata in one transaction."""
    from explorer.models.capture import capture, tokenize

    pending = store.pending_docs(row.corpus_id, lo, hi)
    store.catalog.close()
    total = hi - lo
    done = total - len(pending)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    files = store.open_layers(row)
    buffered: list[tuple[list, list]] = []
    last = time.monotonic()

    def commit() -> None:
        store.flush(files)
        batch = [d for b, _ in buffered for d in b]
        ids = [t for _, i in buffered for t in i]
        store.commit(row, [d[0] for d in batch], _state_rows(tokenizer, batch, ids))
        buffered.clear()

    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        ids = tokenize(tokenizer, [text for _, text, _, _ in batch], max_tokens)
        for (doc_id, _, n, _), t in zip(batch, ids):
            if len(t) != n:
                raise ExplorerError(f"document {doc_id} tokenises differently than when it was planned")
        cap = capture(model, anat, ids, pad)
        for layer, mm in zip(cap.layers, files):
            for b, (_, _, n, first) in enumerate(batch):
                mm[first : first + n] = layer[b, :n].float().numpy()
        buffered.append((batch, ids))
        if time.monotonic() - last >= COMMIT_SECONDS:
            commit()
            last = time.monotonic()
        done += len(batch)
        if progress:
            progress("documents", done, total)
    if buffered:
        commit()


def _state_rows(tokenizer, batch, ids) -> dict[str, np.ndarray]:
    flat = [i for t in ids for i in t]
    texts = tokenizer.batch_decode([[i] for i in flat], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return {
        "state_id": np.concatenate([np.arange(first, first + n) for _, _, n, first in batch]).astype(np.int64),
        "doc_id": np.concatenate([[doc] * n for doc, _, n, _ in batch]).astype(np.int32),
        "position": np.concatenate([np.arange(n) for _, _, n, _ in batch]).astype(np.int32),
        "token_id": np.asarray(flat, dtype=np.int32),
        "token": np.array(texts, dtype=object),
    }


def _worker(args) -> int:
    spec, root, corpus_id, lo, hi, batch_size, threads = args
    import torch

    torch.set_num_threads(threads)
    from explorer.models import sources, surgery

    catalog = Catalog(Path(root))
    store = StateStore(catalog)
    row = next(c for c in store.corpora() if c.corpus_id == corpus_id)
    m = catalog.model_by_id(row.model_id)
    model, tokenizer = sources.load(Path(m.model_dir))
    anat = surgery.anatomy(model)
    max_tokens = max((n for _, _, n, _ in store.pending_docs(corpus_id, lo, hi)), default=1)
    _run_range(model, anat, tokenizer, store, row, lo, hi, batch_size, max_tokens, None)
    return hi - lo


def _run_workers(spec, root, row: CorpusRow, workers: int, batch_size: int, progress: Progress | None) -> None:
    """Split the documents into contiguous ranges, one process each, writing to one store."""
    edges = np.linspace(0, row.n_docs, workers + 1).astype(int)
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(spec, str(root), row.corpus_id, int(a), int(b), batch_size, threads) for a, b in zip(edges[:-1], edges[1:])]
    done = 0
    with mp.get_context("spawn").Pool(workers) as pool:
        for n in pool.imap_unordered(_worker, jobs):
            done += n
            if progress:
                progress("documents", done, row.n_docs)
