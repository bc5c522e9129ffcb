-- The admin API lists events newest first, optionally by source or status.
CREATE INDEX events_received ON events (received_at DESC, id DESC);

-- Long-running operations (bulk replays). Progress and the resume point are committed after
-- every batch, and a runner holds a lease it renews: if its process dies, another process
-- takes the operation over where it stopped, so an operation never ends half-silently.
CREATE TABLE operations (
    id          uuid        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('replay')),
    -- The filter it applies (source, destination, since, until).
    filter      jsonb       NOT NULL,
    state       text        NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    matched     bigint      NOT NULL DEFAULT 0,
    replayed    bigint      NOT NULL DEFAULT 0,
    failed      bigint      NOT NULL DEFAULT 0,
    error       text,
    -- Keyset position (created_at, id) of the last dead letter handled.
    cursor_at   timestamptz,
    cursor_id   uuid,
    lease_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX operations_running ON operations (lease_until) WHERE state = 'running';
