-- The pipelines `orc serve` registers (PUT /v1/pipelines/{id}), each under an id of the caller's
-- choosing. Not the `pipelines` table, which records the pipelines runs were started from.
-- Times are microseconds since the Unix epoch.

CREATE TABLE pipeline_registry (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- The `id:`, `name:` and `description:` the pipeline declares.
    pipeline_id     TEXT    NOT NULL,
    name            TEXT,
    description     TEXT,
    -- The caller's content hash of the text; a put with the same hash changes nothing.
    hash            TEXT    NOT NULL,
    steps           INTEGER NOT NULL CHECK (steps >= 0),
    -- 1 at registration, one more at each replacement with another hash.
    version         INTEGER NOT NULL CHECK (version >= 1),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- The text as UTF-8, a zstd frame of it when `text_compressed` is 1; last so that listing
    -- never reads it.
    text_compressed INTEGER NOT NULL,
    text            BLOB    NOT NULL
) STRICT;
