"""The DuckDB catalog: schema, numbered migrations and typed accessors.

The catalog is the source of truth. A vector set is visible only once its row exists,
and the row is written last (after its files are in place), so a killed export never
leaves a half-visible set. Connections are short-lived: other processes can read
between writes.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import duckdb

from explorer.errors import ExplorerError

CATALOG_FILE = "catalog.duckdb"

# Numbered migrations: append only, never edit a released one.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "models, vector sets, tokens, files",
        """
        CREATE TABLE models (
            model_id     INTEGER PRIMARY KEY,
            name         VARCHAR NOT NULL UNIQUE,
            source       VARCHAR NOT NULL,      -- what the user named: alias, path or hub id
            source_kind  VARCHAR NOT NULL,      -- bundled | gguf | hf-dir | hf-cache
            model_type   VARCHAR,               -- config.model_type, e.g. gemma3_text
            architecture VARCHAR,               -- e.g. Gemma3ForCausalLM
            n_layers     INTEGER,
            d_model      INTEGER,
            vocab_size   INTEGER,
            tied         BOOLEAN,               -- unembedding is the input embedding
            embed_scale  DOUBLE,                -- multiplier applied after lookup (Gemma: sqrt(d))
            model_dir    VARCHAR,               -- converted safetensors + tokenizer.json
            config       JSON,
            created_at   TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE vector_sets (
            set_id     INTEGER PRIMARY KEY,
            model_id   INTEGER NOT NULL,
            name       VARCHAR NOT NULL,        -- input | output | ...
            kind       VARCHAR NOT NULL,        -- token (rows are token ids)
            n_rows     BIGINT NOT NULL,
            dim        INTEGER NOT NULL,
            dtype      VARCHAR NOT NULL,
            same_as    INTEGER,                 -- tied: the set whose files hold the rows
            path       VARCHAR,                 -- directory relative to the data root
            note       VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp,
            UNIQUE (model_id, name)
        );
        CREATE TABLE tokens (
            model_id      INTEGER NOT NULL,
            token_id      INTEGER NOT NULL,
            raw           VARCHAR NOT NULL,     -- vocabulary string, e.g. '▁king'
            text          VARCHAR NOT NULL,     -- decoded, e.g. ' king'
            leading_space BOOLEAN NOT NULL,     -- word-initial marker present
            script        VARCHAR NOT NULL,     -- latin | cjk | cyrillic | ... | digit | punct | space | mixed | special | byte | other
            is_special    BOOLEAN NOT NULL,
            is_byte       BOOLEAN NOT NULL,     -- byte-fallback token such as <0xE2>
            PRIMARY KEY (model_id, token_id)
        );
        CREATE TABLE files (
            set_id     INTEGER NOT NULL,
            role       VARCHAR NOT NULL,        -- vectors | norms | index
            path       VARCHAR NOT NULL,        -- relative to the data root
            bytes      BIGINT NOT NULL,
            sha256     VARCHAR NOT NULL,
            mtime_ns   BIGINT NOT NULL,
            kind       VARCHAR,                 -- for role=index: faiss index type
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (set_id, role)
        );
        CREATE VIEW index_files AS SELECT * FROM files WHERE role = 'index';
        """,
    ),
    (
        2,
        "indexed word lookup on tokens",
        """
        ALTER TABLE tokens ADD COLUMN lookup VARCHAR;  -- lower(ltrim(text)): case- and space-free key
        CREATE INDEX tokens_lookup ON tokens (lookup);
        CREATE INDEX tokens_raw ON tokens (raw);
        UPDATE tokens SET lookup = lower(ltrim(text));
        """,
    ),
    (
        3,
        "hidden states: corpora, documents, states, layers, compressed indexes",
        """
        CREATE TABLE corpora (
            corpus_id   INTEGER PRIMARY KEY,
            model_id    INTEGER NOT NULL,
            name        VARCHAR NOT NULL,
            source      VARCHAR,                -- corpus file or 'prompts'
            n_docs      INTEGER NOT NULL,       -- documents planned
            n_layers    INTEGER NOT NULL,       -- hidden states per token (embedding output + blocks)
            dim         INTEGER NOT NULL,
            dtype       VARCHAR NOT NULL,       -- float32 | float16 on disk
            path        VARCHAR NOT NULL,       -- directory relative to the data root
            status      VARCHAR NOT NULL,       -- running | done
            committed   BIGINT NOT NULL DEFAULT 0,  -- state rows durable in every layer file
            created_at  TIMESTAMP DEFAULT current_timestamp,
            finished_at TIMESTAMP,
            UNIQUE (model_id, name)
        );
        CREATE TABLE documents (
            corpus_id INTEGER NOT NULL,
            doc_id    INTEGER NOT NULL,         -- line number in the corpus, from 0
            lang      VARCHAR,
            text      VARCHAR NOT NULL,
            n_tokens  INTEGER NOT NULL,
            first_state BIGINT NOT NULL,        -- its rows are first_state .. first_state + n_tokens - 1
            done      BOOLEAN NOT NULL,         -- its states are committed
            PRIMARY KEY (corpus_id, doc_id)
        );
        CREATE TABLE states (
            corpus_id INTEGER NOT NULL,
            state_id  BIGINT NOT NULL,          -- row in every layer's matrix (= FAISS id)
            doc_id    INTEGER NOT NULL,
            position  INTEGER NOT NULL,         -- token position in the document (0 = BOS when present)
            token_id  INTEGER NOT NULL,
            token     VARCHAR NOT NULL,         -- decoded token text
            PRIMARY KEY (corpus_id, state_id)
        );
        CREATE TABLE state_indexes (
            corpus_id     INTEGER NOT NULL,
            layer         INTEGER NOT NULL,
            kind          VARCHAR NOT NULL,     -- sq8 | ivfpq (ivfpq re-ranks exactly)
            path          VARCHAR NOT NULL,
            bytes         BIGINT NOT NULL,
            sha256        VARCHAR NOT NULL,
            recall_at_10  DOUBLE,               -- against exact search, measured at build
            params        JSON,
            build_seconds DOUBLE,
            created_at    TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (corpus_id, layer, kind)
        );
        CREATE VIEW hidden_states AS
            SELECT c.name AS corpus, m.name AS model, s.doc_id AS document, d.lang, s.position,
                   s.token_id, s.token, s.state_id, c.n_layers, c.dim
            FROM states s JOIN documents d USING (corpus_id, doc_id)
                 JOIN corpora c USING (corpus_id) JOIN models m USING (model_id);
        """,
    ),
    (
        4,
        "logit-lens language attribution runs",
        """
        CREATE TABLE lens_runs (
            run_id     INTEGER PRIMARY KEY,
            model_id   INTEGER NOT NULL,
            task       VARCHAR NOT NULL,        -- translate | repeat | cloze
            config     JSON NOT NULL,           -- languages, shots, seed, strategy, word list
            entries    INTEGER NOT NULL,        -- entries used (after selection)
            dropped    JSON,                    -- entries dropped, by reason
            accuracy   DOUBLE,                  -- share whose last-layer top-1 token starts the target word
            created_at TIMESTAMP DEFAULT current_timestamp
        );
        CREATE TABLE lens_layers (
            run_id       INTEGER NOT NULL,
            layer        INTEGER NOT NULL,      -- 0 = embedding output
            p_target     DOUBLE,
            p_target_ci  DOUBLE,                -- half-width of the 95% interval
            p_english    DOUBLE,
            p_english_ci DOUBLE,
            entropy      DOUBLE,                -- bits
            energy       DOUBLE,                -- token energy (1 = random direction)
            top1         VARCHAR,               -- most frequent top-1 token
            PRIMARY KEY (run_id, layer)
        );
        CREATE TABLE lens_entries (
            run_id    INTEGER NOT NULL,
            entry     INTEGER NOT NULL,
            concept   VARCHAR,
            target    VARCHAR,
            english   VARCHAR,
            prompt    VARCHAR,
            top1_last VARCHAR,                  -- top-1 token at the last layer
            correct   BOOLEAN,
            p_target  DOUBLE[],                 -- per layer
            p_english DOUBLE[],
            PRIMARY KEY (run_id, entry)
        );
        """,
    ),
    (5, "views for SQL, and a description of every table and view", "-- built from DESCRIPTIONS below"),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# One line per table and view, shown by `explorer schema` (stored as DuckDB comments).
DESCRIPTIONS = {
    "schema_migrations": "Numbered schema migrations applied to this catalog.",
    "models": "Models known to the store: source, architecture, sizes, tied embeddings, embed scale.",
    "vector_sets": "Matrices stored per model (input embedding, unembedding; tied sets point at their twin).",
    "tokens": "Every vocabulary entry of each model: raw and decoded text, word-start marker, script, flags.",
    "files": "Every stored file with its size and SHA-256 (vectors, norms, FAISS index).",
    "index_files": "The FAISS index files among `files`.",
    "corpora": "Hidden-state exports: one row per corpus and model, with layers, width, dtype and progress.",
    "documents": "Documents of each corpus, with language, token count and where their rows start.",
    "states": "One row per token of each corpus: its row (state_id) in every layer matrix, position and token.",
    "state_indexes": "Compressed FAISS indexes over hidden states, with recall@10 measured when built.",
    "hidden_states": "View: states joined with their corpus, model, document and language.",
    "lens_runs": "Logit-lens language-attribution runs: task, configuration, entries used, accuracy.",
    "lens_layers": "Per-layer results of each lens run: target and English probability, entropy, energy.",
    "lens_entries": "Per-entry results of each lens run: prompt, words, last-layer top-1, per-layer probabilities.",
    "model_summary": "View: each model with its vector sets, token count and stored corpora.",
    "lens_summary": "View: lens runs with model name, languages, accuracy and where English peaks.",
    "token_scripts": "View: number of tokens per model and script.",
}

VIEWS_V5 = """
CREATE VIEW model_summary AS
    SELECT m.name AS model, m.architecture, m.n_layers, m.d_model, m.vocab_size, m.tied,
           (SELECT string_agg(v.name, ', ' ORDER BY v.set_id) FROM vector_sets v WHERE v.model_id = m.model_id) AS vector_sets,
           (SELECT count(*) FROM tokens t WHERE t.model_id = m.model_id) AS tokens,
           (SELECT count(*) FROM corpora c WHERE c.model_id = m.model_id) AS corpora
    FROM models m;
CREATE VIEW lens_summary AS
    SELECT r.run_id, m.name AS model, r.task, r.config->>'from' AS src, r.config->>'to' AS tgt,
           r.config->>'lang' AS lang, r.entries, r.accuracy,
           arg_max(l.layer, l.p_english) AS english_peak_layer, max(l.p_english) AS english_peak,
           max_by(l.p_target, l.layer) AS p_target_last, max_by(l.p_english, l.layer) AS p_english_last, r.created_at
    FROM lens_runs r JOIN models m USING (model_id) JOIN lens_layers l USING (run_id)
    GROUP BY ALL;
CREATE VIEW token_scripts AS
    SELECT m.name AS model, t.script, count(*) AS tokens
    FROM tokens t JOIN models m USING (model_id) GROUP BY ALL;
"""


def _v5_sql() -> str:
    parts = [VIEWS_V5]
    for name, text in DESCRIPTIONS.items():
        kind = "VIEW" if name in ("index_files", "hidden_states", "model_summary", "lens_summary", "token_scripts") else "TABLE"
        parts.append(f"COMMENT ON {kind} {name} IS '{text.replace(chr(39), chr(39) * 2)}';")
    return "\n".join(parts)


MIGRATIONS[-1] = (5, MIGRATIONS[-1][1], _v5_sql())


@dataclass(frozen=True)
class ModelRow:
    model_id: int
    name: str
    source: str
    source_kind: str
    model_type: str | None
    architecture: str | None
    n_layers: int | None
    d_model: int | None
    vocab_size: int | None
    tied: bool | None
    embed_scale: float | None
    model_dir: str | None


@dataclass(frozen=True)
class VectorSetRow:
    set_id: int
    model_id: int
    name: str
    kind: str
    n_rows: int
    dim: int
    dtype: str
    same_as: int | None
    path: str | None
    note: str | None


@dataclass(frozen=True)
class FileRow:
    set_id: int
    role: str
    path: str
    bytes: int
    sha256: str
    mtime_ns: int
    kind: str | None


# One cached read-only connection per catalog file and process: DuckDB refuses a
# read-write connection to a file that the same process holds open read-only, so every
# writer closes the cached reader first (see Catalog.writer).
_READERS: dict[str, duckdb.DuckDBPyConnection] = {}
_MIGRATED: set[str] = set()  # catalog files this process has brought up to date


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg or "conflicting" in msg or "being used" in msg


def connect(path: Path, read_only: bool, timeout: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open the catalog, retrying while another process holds the write lock."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            # readers cannot touch files outside the catalog (a --where predicate is user SQL)
            config = {"enable_external_access": False} if read_only else {}
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as exc:  # IOException on lock conflicts
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise ExplorerError(
                        f"catalog {path} is busy (another explorer process is writing); try again"
                    ) from None
                raise ExplorerError(f"cannot open catalog {path}: {str(exc).splitlines()[0]}") from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.5)


class Catalog:
    """Typed access to the catalog. Each method opens a short-lived connection."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / CATALOG_FILE

    def close(self) -> None:
        """Release this process's cached read connection to the catalog file."""
        con = _READERS.pop(self._key, None)
        if con is not None:
            con.close()

    @property
    def _key(self) -> str:
        return str(self.path.resolve())

    # -- connections -------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def reader(self) -> duckdb.DuckDBPyConnection:
        if not self.path.exists():
            self.migrate()
        con = connect(self.path, read_only=True)
        version = _version(con)
        if version < SCHEMA_VERSION:
            con.close()
            self.migrate()
            con = connect(self.path, read_only=True)
        elif version > SCHEMA_VERSION:
            con.close()
            raise ExplorerError(
                f"catalog {self.path} has schema v{version}, newer than this explorer (v{SCHEMA_VERSION}); upgrade explorer"
            )
        return con

    def writer(self) -> duckdb.DuckDBPyConnection:
        self.close()  # one process cannot hold read-only and read-write connections at once
        self.root.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        con = connect(self.path, read_only=False)
        if fresh or self._key not in _MIGRATED:  # once per file and process, not on every write
            _apply_migrations(con)
            _MIGRATED.add(self._key)
        return con

    def migrate(self) -> int:
        _MIGRATED.discard(self._key)  # an explicit migration always checks the file
        con = self.writer()
        try:
            return _version(con)
        finally:
            con.close()

    # -- reads -------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a read query on a cached read-only connection (opening one costs ~40 ms)."""
        con = _READERS.get(self._key)
        if con is None:
            con = _READERS[self._key] = self.reader()
        return con.execute(sql, params).fetchall()

    def models(self) -> list[ModelRow]:
        rows = self.query(f"SELECT {_cols(ModelRow)} FROM models ORDER BY model_id")
        return [ModelRow(*r) for r in rows]

    def model(self, name: str) -> ModelRow | None:
        rows = self.query(f"SELECT {_cols(ModelRow)} FROM models WHERE name = ?", [name])
        return ModelRow(*rows[0]) if rows else None

    def model_by_id(self, model_id: int) -> ModelRow:
        rows = self.query(f"SELECT {_cols(ModelRow)} FROM models WHERE model_id = ?", [model_id])
        return ModelRow(*rows[0])

    def vector_sets(self, model_id: int | None = None) -> list[VectorSetRow]:
        where, params = ("WHERE model_id = ?", [model_id]) if model_id is not None else ("", [])
        rows = self.query(f"SELECT {_cols(VectorSetRow)} FROM vector_sets {where} ORDER BY set_id", params)
        return [VectorSetRow(*r) for r in rows]

    def vector_set(self, model_id: int, name: str) -> VectorSetRow | None:
        rows = self.query(
            f"SELECT {_cols(VectorSetRow)} FROM vector_sets WHERE model_id = ? AND name = ?", [model_id, name]
        )
        return VectorSetRow(*rows[0]) if rows else None

    def vector_set_by_id(self, set_id: int) -> VectorSetRow:
        rows = self.query(f"SELECT {_cols(VectorSetRow)} FROM vector_sets WHERE set_id = ?", [set_id])
        return VectorSetRow(*rows[0])

    def files(self, set_id: int) -> dict[str, FileRow]:
        rows = self.query(f"SELECT {_cols(FileRow)} FROM files WHERE set_id = ?", [set_id])
        return {r[1]: FileRow(*r) for r in rows}

    def token_count(self, model_id: int) -> int:
        return self.query("SELECT count(*) FROM tokens WHERE model_id = ?", [model_id])[0][0]

    # -- writes ------------------------------------------------------------------
    def upsert_model(self, **fields: Any) -> int:
        fields = dict(fields)
        if isinstance(fields.get("config"), dict):
            fields["config"] = json.dumps(fields["config"], default=str)
        con = self.writer()
        try:
            con.execute("BEGIN")
            row = con.execute("SELECT model_id FROM models WHERE name = ?", [fields["name"]]).fetchone()
            if row:
                model_id = row[0]
                sets = ", ".join(f"{k} = ?" for k in fields)
                con.execute(f"UPDATE models SET {sets} WHERE model_id = ?", [*fields.values(), model_id])
            else:
                model_id = _next_id(con, "models", "model_id")
                names = ", ".join(["model_id", *fields])
                marks = ", ".join("?" * (len(fields) + 1))
                con.execute(f"INSERT INTO models ({names}) VALUES ({marks})", [model_id, *fields.values()])
            con.execute("COMMIT")
            return model_id
        finally:
            con.close()

    def replace_tokens(self, model_id: int, columns: dict[str, Any]) -> None:
        """Replace a model's token table in one transaction (columns: numpy arrays)."""
        con = self.writer()
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM tokens WHERE model_id = ?", [model_id])
            tok = columns  # noqa: F841 - read by DuckDB's replacement scan below
            con.execute(
                "INSERT INTO tokens (model_id, token_id, raw, text, leading_space, script, is_special, is_byte, lookup) "
                "SELECT ?, token_id, raw, text, leading_space, script, is_special, is_byte, lower(ltrim(text)) FROM tok",
                [model_id],
            )
            con.execute("COMMIT")
        finally:
            con.close()

    def register_vector_set(self, model_id: int, name: str, files: Iterable[FileRow] = (), **fields: Any) -> int:
        """Write a vector set's row and its files' rows last, atomically."""
        con = self.writer()
        try:
            con.execute("BEGIN")
            old = con.execute(
                "SELECT set_id FROM vector_sets WHERE model_id = ? AND name = ?", [model_id, name]
            ).fetchone()
            if old:
                set_id = old[0]
                con.execute("DELETE FROM files WHERE set_id = ?", [set_id])
                con.execute("DELETE FROM vector_sets WHERE set_id = ?", [set_id])
            else:
                set_id = _next_id(con, "vector_sets", "set_id")
            cols = {"set_id": set_id, "model_id": model_id, "name": name, **fields}
            con.execute(
                f"INSERT INTO vector_sets ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                list(cols.values()),
            )
            for f in files:
                _insert_file(con, FileRow(set_id, f.role, f.path, f.bytes, f.sha256, f.mtime_ns, f.kind))
            con.execute("COMMIT")
            return set_id
        finally:
            con.close()

    def put_file(self, row: FileRow) -> None:
        con = self.writer()
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM files WHERE set_id = ? AND role = ?", [row.set_id, row.role])
            _insert_file(con, row)
            con.execute("COMMIT")
        finally:
            con.close()

    def delete_model(self, model_id: int) -> None:
        con = self.writer()
        try:
            con.execute("BEGIN")
            con.execute("DELETE FROM files WHERE set_id IN (SELECT set_id FROM vector_sets WHERE model_id = ?)", [model_id])
            con.execute("DELETE FROM vector_sets WHERE model_id = ?", [model_id])
            con.execute("DELETE FROM tokens WHERE model_id = ?", [model_id])
            con.execute("DELETE FROM models WHERE model_id = ?", [model_id])
            con.execute("COMMIT")
        finally:
            con.close()


def _insert_file(con: duckdb.DuckDBPyConnection, f: FileRow) -> None:
    con.execute(
        "INSERT INTO files (set_id, role, path, bytes, sha256, mtime_ns, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [f.set_id, f.role, f.path, f.bytes, f.sha256, f.mtime_ns, f.kind],
    )


def _cols(cls: type) -> str:
    return ", ".join(cls.__dataclass_fields__)


def _next_id(con: duckdb.DuckDBPyConnection, table: str, col: str) -> int:
    return con.execute(f"SELECT coalesce(max({col}), 0) + 1 FROM {table}").fetchone()[0]


def _version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def _apply_migrations(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    current = _version(con)
    for version, name, sql in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN")
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        con.execute("COMMIT")
