-- The model requests summed per hour and per minute as they are recorded (in the transaction
-- that inserts their rows; see `rollup.rs`), so that the daily report reads 24 hours of sums and
-- the series 1,440 minutes instead of every request of the day. A period that does not start or
-- end on a whole hour (minute) reads its partial hours (minutes) from `model_metrics`.
--
-- Keys that may be absent are stored as '' (no pipeline, no error kind) and -1 (the response
-- cache not consulted): a primary key treats NULLs as different from each other. A latency
-- histogram is a JSON object from latency bucket to requests; rows recorded before migration 5
-- have no bucket and count in the sums, not the histograms.

CREATE TABLE request_hours (
    hour          INTEGER NOT NULL,
    model         TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    pipeline_id   TEXT    NOT NULL,
    cache_hit     INTEGER NOT NULL CHECK (cache_hit IN (-1, 0, 1)),
    error_kind    TEXT    NOT NULL,
    success       INTEGER NOT NULL,
    requests      INTEGER NOT NULL,
    cost          REAL    NOT NULL,
    latency_ms    REAL    NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    latency_hist  TEXT    NOT NULL,
    PRIMARY KEY (hour, model, provider, pipeline_id, cache_hit, error_kind, success)
) STRICT, WITHOUT ROWID;

CREATE TABLE request_minutes (
    minute        INTEGER NOT NULL PRIMARY KEY,
    requests      INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    cache_hits    INTEGER NOT NULL,
    cache_misses  INTEGER NOT NULL,
    cost          REAL    NOT NULL,
    latency_hist  TEXT    NOT NULL
) STRICT;

-- The runs that made requests in each hour, for the count of distinct runs of a period.
CREATE TABLE request_runs (
    hour   INTEGER NOT NULL,
    run_id TEXT    NOT NULL,
    PRIMARY KEY (hour, run_id)
) STRICT, WITHOUT ROWID;

-- The rollups of the requests recorded so far (times are after 1970: `/` rounds down).
INSERT INTO request_hours (hour, model, provider, pipeline_id, cache_hit, error_kind, success,
                           requests, cost, latency_ms, input_tokens, output_tokens, latency_hist)
SELECT hour, model, provider, pipeline_id, cache_hit, error_kind, success,
       sum(n), total(c), total(l), sum(i), sum(o),
       json_group_object(CAST(latency_bucket AS TEXT), n) FILTER (WHERE latency_bucket IS NOT NULL)
FROM (SELECT at / 3600000000 AS hour, model, provider, ifnull(pipeline_id, '') AS pipeline_id,
             ifnull(cache_hit, -1) AS cache_hit, ifnull(error_kind, '') AS error_kind, success,
             latency_bucket, count(*) AS n, total(cost) AS c, total(latency_ms) AS l,
             sum(input_tokens) AS i, sum(output_tokens) AS o
      FROM model_metrics
      GROUP BY hour, model, provider, pipeline_id, cache_hit, error_kind, success, latency_bucket)
GROUP BY hour, model, provider, pipeline_id, cache_hit, error_kind, success;

INSERT INTO request_minutes (minute, requests, errors, cache_hits, cache_misses, cost, latency_hist)
SELECT minute, sum(n), sum(e), sum(h), sum(m), total(c),
       json_group_object(CAST(latency_bucket AS TEXT), n) FILTER (WHERE latency_bucket IS NOT NULL)
FROM (SELECT at / 60000000 AS minute, latency_bucket, count(*) AS n, sum(NOT success) AS e,
             sum(cache_hit IS 1) AS h, sum(cache_hit IS 0) AS m, total(cost) AS c
      FROM model_metrics
      GROUP BY minute, latency_bucket)
GROUP BY minute;

INSERT INTO request_runs (hour, run_id)
SELECT DISTINCT at / 3600000000, run_id FROM model_metrics WHERE run_id IS NOT NULL;
