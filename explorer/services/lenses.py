"""Learned lenses, shared by the CLI and the TUI: ``explorer lens train`` (states exported
once through export-states, then a translator per layer), ``explorer lens fidelity`` (KL
and top-1 agreement per layer on held-out text) and the stored lens for ``--lens tuned``.

Training data: the documents of a corpus (the bundled ``lens_corpus.tsv.gz`` by default:
the Debian Installation Guide in en, fr, de, ru and zh, GPL-2; see
scripts/make_lens_corpus.py) split by document: the last tenth of each language's
documents, in file order, is held out. Training documents are taken round-robin over the
languages, in file order, until ``tokens`` states (position 0 not counted) are reached.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.core.types import Progress, Report
from explorer.errors import ExplorerError
from explorer.lens.kl_settings import (  # noqa: F401 (the CLI's defaults)
    BATCH,
    LR,
    STEPS,
    VOCAB_SAMPLE,
    VOCAB_TOP,
    KLSettings,
)
from explorer.lens.plot import save_fidelity_png  # re-exported for the front ends (light: matplotlib loads on use)

if TYPE_CHECKING:  # importing this module stays light (no numpy, duckdb or torch): the CLI imports it at start-up
    import numpy as np

    from explorer.store.catalog import ModelRow

DEFAULT_TOKENS = 50_000
HELDOUT_SHARE = 0.1
TRAIN_KL_TOKENS = 128  # held-out tokens whose KL is recorded with the lens (fidelity measures more)
FIDELITY_TOKENS = 256  # default cap of `lens fidelity`: each costs a 262,144 x 640 product per layer and lens
MAX_TOKENS = 128  # per document, as export-states
LENSES = ("logit", "tuned")


def bundled_lens_corpus() -> Path:
    return Path(str(resources.files("explorer.data").joinpath("lens_corpus.tsv.gz")))


@dataclass(frozen=True)
class TrainSpec:
    model: str | None = None
    kind: str = "linear"
    corpus: Path | None = None  # None: the bundled multilingual text
    tokens: int = DEFAULT_TOKENS
    force: bool = False
    kl: KLSettings | None = None  # settings for --kind kl (None: its defaults)

    def kl_settings(self):
        return self.kl or KLSettings()

    def asked(self) -> dict:
        """The settings a stored lens must match to be reused."""
        out = {"tokens_asked": self.tokens}
        if self.kind == "kl":
            k = self.kl_settings()
            out.update(steps=k.steps, lr=k.lr, batch=k.batch, seed=k.seed, vocab_asked=k.vocab, init=k.init)
        return out


@dataclass
class TrainResult:
    model: str
    kind: str
    data: str
    corpus: str
    train_tokens: int
    heldout_tokens: int
    path: str
    sha256: str
    seconds: float
    reused: bool
    layers: list[dict] = field(default_factory=list)  # [{layer, kl_logit, kl_tuned, alpha}]
    forward_seconds: float | None = None  # of the forward passes (0 when the states were already exported)
    fit_seconds: float | None = None
    training: dict | None = None  # kl only: steps, lr, batch, seed, vocab, vocab_size, vocab_mass, vocab_rule, device, ...

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def split_documents(docs: list[tuple[str | None, str]]) -> tuple[list[int], list[int]]:
    """(train, held-out) document indices: the last tenth of each language's documents held out."""
    by_lang: dict[str | None, list[int]] = {}
    for i, (lang, _) in enumerate(docs):
        by_lang.setdefault(lang, []).append(i)
    train, held = [], []
    for ids in by_lang.values():
        n_held = max(1, round(len(ids) * HELDOUT_SHARE)) if len(ids) > 1 else 0
        train.append(ids[: len(ids) - n_held])
        held += ids[len(ids) - n_held :]
    return _round_robin(train), sorted(held)


def _round_robin(lists: list[list[int]]) -> list[int]:
    out, k = [], 0
    while any(k < len(x) for x in lists):
        out += [x[k] for x in lists if k < len(x)]
        k += 1
    return out


def _take(order: list[int], counts: list[int], tokens: int) -> list[int]:
    """Documents from ``order`` until their states past position 0 reach ``tokens``."""
    got, taken = 0, []
    for i in order:
        if got >= tokens:
            break
        taken.append(i)
        got += max(counts[i] - 1, 0)
    return sorted(taken)


