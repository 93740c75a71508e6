"""The catalog's schema: numbered migrations, frozen as the SQL text that was released.

Append only: a released migration never changes (tests/test_migrations.py holds the
SHA-256 of each one's text and fails on any edit); a change to the schema, a new view or
a new description (``COMMENT ON``) is a new migration. Each migration carries the
``COMMENT ON`` lines for what it creates, shown by ``explorer schema``.
"""

from __future__ import annotations

# (version, name, SQL): applied in order, each in one transaction, by
# explorer.store.connections.apply_migrations
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
    # 5 was built from a dict of descriptions until issue 14; this is the text it produced
    (
        5,
        "views for SQL, and a description of every table and view",
        """
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

COMMENT ON TABLE schema_migrations IS 'Numbered schema migrations applied to this catalog.';
COMMENT ON TABLE models IS 'Models known to the store: source, architecture, sizes, tied embeddings, embed scale.';
COMMENT ON TABLE vector_sets IS 'Matrices stored per model (input embedding, unembedding; tied sets point at their twin).';
COMMENT ON TABLE tokens IS 'Every vocabulary entry of each model: raw and decoded text, word-start marker, script, flags.';
COMMENT ON TABLE files IS 'Every stored file with its size and SHA-256 (vectors, norms, FAISS index).';
COMMENT ON VIEW index_files IS 'The FAISS index files among `files`.';
COMMENT ON TABLE corpora IS 'Hidden-state exports: one row per corpus and model, with layers, width, dtype and progress.';
COMMENT ON TABLE documents IS 'Documents of each corpus, with language, token count and where their rows start.';
COMMENT ON TABLE states IS 'One row per token of each corpus: its row (state_id) in every layer matrix, position and token.';
COMMENT ON TABLE state_indexes IS 'Compressed FAISS indexes over hidden states, with recall@10 measured when built.';
COMMENT ON VIEW hidden_states IS 'View: states joined with their corpus, model, document and language.';
COMMENT ON TABLE lens_runs IS 'Logit-lens language-attribution runs: task, configuration, entries used, accuracy.';
COMMENT ON TABLE lens_layers IS 'Per-layer results of each lens run: target and English probability, entropy, energy.';
COMMENT ON TABLE lens_entries IS 'Per-entry results of each lens run: prompt, words, last-layer top-1, per-layer probabilities.';
COMMENT ON VIEW model_summary IS 'View: each model with its vector sets, token count and stored corpora.';
COMMENT ON VIEW lens_summary IS 'View: lens runs with model name, languages, accuracy and where English peaks.';
COMMENT ON VIEW token_scripts IS 'View: number of tokens per model and script.';""",
    ),
    (
        6,
        "experiments: sweeps, runs, metrics",
        """
    CREATE TABLE sweeps (
        sweep_id   INTEGER PRIMARY KEY,
        experiment VARCHAR NOT NULL,
        preset     VARCHAR,
        config     JSON NOT NULL,            -- base configuration (points override it)
        key        VARCHAR NOT NULL,         -- hash of experiment + config: --resume finds the sweep by it
        status     VARCHAR NOT NULL,         -- running | finished | cancelled | failed
        host       VARCHAR,                  -- where the sweep's driver runs, with its pid:
        pid        INTEGER,                  --   a 'running' sweep whose process is gone was killed
        started    TIMESTAMP DEFAULT current_timestamp,
        finished   TIMESTAMP,
        summary    JSON
    );
    CREATE TABLE runs (
        run_id     INTEGER PRIMARY KEY,
        sweep_id   INTEGER,
        experiment VARCHAR NOT NULL,
        point      VARCHAR NOT NULL,         -- the sweep point, e.g. 'd=8 m=5'
        config     JSON NOT NULL,            -- full configuration of this run
        seed       BIGINT,
        status     VARCHAR NOT NULL,         -- running | finished | cancelled | failed
        started    TIMESTAMP DEFAULT current_timestamp,
        finished   TIMESTAMP,
        summary    JSON,                     -- final results of the run
        error      VARCHAR
    );
    CREATE TABLE metrics (
        run_id INTEGER NOT NULL,
        step   BIGINT NOT NULL,
        name   VARCHAR NOT NULL,
        value  DOUBLE
    );
    CREATE INDEX metrics_run ON metrics (run_id);
    CREATE TABLE experiment_rows (
        run_id    INTEGER NOT NULL,
        tbl       VARCHAR NOT NULL,
        row       JSON NOT NULL
    );
    CREATE VIEW run_metrics AS
        SELECT r.run_id, r.sweep_id, r.experiment, r.point, r.status, m.name,
               arg_max(m.value, m.step) AS value, max(m.step) AS step, r.config
        FROM runs r JOIN metrics m USING (run_id)
        GROUP BY ALL;
    COMMENT ON TABLE sweeps IS 'Experiment sweeps: experiment, preset, base configuration, status, sweep-level summary (fits).';
COMMENT ON TABLE runs IS 'One row per experiment run (a point of a sweep): configuration as JSON, seed, status, times, summary.';
COMMENT ON TABLE metrics IS 'Metrics reported by experiment runs while they train: (run_id, step, name, value).';
COMMENT ON TABLE experiment_rows IS 'Extra per-experiment result rows (JSON), by run and table name, e.g. word2vec analogy sections.';
COMMENT ON VIEW run_metrics IS 'View: the last value of each metric per run, with experiment, sweep and configuration.';""",
    ),
    (
        7,
        "comparisons of models: runs and per-model results",
        """
    CREATE TABLE comparisons (
        comparison_id INTEGER PRIMARY KEY,
        kind       VARCHAR NOT NULL,         -- expression | file
        source     VARCHAR NOT NULL,         -- the expression, or the analogy file's path
        expect     VARCHAR,                  -- the expected word (kind = expression)
        method     VARCHAR NOT NULL,         -- 3cosadd | 3cosmul
        vectors    VARCHAR NOT NULL,         -- input | output
        models     VARCHAR[] NOT NULL,       -- model names, in the order asked
        created_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE comparison_results (
        comparison_id  INTEGER NOT NULL,
        model          VARCHAR NOT NULL,     -- model name
        item           INTEGER NOT NULL,     -- 0 for an expression; the line number in the file
        expression     VARCHAR NOT NULL,     -- e.g. 'woman - man + king'
        expected       VARCHAR,
        rank_excluded  INTEGER,              -- expected word's rank, input words excluded (NULL: missing)
        rank_kept      INTEGER,              -- expected word's rank, input words kept
        top            JSON,                 -- [{token, token_id, score, rank}], inputs excluded
        offset_cosine  DOUBLE,               -- cos(E(b)-E(a), E(d)-E(c)), raw vectors
        reverse_cosine DOUBLE,               -- cos(E(a), E(b)-E(d)+E(c))
        correct        BOOLEAN,              -- rank_excluded = 1 (FALSE when a word is missing)
        note           VARCHAR,              -- why an item is missing, e.g. unknown word
        PRIMARY KEY (comparison_id, model, item)
    );
    CREATE VIEW comparison_summary AS
        SELECT c.comparison_id, r.model, c.kind, c.source, c.method, c.vectors,
               count(*) AS items, count(r.rank_kept) AS covered,
               count(*) FILTER (WHERE r.correct) AS correct,
               avg(CASE WHEN r.expected IS NULL THEN NULL WHEN r.correct THEN 1.0 ELSE 0.0 END) AS accuracy,
               avg(r.offset_cosine) AS mean_offset_cosine, c.created_at
        FROM comparisons c JOIN comparison_results r USING (comparison_id)
        GROUP BY ALL;
    COMMENT ON TABLE comparisons IS '`explorer compare` runs: the expression or analogy file, expected word, method, vector set, models.';
COMMENT ON TABLE comparison_results IS 'Per model and item of each comparison: expected word''s ranks, top answers, offset and reverse cosines, correct.';
COMMENT ON VIEW comparison_summary IS 'View: accuracy per comparison and model (misses include words a model lacks), mean offset cosine.';""",
    ),
    (
        8,
        "lens runs: accepted alternatives of the target word, accuracy on the first form alone",
        """
    ALTER TABLE lens_runs ADD COLUMN accuracy_first DOUBLE;       -- share correct counting only the word shown in prompts
    ALTER TABLE lens_entries ADD COLUMN accepted VARCHAR[];       -- every accepted form of the target, shown form first
    ALTER TABLE lens_entries ADD COLUMN correct_first BOOLEAN;    -- correct on the shown form alone
    COMMENT ON COLUMN lens_runs.accuracy IS 'share of entries whose last-layer top-1 token starts an accepted form of the target';
    COMMENT ON COLUMN lens_runs.accuracy_first IS 'the same, counting only the form shown in prompts (the first of the word list cell)';
    COMMENT ON COLUMN lens_entries.accepted IS 'every accepted form of the target word, the form shown in prompts first';
    CREATE OR REPLACE VIEW lens_summary AS
        SELECT r.run_id, m.name AS model, r.task, r.config->>'from' AS src, r.config->>'to' AS tgt,
               r.config->>'lang' AS lang, r.entries, r.accuracy, r.accuracy_first,
               arg_max(l.layer, l.p_english) AS english_peak_layer, max(l.p_english) AS english_peak,
               max_by(l.p_target, l.layer) AS p_target_last, max_by(l.p_english, l.layer) AS p_english_last, r.created_at
        FROM lens_runs r JOIN models m USING (model_id) JOIN lens_layers l USING (run_id)
        GROUP BY ALL;
    COMMENT ON VIEW lens_summary IS 'View: lens runs with model name, languages, accuracy (accepted forms and shown form alone) and where English peaks.';""",
    ),
    (
        9,
        "hidden states: size, mtime and SHA-256 of each layer file",
        """
    CREATE TABLE state_files (
        corpus_id  INTEGER NOT NULL,
        layer      INTEGER NOT NULL,
        role       VARCHAR NOT NULL,         -- states (layer_XX.npy) | norms (layer_XX.norms.npy)
        path       VARCHAR NOT NULL,         -- relative to the data root
        bytes      BIGINT NOT NULL,
        sha256     VARCHAR NOT NULL,
        mtime_ns   BIGINT NOT NULL,
        created_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (corpus_id, layer, role)
    );
    COMMENT ON TABLE state_files IS 'Every finished corpus''s layer files (states and norms) with size, mtime and SHA-256, checked by `explorer index verify`.';""",
    ),
    (
        10,
        "lens_summary: accuracy and probabilities rounded to 4 decimals (the tables keep full precision)",
        """
    CREATE OR REPLACE VIEW lens_summary AS
        SELECT r.run_id, m.name AS model, r.task, r.config->>'from' AS src, r.config->>'to' AS tgt,
               r.config->>'lang' AS lang, r.entries, round(r.accuracy, 4) AS accuracy,
               round(r.accuracy_first, 4) AS accuracy_first,
               arg_max(l.layer, l.p_english) AS english_peak_layer, round(max(l.p_english), 4) AS english_peak,
               round(max_by(l.p_target, l.layer), 4) AS p_target_last,
               round(max_by(l.p_english, l.layer), 4) AS p_english_last, r.created_at
        FROM lens_runs r JOIN models m USING (model_id) JOIN lens_layers l USING (run_id)
        GROUP BY ALL;
    COMMENT ON VIEW lens_summary IS 'View: lens runs with model name, languages, accuracy (accepted forms and shown form alone) and where English peaks.';""",
    ),
    # 11: DuckDB has no setval, so each sequence starts at 1 and is advanced past its
    # table's largest id by drawing that many values (max(...) consumes every one of them)
    (
        11,
        "ids from sequences: seq_<table> for models, vector sets, corpora, lens runs, sweeps, runs, comparisons",
        """
    CREATE SEQUENCE seq_models START 1;
    SELECT max(nextval('seq_models')) FROM (SELECT unnest(range((SELECT coalesce(max(model_id), 0) FROM models))));
    CREATE SEQUENCE seq_vector_sets START 1;
    SELECT max(nextval('seq_vector_sets')) FROM (SELECT unnest(range((SELECT coalesce(max(set_id), 0) FROM vector_sets))));
    CREATE SEQUENCE seq_corpora START 1;
    SELECT max(nextval('seq_corpora')) FROM (SELECT unnest(range((SELECT coalesce(max(corpus_id), 0) FROM corpora))));
    CREATE SEQUENCE seq_lens_runs START 1;
    SELECT max(nextval('seq_lens_runs')) FROM (SELECT unnest(range((SELECT coalesce(max(run_id), 0) FROM lens_runs))));
    CREATE SEQUENCE seq_sweeps START 1;
    SELECT max(nextval('seq_sweeps')) FROM (SELECT unnest(range((SELECT coalesce(max(sweep_id), 0) FROM sweeps))));
    CREATE SEQUENCE seq_runs START 1;
    SELECT max(nextval('seq_runs')) FROM (SELECT unnest(range((SELECT coalesce(max(run_id), 0) FROM runs))));
    CREATE SEQUENCE seq_comparisons START 1;
    SELECT max(nextval('seq_comparisons')) FROM (SELECT unnest(range((SELECT coalesce(max(comparison_id), 0) FROM comparisons))));
    COMMENT ON SEQUENCE seq_models IS 'next models.model_id';
    COMMENT ON SEQUENCE seq_vector_sets IS 'next vector_sets.set_id';
    COMMENT ON SEQUENCE seq_corpora IS 'next corpora.corpus_id';
    COMMENT ON SEQUENCE seq_lens_runs IS 'next lens_runs.run_id';
    COMMENT ON SEQUENCE seq_sweeps IS 'next sweeps.sweep_id';
    COMMENT ON SEQUENCE seq_runs IS 'next runs.run_id';
    COMMENT ON SEQUENCE seq_comparisons IS 'next comparisons.comparison_id';
    """,
    ),
    (
        12,
        "learned lenses: one translator per model and kind, its file and held-out KL per layer",
        """
    CREATE TABLE lenses (
        model_id       INTEGER NOT NULL,
        kind           VARCHAR NOT NULL,     -- linear (closed-form ridge, Din et al. 2023) | kl (Belrose et al. 2023)
        data           VARCHAR NOT NULL,     -- the training text: a corpus file, or 'bundled'
        corpus_id      INTEGER,              -- the exported states it was fitted on
        train_tokens   INTEGER NOT NULL,     -- states fitted (position 0 left out)
        heldout_tokens INTEGER NOT NULL,     -- held-out states the KL below was measured on
        path           VARCHAR NOT NULL,     -- relative to the data root
        bytes          BIGINT NOT NULL,
        sha256         VARCHAR NOT NULL,
        settings       JSON,                 -- e.g. the ridge strength chosen per layer
        kl_tuned       DOUBLE[],             -- held-out KL(final || lens) in bits per layer, this lens
        kl_logit       DOUBLE[],             -- the same for the logit lens
        seconds        DOUBLE,               -- training time, forward passes included
        created_at     TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (model_id, kind)
    );
    COMMENT ON TABLE lenses IS 'Learned lenses (`explorer lens train`): per model and kind the translator file, its SHA-256, training data and held-out KL per layer.';""",
    ),
    (
        13,
        "lens_summary: which lens each run read with (old runs, recorded before learned lenses, read as 'logit')",
        """
    CREATE OR REPLACE VIEW lens_summary AS
        SELECT r.run_id, m.name AS model, r.task, r.config->>'from' AS src, r.config->>'to' AS tgt,
               r.config->>'lang' AS lang, r.entries, round(r.accuracy, 4) AS accuracy,
               round(r.accuracy_first, 4) AS accuracy_first,
               arg_max(l.layer, l.p_english) AS english_peak_layer, round(max(l.p_english), 4) AS english_peak,
               round(max_by(l.p_target, l.layer), 4) AS p_target_last,
               round(max_by(l.p_english, l.layer), 4) AS p_english_last, r.created_at,
               coalesce(r.config->>'lens', 'logit') AS lens
        FROM lens_runs r JOIN models m USING (model_id) JOIN lens_layers l USING (run_id)
        GROUP BY ALL;
    COMMENT ON VIEW lens_summary IS 'View: lens runs with model name, languages, accuracy (accepted forms and shown form alone), where English peaks, and the lens read with (logit, or tuned (kind)).';""",
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
