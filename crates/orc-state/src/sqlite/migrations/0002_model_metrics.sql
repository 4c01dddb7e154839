-- One row per model call, for the router's view of latency, success rate and cost.

CREATE TABLE model_metrics (
    id            INTEGER NOT NULL PRIMARY KEY,
    model         TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    at            INTEGER NOT NULL,
    latency_ms    REAL    NOT NULL,
    success       INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost          REAL    NOT NULL
) STRICT;

CREATE INDEX model_metrics_model_at ON model_metrics (model, at);
CREATE INDEX model_metrics_at ON model_metrics (at);
