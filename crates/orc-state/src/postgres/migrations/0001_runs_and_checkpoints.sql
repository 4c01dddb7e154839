-- Runs and their checkpoints, in the schema the connection's search_path names first.

CREATE TABLE pipelines (
    pipeline_id   text        NOT NULL PRIMARY KEY,
    -- Path and content hash of the pipeline's latest run.
    pipeline_path text        NOT NULL,
    pipeline_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    last_run_at   timestamptz NOT NULL
);

CREATE TABLE runs (
    run_id            text        NOT NULL PRIMARY KEY,
    pipeline_id       text        NOT NULL REFERENCES pipelines (pipeline_id),
    pipeline_path     text        NOT NULL,
    pipeline_hash     text        NOT NULL,
    -- json, not jsonb: keeps the inputs' key order.
    inputs            json        NOT NULL,
    status            text        NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    -- Number of checkpoints; an append bumps it in the statement that inserts them.
    steps_done        bigint      NOT NULL DEFAULT 0,
    -- Who may resume the run, until when (NULL: nobody holds it).
    lease_owner       text,
    lease_expires_at  timestamptz,
    result_compressed boolean     NOT NULL DEFAULT false,
    result            bytea
);

CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX runs_status_started_at ON runs (status, started_at);
CREATE INDEX runs_pipeline_started_at ON runs (pipeline_id, started_at);

-- One row per finished step, appended in order; never rewritten.
CREATE TABLE steps (
    run_id       text        NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    -- Position in the run, from 0.
    seq          bigint      NOT NULL,
    step_id      text        NOT NULL,
    status       text        NOT NULL,
    started_at   timestamptz,
    completed_at timestamptz,
    attempts     integer     NOT NULL,
    model        text,
    usage        json,
    cost         double precision,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- The step's envelope as JSON, a zstd frame of it when `compressed`.
    compressed   boolean     NOT NULL,
    payload      bytea       NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE INDEX steps_run_step ON steps (run_id, step_id);
