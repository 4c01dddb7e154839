-- The lookups of orc's caches other than the model response cache (whose lookups are in the
-- request rows and rollups): the step-result cache, the compile cache and the status-query
-- cache, each by name. A process counts its lookups in memory and adds them here per minute
-- (see orc-runtime's `requests.rs`), so the dashboard's series and the daily report read a row
-- per cache and minute. Minutes are numbered from the Unix epoch.

CREATE TABLE cache_minutes (
    minute INTEGER NOT NULL,
    cache  TEXT    NOT NULL,
    hits   INTEGER NOT NULL,
    misses INTEGER NOT NULL,
    PRIMARY KEY (minute, cache)
) STRICT, WITHOUT ROWID;
