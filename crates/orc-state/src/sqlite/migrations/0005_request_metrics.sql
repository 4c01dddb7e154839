-- Every model request is recorded now, not only the calls that went upstream: the daily report
-- and the dashboard's series read where an answer came from, whether the response cache was
-- consulted and hit, what kind of failure a failed one was, and which run (and pipeline) made
-- it. The latency bucket is the log-scale bucket of `latency_ms` (see `latency.rs`: 4 % wide,
-- percentiles within 2 %), so that percentiles are `GROUP BY latency_bucket` counts; rows
-- recorded before this migration have none and count in means, not percentiles.
--
-- Reports and series read a period with range scans of `model_metrics_at` (migration 2), the
-- guide's `idx_model_metrics_timestamp`; runs with `runs_started_at` (migration 1).

ALTER TABLE model_metrics ADD COLUMN source TEXT NOT NULL DEFAULT 'upstream'
    CHECK (source IN ('upstream', 'cache', 'shared'));
-- 1 a hit, 0 a miss, NULL when the response cache was not consulted.
ALTER TABLE model_metrics ADD COLUMN cache_hit INTEGER;
ALTER TABLE model_metrics ADD COLUMN error_kind TEXT;
ALTER TABLE model_metrics ADD COLUMN run_id TEXT;
ALTER TABLE model_metrics ADD COLUMN pipeline_id TEXT;
ALTER TABLE model_metrics ADD COLUMN latency_bucket INTEGER;
