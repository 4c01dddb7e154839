-- One row per model call, for the router's view of latency, success rate and cost.

CREATE TABLE model_metrics (
    id            bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model         text             NOT NULL,
    provider      text             NOT NULL,
    at            timestamptz      NOT NULL,
    latency_ms    double precision NOT NULL,
    success       boolean          NOT NULL,
    input_tokens  bigint           NOT NULL,
    output_tokens bigint           NOT NULL,
    cost          double precision NOT NULL
);

CREATE INDEX model_metrics_model_at ON model_metrics (model, at);
CREATE INDEX model_metrics_at ON model_metrics (at);
