-- The model requests summed per hour and per minute as they are recorded (in the transaction
-- that inserts their rows; see `rollup.rs`), so that the daily report reads 24 hours of sums and
-- the series 1,440 minutes instead of every request of the day. A period that does not start or
-- end on a whole hour (minute) reads its partial hours (minutes) from `model_metrics`.
--
-- Keys that may be absent are stored as '' (no pipeline, no error kind) and -1 (the response
-- cache not consulted), as in the SQLite schema. A latency histogram is a JSON object from
-- latency bucket to requests; rows recorded before migration 5 have no bucket and count in the
-- sums, not the histograms. Hours and minutes are numbered from the Unix epoch.

CREATE TABLE request_hours (
    hour          bigint           NOT NULL,
    model         text             NOT NULL,
    provider      text             NOT NULL,
    pipeline_id   text             NOT NULL,
    cache_hit     smallint         NOT NULL CHECK (cache_hit IN (-1, 0, 1)),
    error_kind    text             NOT NULL,
    success       boolean          NOT NULL,
    requests      bigint           NOT NULL,
    cost          double precision NOT NULL,
    latency_ms    double precision NOT NULL,
    input_tokens  bigint           NOT NULL,
    output_tokens bigint           NOT NULL,
    latency_hist  jsonb            NOT NULL,
    PRIMARY KEY (hour, model, provider, pipeline_id, cache_hit, error_kind, success)
);

CREATE TABLE request_minutes (
    minute        bigint           NOT NULL PRIMARY KEY,
    requests      bigint           NOT NULL,
    errors        bigint           NOT NULL,
    cache_hits    bigint           NOT NULL,
    cache_misses  bigint           NOT NULL,
    cost          double precision NOT NULL,
    latency_hist  jsonb            NOT NULL
);

-- The runs that made requests in each hour, for the count of distinct runs of a period.
CREATE TABLE request_runs (
    hour   bigint NOT NULL,
    run_id text   NOT NULL,
    PRIMARY KEY (hour, run_id)
);

-- The rollups of the requests recorded so far (times are after 1970: `/` rounds down).
INSERT INTO request_hours (hour, model, provider, pipeline_id, cache_hit, error_kind, success,
                           requests, cost, latency_ms, input_tokens, output_tokens, latency_hist)
SELECT hour, model, provider, pipeline_id, cache_hit, error_kind, success,
       sum(n), sum(c), sum(l), sum(i), sum(o),
       COALESCE(jsonb_object_agg(latency_bucket::text, n) FILTER (WHERE latency_bucket IS NOT NULL), '{}')
FROM (SELECT (extract(epoch FROM at) * 1000000)::int8 / 3600000000 AS hour, model, provider,
             COALESCE(pipeline_id, '') AS pipeline_id,
             (CASE WHEN cache_hit THEN 1 WHEN NOT cache_hit THEN 0 ELSE -1 END)::int2 AS cache_hit,
             COALESCE(error_kind, '') AS error_kind, success, latency_bucket, count(*) AS n,
             sum(cost) AS c, sum(latency_ms) AS l, sum(input_tokens) AS i, sum(output_tokens) AS o
      FROM model_metrics
      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS g
GROUP BY hour, model, provider, pipeline_id, cache_hit, error_kind, success;

INSERT INTO request_minutes (minute, requests, errors, cache_hits, cache_misses, cost, latency_hist)
SELECT minute, sum(n), sum(e), sum(h), sum(m), sum(c),
       COALESCE(jsonb_object_agg(latency_bucket::text, n) FILTER (WHERE latency_bucket IS NOT NULL), '{}')
FROM (SELECT (extract(epoch FROM at) * 1000000)::int8 / 60000000 AS minute, latency_bucket,
             count(*) AS n, count(*) FILTER (WHERE NOT success) AS e,
             count(*) FILTER (WHERE cache_hit) AS h, count(*) FILTER (WHERE NOT cache_hit) AS m,
             sum(cost) AS c
      FROM model_metrics
      GROUP BY 1, 2) AS g
GROUP BY minute;

INSERT INTO request_runs (hour, run_id)
SELECT DISTINCT (extract(epoch FROM at) * 1000000)::int8 / 3600000000, run_id
FROM model_metrics WHERE run_id IS NOT NULL;
