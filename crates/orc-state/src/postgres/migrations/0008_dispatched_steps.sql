-- Steps a run's coordinator handed to `orc worker` processes (`orc run --queue`), one row per
-- step of a run. `attempt` goes up each time a coordinator hands the step out again (a resumed
-- run's coordinator does); a worker's result is stored only under the attempt it was given, so
-- a worker that finishes a superseded attempt writes nothing (fencing by attempt). A result
-- stored here and not yet in `steps` (the coordinator died before writing its checkpoint) is
-- taken by the next coordinator instead of running the step again.

CREATE TABLE dispatched_steps (
    run_id      text        NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    step_id     text        NOT NULL,
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    dispatched_at timestamptz NOT NULL DEFAULT now(),
    -- Set once, by the worker that ran the current attempt: what it hands the coordinator (JSON).
    finished_at timestamptz,
    outcome     text,
    PRIMARY KEY (run_id, step_id)
);