def check_train(spec: TrainSpec) -> list[tuple[str | None, str]]:
    """The documents of ``spec``, every setting checked, before any model is looked up."""
    from explorer.lens.learned import check_kind
    from explorer.models.states import read_corpus

    check_kind(spec.kind)
    if spec.kind == "kl":
        from explorer.lens.kl_settings import check_settings

        check_settings(spec.kl_settings())
    if spec.tokens < 100:
        raise ExplorerError(f"--tokens must be at least 100 (got {spec.tokens})")
    docs = read_corpus(spec.corpus or bundled_lens_corpus())
    train, held = split_documents(docs)
    if not train or not held:
        raise ExplorerError(f"corpus {spec.corpus} needs at least two documents per language (one is held out)")
    return docs


def _data_label(spec: TrainSpec) -> str:
    return "bundled" if spec.corpus is None else str(spec.corpus)


def train_lens(engine, spec: TrainSpec, *, report: Report = lambda s: None,
               progress: Progress | None = None) -> TrainResult:
    """``explorer lens train``: reuse the stored lens unless ``spec.force``, else export the
    states (reused when already exported), fit, measure on held-out text and record."""
    from explorer.lens.runner import token_counts
    from explorer.services.lens import require_lens
    from explorer.store.lenses import lens_row

    docs = check_train(spec)
    t0 = time.perf_counter()
    m = engine.model(spec.model, report=report, progress=progress)
    require_lens(m)
    stored = lens_row(engine.catalog, m.model_id, spec.kind)
    if stored is not None and not spec.force:
        if stored.data != _data_label(spec) or any(stored.settings.get(k) != v for k, v in spec.asked().items()):
            raise ExplorerError(f"a {spec.kind} lens of {m.name} is stored, trained on {stored.data} "
                                f"({stored.train_tokens:,} tokens) with other settings; pass --force to retrain it")
        report(f"the {spec.kind} lens of {m.name} is already trained; --force retrains it")
        return _result(m, stored, reused=True)
    counts = token_counts(m, [t for _, t in docs], MAX_TOKENS)
    if counts is None:
        raise ExplorerError(f"{m.name} has no tokenizer.json to count tokens with")
    order, held = split_documents(docs)
    chosen = _take(order, counts, spec.tokens) + held  # training documents first, then the held-out ones
    corpus, forward = _export(engine, m, spec, [docs[i] for i in chosen], report, progress)
    return _fit_and_record(engine, m, spec, corpus, n_train=len(chosen) - len(held), t0=t0, report=report,
                           progress=progress, forward=forward)


def _export(engine, m: ModelRow, spec: TrainSpec, docs, report: Report, progress: Progress | None):
    from explorer.models.states import StatesJob, corpus_name, export_corpus
    from explorer.store.states import StateStore

    digest = hashlib.sha256("\n".join(f"{lang}\t{text}" for lang, text in docs).encode()).hexdigest()[:8]
    name = f"lens-{corpus_name(spec.corpus or bundled_lens_corpus(), [])}-{digest}"
    job = StatesJob(tuple(docs), name, _data_label(spec), "float32", 8, MAX_TOKENS)
    done = export_corpus(m, engine.root, engine.catalog, job, report=report, progress=progress)
    return StateStore(engine.catalog).corpus(m.model_id, name), done.forward_seconds


