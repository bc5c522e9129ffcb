-- Every acknowledged webhook, as received. Postgres is the source of truth: the Redis stream
-- only points at these rows.
CREATE TABLE events (
    id          uuid PRIMARY KEY,
    source      text        NOT NULL,
    external_id text        NOT NULL,
    payload     bytea       NOT NULL,
    -- [[name, value], ...] in arrival order: repeated headers survive, unlike in an object.
    headers     jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    status      text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead_lettered')),
    -- The dedup key: a provider's retry of a known event id inserts nothing.
    CONSTRAINT events_source_external_id_key UNIQUE (source, external_id)
);

-- Acknowledged events not yet confirmed on their stream. The row is written by the same
-- statement as its event and deleted once the XADD succeeded, so an XADD that failed, or a
-- process that died between commit and XADD, leaves a row here: the reconciler reads this small
-- table instead of scanning events.
CREATE TABLE enqueue_outbox (
    event_id   uuid        PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    source     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX enqueue_outbox_created_at ON enqueue_outbox (created_at);
