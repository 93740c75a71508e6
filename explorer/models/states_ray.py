"""``export-states --ray ADDRESS``: forward passes on a Ray cluster, rows written here.

One actor per worker loads the model once (on a GPU when the cluster has GPUs) and runs
batches of token ids; it sends back each layer's states for the batch's real tokens. The
driver tokenises, writes every row and commits the metadata through the same
:class:`~explorer.models.states.RowWriter` as a one-process export, batch after batch in
the same order, so a killed run resumes the same way and the stores are the same. At most
two batches per worker are in flight or waiting to be written (driver memory).

The workers read the model from its converted directory (``model_dir`` in the catalog):
on a multi-node cluster that path must be on a shared file system, or the same path on
every node. Nothing else of the data root is read or written by the workers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.cluster import connect_cluster, worker_share
from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.models.states import RowWriter, StatesJob, batch_ids, pad_id
from explorer.store.states import CorpusRow, StateStore

IN_FLIGHT = 2  # batches per worker submitted or waiting to be written
START_SECONDS = 900.0  # workers not placed by then: the cluster lacks the resources asked for


class ForwardWorker:
    """A Ray actor: the model loaded once, then batches of token ids run through it."""

    def __init__(self, model_dir: str, threads: int):
        import torch

        from explorer.models import surgery
        from explorer.models.loading import load_model

        torch.set_num_threads(threads)
        if not (Path(model_dir) / "config.json").is_file():
            raise ExplorerError(f"the model files are not at {model_dir} on Ray node {socket.gethostname()}: "
                                "put the model cache on a shared path, or at the same path on every node")
        self.model, _ = load_model(Path(model_dir))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray shows a worker only its own GPUs
        self.model.to(self.device)
        self.anat = surgery.anatomy(self.model)

    def shape(self) -> tuple[int, int, str]:
        """(layers stored, width, device)."""
        return self.anat.n_layers + 1, self.anat.d_model, self.device

    def run(self, ids: list[list[int]], pad: int) -> tuple[list[np.ndarray], float]:
        """Each layer's states of the batch's tokens (:func:`flat_states`), and the seconds
        the forward pass took."""
        from explorer.models.capture import capture
        from explorer.models.states import flat_states

        t0 = time.perf_counter()
        cap = capture(self.model, self.anat, ids, pad)
        seconds = time.perf_counter() - t0
        return flat_states(cap), seconds


class RayForward:
    """``workers`` :class:`ForwardWorker` actors on the cluster at ``address`` ('local':
    one started here), ready once their models are loaded; the tokenizer is loaded here."""

    def __init__(self, address: str, model_dir: Path, workers: int, report: Report):
        from explorer.models.loading import load_tokenizer

        self.ray = connect_cluster(address)
        self.tokenizer = load_tokenizer(model_dir)
        num_cpus, num_gpus, threads = worker_share(self.ray, workers)
        where = f"{num_gpus:g} GPU" if num_gpus else f"{num_cpus:g} CPU"
        report(f"starting {workers} Ray worker(s) at {address}, {where} each; each loads {model_dir.name} (5-80 s)")
        remote = self.ray.remote(ForwardWorker).options(num_cpus=num_cpus, num_gpus=num_gpus)
        self.actors = [remote.remote(str(model_dir.resolve()), threads) for _ in range(workers)]
        try:
            shapes = self._ready([a.shape.remote() for a in self.actors], START_SECONDS)
        except BaseException:
            self.close()
            raise
        if len({s[:2] for s in shapes}) != 1:
            self.close()
            raise ExplorerError(f"the Ray workers loaded different models from {model_dir}: {sorted(set(shapes))}")
        self.n_layers, self.dim, _ = shapes[0]
        self.devices = [s[2] for s in shapes]

    def _ready(self, refs: list, timeout: float) -> list:
        _, waiting = self.ray.wait(refs, num_returns=len(refs), timeout=timeout)
        if waiting:
            raise ExplorerError(f"{len(waiting)} of {len(refs)} Ray workers did not start within {timeout:.0f} s: "
                                "does the cluster have the CPUs (or GPUs) free for them? Try fewer --workers")
        return [self._get(r) for r in refs]

    def _get(self, ref: Any) -> Any:
        try:
            return self.ray.get(ref)
        except Exception as exc:  # the task raised, or its worker or node died
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ExplorerError):
                raise ExplorerError(str(cause)) from None
            first = (str(cause or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExplorerError(f"a Ray worker failed: {first}") from None

    def tokenize(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        from explorer.models.capture import tokenize

        return tokenize(self.tokenizer, texts, max_tokens)

    def run(self, store: StateStore, row: CorpusRow, job: StatesJob, progress: Progress | None) -> float:
        """Run the pending documents; returns the longest time a worker spent in forward
        passes (they run side by side)."""
        pending = store.pending_docs(row.corpus_id, 0, row.n_docs)
        done = row.n_docs - len(pending)
        batches = [pending[i : i + job.batch_size] for i in range(0, len(pending), job.batch_size)]
        if not batches:
            return 0.0
        pad = pad_id(self.tokenizer)
        first = self.tokenize([pending[0][1]], 1)
        self._ready([a.run.remote(first, pad) for a in self.actors], START_SECONDS)  # untimed warm-up, as locally
        writer = RowWriter(store, row, self.tokenizer)
        seconds = [0.0] * len(self.actors)
        for batch, ids, layers in self._results(batches, job.max_tokens, pad, seconds):
            writer.add(batch, ids, layers)
            done += len(batch)
            if progress:
                progress("documents", done, row.n_docs)
        writer.commit()
        return max(seconds)

    def _results(self, batches: list, max_tokens: int, pad: int, seconds: list[float]):
        """(batch, ids, layers) in the batches' order; a batch is submitted only while fewer
        than IN_FLIGHT per worker are submitted or waiting."""
        window = IN_FLIGHT * len(self.actors)
        busy = [0] * len(self.actors)
        running: dict[Any, tuple[int, int]] = {}
        ids_of: dict[int, list] = {}
        ready: dict[int, list] = {}
        sent = 0
        for nxt in range(len(batches)):
            while sent < len(batches) and sent < nxt + window:
                ids_of[sent] = batch_ids(self.tokenizer, batches[sent], max_tokens)
                w = busy.index(min(busy))
                running[self.actors[w].run.remote(ids_of[sent], pad)] = (sent, w)
                busy[w] += 1
                sent += 1
            while nxt not in ready:
                (ref,), _ = self.ray.wait(list(running), num_returns=1)
                i, w = running.pop(ref)
                busy[w] -= 1
                ready[i], took = self._get(ref)
                seconds[w] += took
            yield batches[nxt], ids_of.pop(nxt), ready.pop(nxt)

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            self.ray.kill(a)
        self.actors = []