def _rows(engine, corpus, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """State rows (train, held-out) of the lens corpus, position 0 of each document left out."""
    import numpy as np

    from explorer.store.states import StateStore

    train, held = [], []
    for doc_id, first, n in StateStore(engine.catalog).document_spans(corpus.corpus_id):
        (train if doc_id < n_train else held).append(np.arange(first + 1, first + n))
    return np.concatenate(train or [np.zeros(0, int)]), np.concatenate(held or [np.zeros(0, int)])


def _layers(engine, corpus) -> list[np.ndarray]:
    import numpy as np

    from explorer.store.states import layer_file

    return [np.load(engine.root / corpus.path / layer_file(layer), mmap_mode="r") for layer in range(corpus.n_layers)]


def _fit_and_record(engine, m: ModelRow, spec: TrainSpec, corpus, *, n_train: int, t0: float, report: Report,
                    progress: Progress | None, forward: float) -> TrainResult:
    import numpy as np

    from explorer.lens.fidelity import layer_fidelity
    from explorer.lens.learned import fit_linear, spaced
    from explorer.lens.runner import ModelRunner
    from explorer.store.files import atomic_path, sha256_file
    from explorer.store.lenses import LensRow, lens_row, record_lens

    train, held = _rows(engine, corpus, n_train)
    layers = _layers(engine, corpus)
    report(f"loading {m.name}'s weights for its final norm and unembedding")
    runner = ModelRunner(m)
    report(f"fitting {len(layers) - 1} {spec.kind} translators on {len(train):,} states")
    t_fit = time.perf_counter()
    extra: dict = {}
    if spec.kind == "kl":
        translator, extra = _train_kl(engine, m, spec, corpus, runner, layers, train, report, progress)
    else:
        translator = fit_linear(layers, train, runner.final_normed, progress)  # held-out rows are not looked at
    fit_seconds = time.perf_counter() - t_fit
    sample = spaced(held, TRAIN_KL_TOKENS)
    report(f"measuring both lenses on {len(sample)} held-out tokens")
    rows = [np.asarray(x[sample]) for x in layers]
    fid = layer_fidelity(runner.anatomy, runner.model, rows, translator, progress)
    rel = f"lenses/{m.name}/{spec.kind}.npz"
    with atomic_path(engine.root / rel) as tmp:
        translator.save(tmp)
    path = engine.root / rel
    settings = {**spec.asked(), **extra, "alphas": translator.alphas.tolist(), "train_docs": n_train,
                "heldout_docs": corpus.n_docs - n_train, "target": "pre-norm last layer", "readout": "logit lens",
                "forward_seconds": round(forward, 1), "fit_seconds": round(fit_seconds, 1)}
    row = LensRow(m.model_id, spec.kind, _data_label(spec), corpus.corpus_id, len(train), len(sample), rel,
                  path.stat().st_size, sha256_file(path), settings, [f.kl_tuned for f in fid], [f.kl_logit for f in fid],
                  time.perf_counter() - t0)
    record_lens(engine.catalog, row)
    return _result(m, lens_row(engine.catalog, m.model_id, spec.kind), reused=False)


def _train_kl(engine, m: ModelRow, spec: TrainSpec, corpus, runner, layers, train, report: Report,
              progress: Progress | None):
    """The kl translator, started from the stored linear lens when it was fitted on the same
    states, else from a linear lens fitted now (or from the identity, ``init="identity"``),
    trained on the training rows but their validation part, which then decides per layer
    whether training helped (:func:`keep_better`). The held-out documents are not read."""
    import numpy as np

    from explorer.lens.fidelity import layer_fidelity
    from explorer.lens.learned import Translator, fit_linear, spaced, validation_split
    from explorer.lens.tuned import device, identity, train_kl
    from explorer.store.lenses import checked_path, lens_row

    k = spec.kl_settings()
    stored = lens_row(engine.catalog, m.model_id, "linear")
    if k.init == "identity":
        init, start = identity(len(layers) - 1, layers[0].shape[1]), "identity"
    elif stored is not None and stored.corpus_id == corpus.corpus_id:
        init, start = Translator.load(checked_path(engine.root, stored)), "stored linear lens"
    else:
        report("fitting the linear lens to start from")
        init, start = fit_linear(layers, train, runner.final_normed, progress), "linear lens fitted now"
    fit, val = validation_split(np.asarray(train))
    report(f"training the kl lens from the {start}: {k.steps} Adam steps of {k.batch} tokens on {device()}")
    translator, info = train_kl(runner.anatomy, runner.model, layers, fit, init, k, progress)
    vrows = [np.asarray(x[spaced(val, TRAIN_KL_TOKENS)]) for x in layers]
    kept = keep_better(layer_fidelity(runner.anatomy, runner.model, vrows, translator, progress),
                       layer_fidelity(runner.anatomy, runner.model, vrows, init, progress), translator, init)
    return translator, {**info, "start": start, "kept_start_layers": kept}


def keep_better(fid: list, fid_start: list, translator, start) -> list[int]:
    """Per layer, keep the starting translator where training did not lower the KL on the
    validation rows (part of the training text, left out of the kl training; early stopping
    at step 0 for that layer): ``translator`` is changed in place; returns the layers that
    kept the start."""
    kept = [f.layer for f, g in zip(fid[:-1], fid_start[:-1]) if g.kl_tuned <= f.kl_tuned]
    for layer in kept:
        translator.A[layer], translator.b[layer] = start.A[layer], start.b[layer]
    return kept


def _result(m: ModelRow, row, reused: bool) -> TrainResult:
    alphas = row.settings.get("alphas", [])
    layers = [{"layer": i, "kl_logit": kl, "kl_tuned": kt, "alpha": alphas[i] if i < len(alphas) else None}
              for i, (kl, kt) in enumerate(zip(row.kl_logit, row.kl_tuned))]
    return TrainResult(m.name, row.kind, row.data, str(row.corpus_id), row.train_tokens, row.heldout_tokens, row.path,
                       row.sha256, row.seconds, reused, layers, row.settings.get("forward_seconds"),
                       row.settings.get("fit_seconds"), _training(row.settings) if row.kind == "kl" else None)


TRAINING_KEYS = ("start", "steps", "lr", "batch", "seed", "init", "device", "vocab", "vocab_size", "vocab_mass",
                 "vocab_rule", "train_kl_first", "train_kl_last", "kept_start_layers")


def _training(settings: dict) -> dict:
    return {k: settings.get(k) for k in TRAINING_KEYS}


# -- reading a stored lens ----------------------------------------------------------------


def stored_lens(engine, m: ModelRow, kind: str | None = None):
    """(LensRow, Translator) of the model's learned lens: ``kind``, or with none given the
    ``kl`` lens when one is stored (trained to the objective fidelity measures), else the
    ``linear`` one; a one-line error naming `explorer lens train` when there is none."""
    from explorer.lens.learned import Translator
    from explorer.store.lenses import checked_path, lens_rows

    rows = [r for r in lens_rows(engine.catalog, m.model_id) if kind is None or r.kind == kind]
    rows.sort(key=lambda r: r.kind != "kl")  # stable: kl first, then the latest trained
    if not rows:
        what = f"{kind} lens" if kind else "learned lens"
        raise ExplorerError(f"no {what} stored for {m.name}; run `explorer lens train --model {m.name}`")
    return rows[0], Translator.load(checked_path(engine.root, rows[0]))


def check_lens(lens: str) -> None:
    if lens not in LENSES:
        raise ExplorerError(f"unknown lens {lens!r}; choose logit or tuned")


@dataclass
class FidelityReport:
    model: str
    kind: str
    data: str
    heldout_tokens: int
    layers: list  # LayerFidelity

    def to_dict(self) -> dict:
        return {"model": self.model, "kind": self.kind, "data": self.data, "heldout_tokens": self.heldout_tokens,
                "layers": [f.to_dict() for f in self.layers]}


def fidelity(engine, model: str | None = None, tokens: int = FIDELITY_TOKENS, *, report: Report = lambda s: None,
             progress: Progress | None = None) -> FidelityReport:
    """``explorer lens fidelity``: both lenses on up to ``tokens`` held-out states of the
    stored learned lens's training corpus (documents never fitted on)."""
    import numpy as np

    from explorer.lens.fidelity import layer_fidelity
    from explorer.lens.learned import spaced
    from explorer.lens.runner import ModelRunner
    from explorer.store.states import StateStore

    if tokens < 1:
        raise ExplorerError(f"--tokens must be at least 1 (got {tokens})")
    m = engine.model(model, auto_export=False)
    row, translator = stored_lens(engine, m)
    corpus = next((c for c in StateStore(engine.catalog).corpora(m.model_id) if c.corpus_id == row.corpus_id), None)
    if corpus is None or corpus.status != "done":
        raise ExplorerError(f"the states the {row.kind} lens of {m.name} was trained on are gone; "
                            f"run `explorer lens train --model {m.name} --force`")
    _, held = _rows(engine, corpus, int(row.settings["train_docs"]))
    sample = spaced(held, tokens)
    layers = [np.asarray(x[sample]) for x in _layers(engine, corpus)]
    report(f"loading {m.name}'s weights")
    runner = ModelRunner(m)
    report(f"reading {len(sample)} held-out tokens with both lenses at {len(layers)} layers")
    fid = layer_fidelity(runner.anatomy, runner.model, layers, translator, progress)
    return FidelityReport(m.name, row.kind, row.data, len(sample), fid)
