-- The pipelines `orc serve` registers (PUT /v1/pipelines/{id}), each under an id of the caller's
-- choosing. Not the `pipelines` table, which records the pipelines runs were started from.

CREATE TABLE pipeline_registry (
    -- "C": listed in byte order, as SQLite and Redis list them, straight from the primary key.
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    -- The `id:`, `name:` and `description:` the pipeline declares.
    pipeline_id     text        NOT NULL,
    name            text,
    description     text,
    -- The caller's content hash of the text; a put with the same hash changes nothing.
    hash            text        NOT NULL,
    steps           bigint      NOT NULL CHECK (steps >= 0),
    -- 1 at registration, one more at each replacement with another hash.
    version         bigint      NOT NULL CHECK (version >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- The text as UTF-8, a zstd frame of it when `text_compressed`; last so that listing never
    -- reads it.
    text_compressed boolean     NOT NULL,
    text            bytea       NOT NULL
);
