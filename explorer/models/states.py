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

from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.store.catalog import Catalog, ModelRow
from explorer.store.states import DTYPES, CorpusRow, StateStore

SAMPLE = "sample"


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
    seconds: float  # wall time of the run, model loading excluded
    tokens_per_second: float  # over the forward passes only
    resumed_from: int
    forward_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def sample_corpus_path() -> Path:
    return Path(str(resources.files("explorer.data").joinpath("sample_corpus.tsv")))


def read_corpus(path: Path) -> list[tuple[str | None, str]]:
    """Plain text: one document per line. ``.tsv`` with a header ``lang<TAB>text``: tagged.
    Either may be gzip-compressed (``.gz``)."""
    path = Path(path)
    if not path.is_file():
        raise ExplorerError(f"corpus file not found: {path}")
    try:
        if path.suffix == ".gz":
            import gzip

            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ExplorerError(f"corpus {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:
        raise ExplorerError(f"cannot read corpus {path}: {exc}") from None
    docs: list[tuple[str | None, str]] = []
    if path.name.removesuffix(".gz").endswith(".tsv") and lines and lines[0].strip().lower() == "lang\ttext":
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
        return Path(corpus).name.removesuffix(".gz").rsplit(".", 1)[0]
    digest = hashlib.sha1("\n".join(prompts).encode()).hexdigest()[:8]
    return f"prompts-{digest}"


@dataclass(frozen=True)
class StatesJob:
    """What to run: the documents ``(lang, text)``, the corpus name and source, and how."""

    docs: tuple[tuple[str | None, str], ...]
    name: str
    source: str
    dtype: str = "float32"
    batch_size: int = 8
    max_tokens: int = 128
    workers: int = 1
    force: bool = False
    ray: str | None = None  # a Ray cluster's address (or 'local'): forward passes run there


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:  # before the model loads
        raise ExplorerError(f"unknown dtype {dtype!r}; choose {' or '.join(DTYPES)}")


def export_corpus(m: ModelRow, root: Path, catalog: Catalog, job: StatesJob, *,
                  report: Report = lambda s: None, progress: Progress | None = None) -> StatesReport:
    """Run model ``m`` (a catalog row) over ``job.docs`` and store every layer's states."""
    check_dtype(job.dtype)
    docs, name, dtype = list(job.docs), job.name, job.dtype
    store = StateStore(catalog)
    row = store.corpus(m.model_id, name)
    if row is not None and job.force:
        store.delete(row)
        row = None
    if row is not None and row.status == "done":
        report(f"corpus {name} is already exported for {m.name} ({row.committed:,} states); --force redoes it")
        return _report(root, row, m.name, 0.0, 0, row.committed)
    if row is not None and ((row.n_docs, row.dim, row.n_layers) != (len(docs), m.d_model, (m.n_layers or 0) + 1) or row.dtype != dtype):
        raise ExplorerError(f"corpus {name} exists with different contents or settings; pass --force to redo it")
    forward = _open_forward(m, job, report)
    try:
        created = row is None
        if row is None:
            report(f"tokenising {len(docs):,} documents")
            ids = forward.tokenize([t for _, t in docs], job.max_tokens)
            planned = [(lang, text, len(t)) for (lang, text), t in zip(docs, ids)]
            row = store.plan(m.model_id, name, job.source, planned, forward.n_layers, forward.dim, dtype, m.name)
        elif (row.dim, row.n_layers) != (forward.dim, forward.n_layers):  # the catalog's sizes were wrong
            raise ExplorerError(f"corpus {name} exists with different contents or settings; pass --force to redo it")
        resumed = row.committed
        if resumed:
            report(f"resuming {name}: {resumed:,} states already committed")
        t0 = time.perf_counter()
        seconds_forward = _guarded(lambda: forward.run(store, row, job, progress), store, row, created)
    finally:
        forward.close()
    seconds = time.perf_counter() - t0
    row = store.finish(store.corpus(m.model_id, name), progress)
    return _report(root, row, m.name, seconds, row.committed - resumed, resumed, seconds_forward)


class _LocalForward:
    """Forward passes in this process (or ``job.workers`` local processes); the model is
    loaded here. :class:`explorer.models.states_ray.RayForward` has the same shape."""

    def __init__(self, model_dir: Path, report: Report):
        from explorer.models import surgery
        from explorer.models.loading import load_model

        self.model, self.tokenizer = load_model(model_dir, report)
        self.anat = surgery.anatomy(self.model)
        self.n_layers, self.dim = self.anat.n_layers + 1, self.anat.d_model

    def tokenize(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        from explorer.models.capture import tokenize

        return tokenize(self.tokenizer, texts, max_tokens)

    def run(self, store: StateStore, row: CorpusRow, job: StatesJob, progress: Progress | None) -> float:
        if job.workers > 1:
            return _run_workers(store.root, row, job.workers, job.batch_size, progress)
        return _run_range(self.model, self.anat, self.tokenizer, store, row, 0, row.n_docs, job.batch_size,
                          job.max_tokens, progress)

    def close(self) -> None:
        pass


def _open_forward(m: ModelRow, job: StatesJob, report: Report):
    """What runs the forward passes: this machine, or the Ray cluster of ``job.ray``."""
    if job.ray:
        from explorer.models.states_ray import RayForward

        return RayForward(job.ray, Path(m.model_dir), job.workers, report)
    report(f"loading {m.name} (5-80 s)")
    return _LocalForward(Path(m.model_dir), report)


def _guarded(run: Callable[[], float], store: StateStore, row: CorpusRow, created: bool) -> float:
    """``run()``; on states that do not fit the dtype, remove the corpus if this run began
    it (nothing stored before is lost), else keep it and say how to redo it."""
    try:
        return run()
    except StatesOverflow as exc:
        if not created:
            raise StatesOverflow(f"{exc} (corpus {row.name} was started by an earlier run: redo it with --force)") from None
        store.delete(store.corpus(row.model_id, row.name) or row)
        raise


def _report(root: Path, row: CorpusRow, model: str, seconds: float, new: int, resumed: int, forward: float = 0.0) -> StatesReport:
    directory = Path(root) / row.path
    size = sum(p.stat().st_size for p in directory.glob("layer_??.npy"))
    return StatesReport(
        model, row.name, row.n_docs, row.committed, row.n_layers, row.dim, row.dtype,
        size / max(row.committed, 1), seconds, new / forward if forward else 0.0, resumed, forward,
    )


class StatesOverflow(ExplorerError):
    """Hidden states too large for the chosen on-disk dtype (float16)."""


FLOAT16_MAX = 65504.0


def check_fits(layers, lengths: Sequence[int] | None, dtype: str) -> None:
    """Refuse a batch whose states would be stored as inf or NaN: any non-finite value,
    and in float16 any |value| above 65504 (Gemma's BOS states reach 1e5 in the middle
    layers). ``layers``: padded (batch, seq, d) tensors with ``lengths`` per row (padding
    positions are not looked at), or with ``lengths`` None the real rows alone (rows, d),
    as :func:`flat_states` gives them."""
    if lengths is not None:
        import torch

        layers = [torch.cat([layer[b, :n] for b, n in enumerate(lengths)]) for layer in layers]
    peaks = [float(abs(layer).max()) for layer in layers]
    bad = [i for i, p in enumerate(peaks) if not np.isfinite(p)]
    if bad:
        raise StatesOverflow(f"the model produced inf or NaN at layer(s) {_spans(bad)}; nothing of this batch is stored")
    if dtype == "float16":
        over = [i for i, p in enumerate(peaks) if p > FLOAT16_MAX]
        if over:
            top = max(over, key=lambda i: peaks[i])
            raise StatesOverflow(
                f"states at layer(s) {_spans(over)} exceed float16's range (max |value| {peaks[top]:,.0f} at layer {top}, "
                f"float16 holds up to 65,504); export them as float32 (--dtype float32)"
            )


def flat_states(cap) -> list[np.ndarray]:
    """A captured batch's states per layer as float32 rows (sum of lengths, d), document
    after document, padding left out: what is written and what a Ray worker sends back."""
    import torch

    return [torch.cat([layer[b, :n] for b, n in enumerate(cap.lengths)]).float().cpu().numpy() for layer in cap.layers]


def _spans(ids: Sequence[int]) -> str:
    """[0, 8, 9, 10, 12] -> '0, 8-10, 12'."""
    out: list[str] = []
    for i in ids:
        if out and i == int(out[-1].split("-")[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ", ".join(out)


COMMIT_SECONDS = 2.0  # commit metadata at most this often (each commit opens the catalog)


class RowWriter:
    """Writes batches of documents' states in place and, every ~2 s, msyncs the layer files
    and commits the finished documents' metadata in one transaction. A batch that does not
    fit the dtype is refused before any of it is written. Used by the local and Ray paths
    alike, so both stores come out the same."""

    def __init__(self, store: StateStore, row: CorpusRow, tokenizer):
        self.store, self.row, self.tokenizer = store, row, tokenizer
        self.files = store.open_layers(row)
        self.buffered: list[tuple[list, list]] = []
        self.last = time.monotonic()

    def add(self, batch: Sequence[tuple], ids: list[list[int]], layers: Sequence[np.ndarray]) -> None:
        """``batch``: pending rows (doc_id, text, n, first); ``layers``: :func:`flat_states`."""
        check_fits(layers, None, self.row.dtype)
        for layer, mm in zip(layers, self.files):
            off = 0
            for _, _, n, first in batch:
                mm[first : first + n] = layer[off : off + n]
                off += n
        self.buffered.append((list(batch), ids))
        if time.monotonic() - self.last >= COMMIT_SECONDS:
            self.commit()
            self.last = time.monotonic()

    def commit(self) -> None:
        if not self.buffered:
            return
        self.store.flush(self.files)
        batch = [d for b, _ in self.buffered for d in b]
        ids = [t for _, i in self.buffered for t in i]
        self.store.commit(self.row, [d[0] for d in batch], _state_rows(self.tokenizer, batch, ids))
        self.buffered.clear()


def batch_ids(tokenizer, batch: Sequence[tuple], max_tokens: int) -> list[list[int]]:
    """Token ids of pending documents, checked against the lengths planned for them."""
    from explorer.models.capture import tokenize

    ids = tokenize(tokenizer, [text for _, text, _, _ in batch], max_tokens)
    for (doc_id, _, n, _), t in zip(batch, ids):
        if len(t) != n:
            raise ExplorerError(f"document {doc_id} tokenises differently than when it was planned")
    return ids


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _run_range(model, anat, tokenizer, store: StateStore, row: CorpusRow, lo: int, hi: int,
               batch_size: int, max_tokens: int, progress: Progress | None) -> float:
    """Run pending documents in [lo, hi) in batches through a :class:`RowWriter`. Returns
    the seconds spent in forward passes."""
    from explorer.models.capture import capture, tokenize

    pending = store.pending_docs(row.corpus_id, lo, hi)
    total = hi - lo
    done = total - len(pending)
    pad = pad_id(tokenizer)
    writer = RowWriter(store, row, tokenizer)
    forward = 0.0
    if pending:  # untimed: the first pass pages the weights in and sets torch up (seconds on a cold start)
        capture(model, anat, [tokenize(tokenizer, [pending[0][1]], 1)[0]], pad)
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        ids = batch_ids(tokenizer, batch, max_tokens)
        t0 = time.perf_counter()
        cap = capture(model, anat, ids, pad)
        forward += time.perf_counter() - t0
        writer.add(batch, ids, flat_states(cap))
        done += len(batch)
        if progress:
            progress("documents", done, total)
    writer.commit()
    return forward


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


def _worker(args) -> tuple[int, float]:
    root, corpus_id, lo, hi, batch_size, threads = args
    import torch

    torch.set_num_threads(threads)
    from explorer.models import surgery
    from explorer.models.loading import load_model

    catalog = Catalog(Path(root))
    store = StateStore(catalog)
    row = next(c for c in store.corpora() if c.corpus_id == corpus_id)
    m = catalog.model_by_id(row.model_id)
    model, tokenizer = load_model(Path(m.model_dir))
    anat = surgery.anatomy(model)
    max_tokens = max((n for _, _, n, _ in store.pending_docs(corpus_id, lo, hi)), default=1)
    return hi - lo, _run_range(model, anat, tokenizer, store, row, lo, hi, batch_size, max_tokens, None)


def _run_workers(root: Path, row: CorpusRow, workers: int, batch_size: int, progress: Progress | None) -> float:
    """Split the documents into contiguous ranges, one process each, writing to one store.
    Returns the longest forward time of a worker (they run side by side)."""
    edges = np.linspace(0, row.n_docs, workers + 1).astype(int)
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [(str(root), row.corpus_id, int(a), int(b), batch_size, threads) for a, b in zip(edges[:-1], edges[1:])]
    done, forward = 0, 0.0
    with mp.get_context("spawn").Pool(workers) as pool:
        for n, seconds in pool.imap_unordered(_worker, jobs):
            done, forward = done + n, max(forward, seconds)
            if progress:
                progress("documents", done, row.n_docs)
    return forward
