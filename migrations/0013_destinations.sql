-- Each destination's standing: paused by an operator, and its circuit breaker. A destination
-- with no row is closed and not paused; a row is written the first time either changes.
CREATE TABLE destinations (
    source               text        NOT NULL,
    destination          text        NOT NULL,
    paused               boolean     NOT NULL DEFAULT false,
    paused_at            timestamptz,
    paused_by            text,
    state                text        NOT NULL DEFAULT 'closed'
        CHECK (state IN ('closed', 'open', 'half_open')),
    -- Failed attempts since the last success (or since the breaker last opened).
    failures             integer     NOT NULL DEFAULT 0,
    -- While open, deliveries wait until then; after it one probe is let through.
    open_until           timestamptz,
    -- The cool-down of the last opening, doubled each time a probe fails.
    cool_down_ms         bigint,
    -- The probe in flight holds this lease; a probe whose worker died frees it when it ends.
    probe_until          timestamptz,
    -- Set on resume and when the breaker closes, while the deliveries that waited are put
    -- back on the stream in arrival order: a delivery after this event id waits its turn
    -- instead of overtaking them. NULL once none waits.
    drain_after          uuid,
    -- The last failed attempt's error, whatever the breaker made of it.
    last_error           text,
    last_error_at        timestamptz,
    changed_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, destination)
);

-- Deliveries that wait for their destination (paused, breaker open, or draining) carry an
-- infinite requeue time: the scheduler owns them (0008), yet never finds them due. It puts
-- them back, a page at a time in event id order, once the destination may deliver again;
-- this index finds a destination's waiting deliveries in that order without reading others.
CREATE INDEX deliveries_waiting ON deliveries (destination, event_id)
    WHERE state = 'pending' AND requeue_at = 'infinity';
