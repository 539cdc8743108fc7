"""The SQLite schema of hgm.db: DDL, version, and migrations.

The schema version lives in `PRAGMA user_version`; `PRAGMA application_id` marks the
file as an hgm database so a foreign SQLite file is told apart from a corrupt one.
Times are Unix seconds (REAL); money is USD (REAL).
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 4
APPLICATION_ID = 0x48474D31  # "HGM1"

RUN_STATUSES = ("running", "stopped", "finished", "crashed")
EVAL_STATUSES = (
    "resolved",
    "unresolved",
    "empty_patch",
    "patch_failed",
    "timeout",
    "error_infra",
    "abandoned",
    "contaminated",
)
# utility NULL, not a measurement: infrastructure errors and abandoned work are not the agent's
# doing; a contaminated evaluation (hidden test material seen by the agent) cannot be trusted
UNMEASURED_EVAL_STATUSES = ("error_infra", "abandoned", "contaminated")
EXPANSION_STATUSES = ("ok", "failed", "abandoned")
# the ledger: one row per admission decision (accepted / rejected child) and per retirement
LEDGER_KINDS = ("admission", "retirement")
LEDGER_DECISIONS = ("accepted", "rejected", "retired")
RETIRED_NODE_STATUS = "retired"
# memory items (schema 3): what an expansion taught, distilled; see archive.memory
MEMORY_STAGES = ("decided", "compared")
MEMORY_POLARITIES = ("helped", "hurt", "unproven")
MEMORY_WRITERS = ("model", "fallback")
REQUIRED_TABLES = ("run", "nodes", "evaluations", "expansions", "llm_calls", "events")
TABLES_SINCE = {"ledger": 2, "attempts": 3, "memory": 4, "memory_uses": 4}  # tables a database of at least that version must have
ATTEMPT_OPERATORS = ("sample", "revise", "recombine", "refine")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# Admission decisions and retirements. An admission row names the parent and, when the
# child was accepted, its node and commit (a rejected child has no node: its files are
# identified by `child_digest`); `checks` is the gate's JSON list of {name, verdict,
# reason, details}; `producer` a JSON object saying who or what made the child (or
# retired the node).
LEDGER_DDL = f"""
CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    time          REAL NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ({_quoted(LEDGER_KINDS)})),
    decision      TEXT NOT NULL CHECK (decision IN ({_quoted(LEDGER_DECISIONS)})),
    node_id       INTEGER REFERENCES nodes(id),
    parent_id     INTEGER REFERENCES nodes(id),
    expansion_id  INTEGER REFERENCES expansions(id),
    parent_commit TEXT NOT NULL DEFAULT '',
    child_commit  TEXT NOT NULL DEFAULT '',
    child_digest  TEXT NOT NULL DEFAULT '',
    diff_sha256   TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    checks        TEXT NOT NULL DEFAULT '[]',
    producer      TEXT NOT NULL DEFAULT '{{}}',
    CHECK ((kind = 'retirement') = (decision = 'retired')),
    CHECK (decision != 'accepted' OR node_id IS NOT NULL)
);
CREATE INDEX ledger_node ON ledger(node_id);
CREATE INDEX ledger_parent ON ledger(parent_id);
"""


DDL = f"""
CREATE TABLE run (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ({_quoted(RUN_STATUSES)})),
    config      TEXT NOT NULL,          -- frozen JSON, never updated
    hgm_version TEXT NOT NULL
);

CREATE TABLE nodes (
    id        INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES nodes(id),
    commit_sha TEXT NOT NULL,
    created   REAL NOT NULL,
    status    TEXT NOT NULL DEFAULT 'active',
    operator  TEXT NOT NULL DEFAULT '',
    lesson    TEXT NOT NULL DEFAULT '',
    diagnosis TEXT NOT NULL DEFAULT '',
    second_parent_id INTEGER REFERENCES nodes(id)  -- recombine: the other parent (the tree is by parent_id)
);
CREATE INDEX nodes_parent ON nodes(parent_id);

