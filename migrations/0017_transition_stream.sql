-- The live status stream (`GET /v1/stream`, `GET /v1/events/{id}/stream`) reads
-- event_transitions in commit order, so every change it shows must be a row here: an event's
-- arrival and each failed attempt become transitions too, with what a reader needs to know of
-- them (the attempt, its error, when the next one is due).
ALTER TABLE event_transitions
    -- NULL for an arrival: the event had no state before.
    ALTER COLUMN from_state DROP NOT NULL,
    ADD COLUMN attempt integer,
    ADD COLUMN status_code integer,
    ADD COLUMN error text,
    ADD COLUMN next_attempt_at timestamptz,
    -- The writing transaction. Ids come from a sequence, taken before commit, so a reader can
    -- see id 8 committed while id 7 is still in flight and would skip 7 if it went by id alone.
    -- Readers instead take only rows of transactions older than every one still running
    -- (pg_snapshot_xmin of their snapshot), in (txid, id) order: a later commit can never
    -- land before a position already read. Added without a default first, so existing rows
    -- (NULL: older than any stream) are not rewritten.
    ADD COLUMN txid bigint;
ALTER TABLE event_transitions ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX event_transitions_stream ON event_transitions (txid, id);

-- Deliveries: as in 0010, plus a row for each failed attempt that leaves the delivery pending
-- (its worker gives up the lease with the reason `retry scheduled`), and the attempt's details
-- on every row.
CREATE OR REPLACE FUNCTION deliveries_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    refused record;
BEGIN
    SELECT o.state AS from_state, n.state AS to_state INTO refused
    FROM old_rows o JOIN new_rows n USING (event_id, destination)
    WHERE o.state IS DISTINCT FROM n.state
      AND NOT ((o.state = 'pending' AND n.state IN ('delivered', 'dead'))
               OR (o.state = 'dead' AND n.state = 'pending')
               -- Only a redelivery may revive a delivered delivery, so no other code path
               -- can send an event twice by accident.
               OR (o.state = 'delivered' AND n.state = 'pending'
                   AND n.reason = 'redelivered'))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'delivery transition % -> % is not allowed',
            refused.from_state, refused.to_state;
    END IF;
    INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason,
                                   attempt, status_code, error, next_attempt_at)
    SELECT n.event_id, n.destination, o.state, n.state, n.reason, n.attempts, n.last_status,
           n.last_error, CASE WHEN n.state = 'pending' THEN n.next_attempt_at END
    FROM old_rows o JOIN new_rows n USING (event_id, destination)
    WHERE o.state IS DISTINCT FROM n.state
       OR (n.state = 'pending' AND n.reason = 'retry scheduled'
           AND o.lease_token IS NOT NULL AND n.lease_token IS NULL)
    ORDER BY n.event_id, n.destination;
    RETURN NULL;
END $$;

-- An event's arrival, once per inserted event (a duplicate inserts nothing).
CREATE FUNCTION events_received() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason)
    SELECT n.id, NULL, NULL, n.status, 'received'
    FROM new_rows n
    ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER events_received AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION events_received();

-- Wakes the stream readers of every process (one LISTEN connection each) once per statement
-- that wrote transitions; the payload names the schema, so gateways sharing a database in
-- other schemas ignore it. Postgres folds repeats within a transaction into one notification.
CREATE FUNCTION event_transitions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('hookgate_transitions', current_schema());
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER event_transitions_notify AFTER INSERT ON event_transitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION event_transitions_notify();
