-- Delivery state: one row per event and destination, created with the event.
--
-- A failed attempt is acknowledged on the stream and waits here (next_attempt_at), not as a
-- pending stream entry: hour-long backoffs would otherwise pin MINID trimming, and a Redis that
-- loses its data would lose every waiting retry. Whatever is pending and due is put back on the
-- stream by the scheduler, which also makes the stream recoverable after any Redis data loss;
-- that subsumes the enqueue outbox of 0001.
DROP TABLE enqueue_outbox;

CREATE TABLE deliveries (
    event_id         uuid        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    destination      text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead')),
    -- Why the state last changed; copied into the audit trail by the trigger below.
    reason           text        NOT NULL DEFAULT 'received',
    attempts         integer     NOT NULL DEFAULT 0,
    -- Attempts allowed before dead-lettering; a replay raises it for a fresh budget.
    max_attempts     integer     NOT NULL,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- A worker owns the delivery until lease_until; the token proves ownership when it reports.
    lease_until      timestamptz,
    lease_token      uuid,
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    PRIMARY KEY (event_id, destination)
);
-- What the scheduler scans: pending work by due time.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, event_id) WHERE state = 'pending';

CREATE TABLE delivery_attempts (
    id          bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL,
    destination text        NOT NULL,
    attempt     integer     NOT NULL,
    status_code integer,
    error       text,
    duration_ms integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (event_id, destination) REFERENCES deliveries ON DELETE CASCADE
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (event_id, destination, attempt);

CREATE TABLE dead_letters (
    id               uuid        PRIMARY KEY,
    event_id         uuid        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    source           text        NOT NULL,
    destination      text        NOT NULL,
    -- A copy, so a dead letter stays whole whatever retention does to events.
    payload          bytea       NOT NULL,
    attempts         integer     NOT NULL,
    last_error       text,
    last_status      integer,
    -- rejected: the destination answered non-2xx; timeout; connection: it could not be
    -- reached; pipeline: hookgate itself failed (e.g. the destination is no longer configured).
    failure_kind     text        NOT NULL
        CHECK (failure_kind IN ('rejected', 'timeout', 'connection', 'pipeline')),
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz
);
CREATE INDEX dead_letters_created ON dead_letters (created_at DESC, id DESC);
CREATE INDEX dead_letters_open ON dead_letters (source, destination) WHERE replayed_at IS NULL;

-- Audit trail of every status change, of events (destination NULL) and of deliveries.
CREATE TABLE event_transitions (
    id          bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    destination text,
    from_state  text        NOT NULL,
    to_state    text        NOT NULL,
    reason      text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_transitions_event ON event_transitions (event_id, id);

-- Transitions are checked in the database, so no code path can move a delivered delivery back.
CREATE FUNCTION deliveries_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NOT ((OLD.state = 'pending' AND NEW.state IN ('delivered', 'dead'))
                OR (OLD.state = 'dead' AND NEW.state = 'pending')) THEN
            RAISE EXCEPTION 'delivery transition % -> % is not allowed', OLD.state, NEW.state;
        END IF;
        INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason)
        VALUES (NEW.event_id, NEW.destination, OLD.state, NEW.state, NEW.reason);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER deliveries_transition BEFORE UPDATE OF state ON deliveries
    FOR EACH ROW EXECUTE FUNCTION deliveries_transition();

CREATE FUNCTION events_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF OLD.status = 'delivered' THEN
            RAISE EXCEPTION 'event transition % -> % is not allowed', OLD.status, NEW.status;
        END IF;
        INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason)
        VALUES (NEW.id, NULL, OLD.status, NEW.status, CASE NEW.status
            WHEN 'delivered' THEN 'every delivery delivered'
            WHEN 'dead_lettered' THEN 'a delivery was dead-lettered'
            ELSE 'a delivery was replayed' END);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER events_transition BEFORE UPDATE OF status ON events
    FOR EACH ROW EXECUTE FUNCTION events_transition();