CREATE TABLE evaluations (
    id              INTEGER PRIMARY KEY,
    node_id         INTEGER NOT NULL REFERENCES nodes(id),
    task_id         TEXT NOT NULL,
    utility         INTEGER CHECK (utility IN (0, 1)),
    status          TEXT NOT NULL CHECK (status IN ({_quoted(EVAL_STATUSES)})),
    started         REAL,
    finished        REAL NOT NULL,
    agent_s         REAL,
    grade_s         REAL,
    total_s         REAL,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    trajectory_path TEXT,
    log_path        TEXT,
    detail          TEXT NOT NULL DEFAULT '',
    flags           TEXT NOT NULL DEFAULT '',  -- space-separated, e.g. 'machinery:strip'
    CHECK ((utility = 1) = (status = 'resolved')),
    CHECK ((utility IS NULL) = (status IN ({_quoted(UNMEASURED_EVAL_STATUSES)})))
);
CREATE INDEX evaluations_node ON evaluations(node_id);
-- one measurement per (node, task); infra errors and abandoned attempts may repeat
CREATE UNIQUE INDEX evaluations_measured ON evaluations(node_id, task_id)
    WHERE utility IS NOT NULL;

CREATE TABLE expansions (
    id        INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES nodes(id),
    child_id  INTEGER REFERENCES nodes(id),
    status    TEXT NOT NULL CHECK (status IN ({_quoted(EXPANSION_STATUSES)})),
    reason    TEXT NOT NULL DEFAULT '',
    cost_usd  REAL NOT NULL DEFAULT 0,
    tokens    INTEGER NOT NULL DEFAULT 0,
    started   REAL,
    finished  REAL NOT NULL,
    lesson    TEXT NOT NULL DEFAULT '',
    diagnosis TEXT NOT NULL DEFAULT '',
    operator  TEXT NOT NULL DEFAULT '',
    second_parent_id INTEGER REFERENCES nodes(id),
    CHECK ((child_id IS NOT NULL) = (status = 'ok'))
);
CREATE INDEX expansions_parent ON expansions(parent_id);

-- node_id / task_id are tags, not foreign keys: the gateway may tag a call before
-- the node it works for exists (e.g. during an expansion).
CREATE TABLE llm_calls (
    id                INTEGER PRIMARY KEY,
    time              REAL NOT NULL,
    node_id           INTEGER,
    task_id           TEXT,
    purpose           TEXT NOT NULL DEFAULT '',
    model             TEXT NOT NULL DEFAULT '',
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL NOT NULL DEFAULT 0,
    latency_s         REAL,
    error             TEXT
);

CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    time    REAL NOT NULL,
    kind    TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{{}}'
);
{LEDGER_DDL}"""

# Every attempt of an evaluation with several attempts (hgm.evaluation.attempts); the
# evaluation row holds the graded outcome of the selected one.
ATTEMPTS_DDL = f"""
CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    evaluation_id   INTEGER NOT NULL REFERENCES evaluations(id),
    idx             INTEGER NOT NULL,            -- 1-based, in the order the attempts ran
    generation      INTEGER NOT NULL,
    operator        TEXT NOT NULL CHECK (operator IN ({_quoted(ATTEMPT_OPERATORS)})),
    parents         TEXT NOT NULL DEFAULT '[]',  -- JSON list of the idx this attempt built on
    selected        INTEGER NOT NULL DEFAULT 0 CHECK (selected IN (0, 1)),
    exit_reason     TEXT NOT NULL DEFAULT '',
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    agent_s         REAL,
    patch_path      TEXT,
    trajectory_path TEXT,
    guidance        TEXT NOT NULL DEFAULT '',
    summary         TEXT NOT NULL DEFAULT '',    -- JSON
    features        TEXT NOT NULL DEFAULT '{{}}',  -- JSON: the selection features
    detail          TEXT NOT NULL DEFAULT '',    -- what went wrong on the way (summary, operator, checks)
    UNIQUE (evaluation_id, idx)
);
CREATE INDEX attempts_evaluation ON attempts(evaluation_id);
"""
DDL += ATTEMPTS_DDL

# Memory items and their full-text index, as of schema 4. The same DDL makes a run's
# `memory` table and a memory bank shared by runs (archive.memory.MemoryBank). Node, parent
# and expansion ids are those of the run named by `run_key` (no foreign keys: a bank holds
# many runs' items). Written out literally because migration 3 -> 4 runs it too: a later
# change of these tables needs its own DDL here and its own migration.
MEMORY_DDL = """
CREATE TABLE memory (
    id           INTEGER PRIMARY KEY,
    uid          TEXT NOT NULL UNIQUE,
    run          TEXT NOT NULL DEFAULT '',
    run_key      TEXT NOT NULL DEFAULT '',
    stage        TEXT NOT NULL CHECK (stage IN ('decided', 'compared')),
    polarity     TEXT NOT NULL CHECK (polarity IN ('helped', 'hurt', 'unproven')),
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    strategy     TEXT NOT NULL DEFAULT '',
    lesson       TEXT NOT NULL DEFAULT '',
    evidence     TEXT NOT NULL DEFAULT '{}',
    node_id      INTEGER,
    parent_id    INTEGER,
    expansion_id INTEGER,
    diff_sha256  TEXT NOT NULL DEFAULT '',
    model        TEXT NOT NULL DEFAULT '',
    written_by   TEXT NOT NULL CHECK (written_by IN ('model', 'fallback')),
    retired      INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1)),
    created      REAL NOT NULL,
    updated      REAL NOT NULL
);
CREATE INDEX memory_expansion ON memory(run_key, expansion_id);
CREATE INDEX memory_node ON memory(run_key, node_id);
CREATE INDEX memory_parent ON memory(run_key, parent_id);
CREATE VIRTUAL TABLE memory_fts USING fts5(
    title, description, strategy, lesson, content='memory', content_rowid='id'
);
CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN
    INSERT INTO memory_fts(rowid, title, description, strategy, lesson)
        VALUES (new.id, new.title, new.description, new.strategy, new.lesson);
END;
CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, description, strategy, lesson)
        VALUES ('delete', old.id, old.title, old.description, old.strategy, old.lesson);
END;
CREATE TRIGGER memory_fts_update AFTER UPDATE OF title, description, strategy, lesson ON memory BEGIN
    INSERT INTO memory_fts(memory_fts, rowid, title, description, strategy, lesson)
        VALUES ('delete', old.id, old.title, old.description, old.strategy, old.lesson);
    INSERT INTO memory_fts(rowid, title, description, strategy, lesson)
        VALUES (new.id, new.title, new.description, new.strategy, new.lesson);
END;
"""

# Which memory items an expansion's diagnosis was shown (a run's database only), best first.
MEMORY_USES_DDL = """
CREATE TABLE memory_uses (
    expansion_id INTEGER NOT NULL REFERENCES expansions(id),
    uid          TEXT NOT NULL,
    rank         INTEGER NOT NULL,
    PRIMARY KEY (expansion_id, uid)
);
"""

DDL += MEMORY_DDL + MEMORY_USES_DDL

# MIGRATIONS[v] upgrades a database from version v to v + 1 (SQL script). Each script is
# written out in full as of its version (never built from the current DDL), so a later
# schema change cannot alter what an old migration does.
MIGRATIONS: dict[int, str] = {
    # 1 -> 2: evaluation status 'contaminated' and column `flags` (SQLite cannot change a
    # CHECK constraint in place: the table is rebuilt), and the ledger table.
    1: """
