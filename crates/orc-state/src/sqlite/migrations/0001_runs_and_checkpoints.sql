-- Runs and their checkpoints. Times are microseconds since the Unix epoch; JSON is text.

CREATE TABLE pipelines (
    pipeline_id   TEXT    NOT NULL PRIMARY KEY,
    -- Path and content hash of the pipeline's latest run.
    pipeline_path TEXT    NOT NULL,
    pipeline_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_run_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
    run_id            TEXT    NOT NULL PRIMARY KEY,
    pipeline_id       TEXT    NOT NULL REFERENCES pipelines (pipeline_id),
    pipeline_path     TEXT    NOT NULL,
    pipeline_hash     TEXT    NOT NULL,
    inputs            TEXT    NOT NULL,
    status            TEXT    NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    started_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    -- Number of checkpoints; kept by the trigger below.
    steps_done        INTEGER NOT NULL DEFAULT 0,
    -- Who may resume the run, until when (NULL: nobody holds it).
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    -- The result document, last so that listing runs never reads it.
    result_compressed INTEGER NOT NULL DEFAULT 0,
    result            BLOB
) STRICT;

CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX runs_status_started_at ON runs (status, started_at);
CREATE INDEX runs_pipeline_started_at ON runs (pipeline_id, started_at);

-- One row per finished step, appended in order; never rewritten.
CREATE TABLE steps (
    run_id       TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    -- Position in the run, from 0.
    seq          INTEGER NOT NULL,
    step_id      TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    started_at   INTEGER,
    completed_at INTEGER,
    attempts     INTEGER NOT NULL,
    model        TEXT,
    usage        TEXT,
    cost         REAL,
    created_at   INTEGER NOT NULL,
    -- The step's envelope as JSON, a zstd frame of it when `compressed` is 1.
    compressed   INTEGER NOT NULL,
    payload      BLOB    NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

CREATE INDEX steps_run_step ON steps (run_id, step_id);

-- Keeps `steps_done` equal to the number of checkpoints, so that appending one checkpoint is a
-- single INSERT … SELECT that takes its position from it.
CREATE TRIGGER steps_count AFTER INSERT ON steps
BEGIN
    UPDATE runs SET steps_done = steps_done + 1 WHERE run_id = NEW.run_id;
END;
