"""What every experiment provides, and what it is given while it runs.

An experiment is a module-level object with:

* ``name``, ``description``;
* ``Config``: a frozen dataclass with defaults (every field a JSON scalar or a tuple of
  them), and ``presets``: ``{"smoke": {...}, "paper": {...}}`` overrides of it;
* ``points(config) -> list[dict]``: the sweep, as per-run overrides of ``config`` (a
  single run is ``[{}]``); each point becomes one row of ``runs``;
* ``run(config, ctx) -> RunOutput``: one run at one point (``config`` has the point's
  overrides applied). It reports metrics with ``ctx.metric`` as it goes, calls
  ``ctx.progress`` for the progress bar and ``ctx.check()`` often enough (at least every
  second or so) for a cancel to stop it cleanly;
* ``summarize(config, finished) -> Summary``: sweep-level results from the finished runs
  (``[(point_config, RunOutput.summary), ...]``), e.g. a fit and a figure.

Runs execute in worker processes (or Ray tasks) and must not touch the catalog: what
they produce comes back in :class:`RunOutput` and the runner stores it. torch is
imported inside ``run`` only, so ``explorer experiment list`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from explorer.experiments.events import Event, RunLog, RunMetric, RunProgress


class Cancelled(Exception):
    """Raised by :meth:`RunContext.check` when the user cancelled the sweep."""


@dataclass(frozen=True)
class TrainedVectors:
    """Trained embeddings to register as a vector set (model ``name``, set ``input``)."""

    name: str
    words: list[str]
    matrix: Any  # float32 numpy array, row i = words[i]
    note: str = ""


@dataclass
class RunOutput:
    summary: dict[str, Any]  # JSON-safe final results of this run (stored in runs.summary)
    vectors: list[TrainedVectors] = field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # extra per-experiment rows, by table


@dataclass
class Summary:
    result: dict[str, Any]  # JSON-safe sweep results (stored in sweeps.summary, printed by the CLI)
    text: str = ""  # a few lines for people
    figure: Any = None  # a matplotlib Figure, saved by the runner when --png is given


class RunContext:
    """Given to ``run``: metrics, progress and cancellation, routed to the runner (as the
    events of :mod:`explorer.experiments.events`)."""

    def __init__(
        self,
        run_id: int,
        seed: int,
        device: str = "cpu",
        emit: Callable[[Event], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        threads: int | None = None,
        root: Any = None,
    ):
        self.run_id = run_id
        self.seed = seed
        self.device = device
        self.threads = threads
        self.root = root  # data root, for experiments that read stored vectors (read-only)
        self._emit = emit or (lambda msg: None)
        self._cancelled = cancelled or (lambda: False)

    def metric(self, step: int, name: str, value: float) -> None:
        """Record ``name = value`` at ``step`` (lands in the ``metrics`` table while running)."""
        self._emit(RunMetric(self.run_id, int(step), name, float(value)))

    def progress(self, step: int, total: int, **values: float) -> None:
        """Advance this run's progress bar; ``values`` (e.g. loss=0.3) are shown beside it."""
        self._emit(RunProgress(self.run_id, int(step), int(total), {k: float(v) for k, v in values.items()}))

    def log(self, text: str) -> None:
        self._emit(RunLog(self.run_id, str(text)))

    def check(self) -> None:
        """Raise :class:`Cancelled` if the sweep was cancelled."""
        if self._cancelled():
            raise Cancelled()


class Experiment(Protocol):
    name: str
    description: str
    Config: type
    presets: dict[str, dict[str, Any]]

    def points(self, config: Any) -> list[dict[str, Any]]: ...

    def run(self, config: Any, ctx: RunContext) -> RunOutput: ...

    def summarize(self, config: Any, finished: list[tuple[Any, dict[str, Any]]]) -> Summary: ...


def config_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def apply(config: Any, overrides: dict[str, Any]) -> Any:
    """``config`` with ``overrides`` applied, values coerced to the fields' types."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        from explorer.errors import ExplorerError

        raise ExplorerError(
            f"unknown setting {unknown[0]!r} for {type(config).__name__}; settings: {', '.join(fields)}"
        )
    return dataclasses.replace(
        config, **{k: coerce(getattr(config, k), v, k, _element(fields[k])) for k, v in overrides.items()})


_ELEMENTS = {"int": int, "float": float, "bool": bool, "str": str}


def _element(f: dataclasses.Field) -> type | None:
    """The element type of a ``tuple[int, ...]`` field (also when its default is empty)."""
    text = f.type if isinstance(f.type, str) else str(f.type)
    match = re.match(r"\s*(?:typing\.)?(?:tuple|Tuple)\[\s*(\w+)", text)
    return _ELEMENTS.get(match.group(1)) if match else None


def coerce(current: Any, value: Any, key: str = "", element: type | None = None) -> Any:
    """Turn a ``--set key=value`` string (or JSON value) into the type of ``current``
    (``element``: the element type of a tuple field)."""
    from explorer.errors import ExplorerError

    if not isinstance(value, str) or isinstance(current, str):
        if isinstance(current, tuple) and isinstance(value, list):
            return tuple(value)
        return value
    try:
        if isinstance(current, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple):
            parsed = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
            elem = element or (type(current[0]) if current else str)
            return tuple(coerce(elem(), v if isinstance(v, str) else v, key) if elem is not str else str(v).strip()
                         for v in parsed)
        if current is None:
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ExplorerError(f"--set {key}={value}: expected {type(current).__name__}") from None
    return value