CREATE TABLE evaluations_v2 (
    id              INTEGER PRIMARY KEY,
    node_id         INTEGER NOT NULL REFERENCES nodes(id),
    task_id         TEXT NOT NULL,
    utility         INTEGER CHECK (utility IN (0, 1)),
    status          TEXT NOT NULL CHECK (status IN ('resolved', 'unresolved', 'empty_patch', 'patch_failed',
                                                    'timeout', 'error_infra', 'abandoned', 'contaminated')),
    started         REAL,
    finished        REAL NOT NULL,
    agent_s         REAL,
    grade_s         REAL,
    total_s         REAL,
    tokens          INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL NOT NULL DEFAULT 0,
    trajectory_path TEXT,
    log_path        TEXT,
    detail          TEXT NOT NULL DEFAULT '',
    flags           TEXT NOT NULL DEFAULT '',
    CHECK ((utility = 1) = (status = 'resolved')),
    CHECK ((utility IS NULL) = (status IN ('error_infra', 'abandoned', 'contaminated')))
);
INSERT INTO evaluations_v2 (id, node_id, task_id, utility, status, started, finished, agent_s, grade_s,
                            total_s, tokens, cost_usd, trajectory_path, log_path, detail)
    SELECT id, node_id, task_id, utility, status, started, finished, agent_s, grade_s,
           total_s, tokens, cost_usd, trajectory_path, log_path, detail FROM evaluations;
DROP TABLE evaluations;
ALTER TABLE evaluations_v2 RENAME TO evaluations;
CREATE INDEX evaluations_node ON evaluations(node_id);
CREATE UNIQUE INDEX evaluations_measured ON evaluations(node_id, task_id) WHERE utility IS NOT NULL;
CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    time          REAL NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('admission', 'retirement')),
    decision      TEXT NOT NULL CHECK (decision IN ('accepted', 'rejected', 'retired')),
    node_id       INTEGER REFERENCES nodes(id),
    parent_id     INTEGER REFERENCES nodes(id),
    expansion_id  INTEGER REFERENCES expansions(id),
    parent_commit TEXT NOT NULL DEFAULT '',
    child_commit  TEXT NOT NULL DEFAULT '',
    child_digest  TEXT NOT NULL DEFAULT '',
    diff_sha256   TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    checks        TEXT NOT NULL DEFAULT '[]',
    producer      TEXT NOT NULL DEFAULT '{}',
    CHECK ((kind = 'retirement') = (decision = 'retired')),
    CHECK (decision != 'accepted' OR node_id IS NOT NULL)
);
CREATE INDEX ledger_node ON ledger(node_id);
CREATE INDEX ledger_parent ON ledger(parent_id);
""",
    # 2 -> 3: trajectory evolution (second parent of a recombined node, operator of every
    # expansion attempt, the attempts of an evaluation)
    2: "ALTER TABLE nodes ADD COLUMN second_parent_id INTEGER REFERENCES nodes(id);\n"
       "ALTER TABLE expansions ADD COLUMN operator TEXT NOT NULL DEFAULT '';\n"
       "ALTER TABLE expansions ADD COLUMN second_parent_id INTEGER REFERENCES nodes(id);\n"
       + ATTEMPTS_DDL,
    # 3 -> 4: memory items (table `memory`, its FTS5 index `memory_fts` kept by triggers) and
    # `memory_uses` (which items each expansion was shown). Additive: nothing else changes.
    3: MEMORY_DDL + MEMORY_USES_DDL,
}


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether `table` has `column` (a run of an older version opened read-only may lack it)."""
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table in an empty database and stamp the version (one transaction)."""
    conn.executescript(
        "BEGIN;\n"
        + DDL
        + f"\nPRAGMA application_id = {APPLICATION_ID};"
        + f"\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
    )


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Upgrade an older database to SCHEMA_VERSION, one version per transaction."""
    for version in range(from_version, SCHEMA_VERSION):
        conn.executescript(
            f"BEGIN;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
        )
