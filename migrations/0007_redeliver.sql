-- Redelivery: an operator may send a delivered event again to a consumer that lost it, so a
-- delivered delivery (and its event) may go back to pending, the delivery only with the reason
-- `redelivered`. Every other transition refused by 0002 stays refused.
CREATE OR REPLACE FUNCTION deliveries_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state THEN
        IF NOT ((OLD.state = 'pending' AND NEW.state IN ('delivered', 'dead'))
                OR (OLD.state = 'dead' AND NEW.state = 'pending')
                -- Only a redelivery may revive a delivered delivery, so no other code path can
                -- send an event twice by accident.
                OR (OLD.state = 'delivered' AND NEW.state = 'pending'
                    AND NEW.reason = 'redelivered')) THEN
            RAISE EXCEPTION 'delivery transition % -> % is not allowed', OLD.state, NEW.state;
        END IF;
        INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason)
        VALUES (NEW.event_id, NEW.destination, OLD.state, NEW.state, NEW.reason);
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION events_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF OLD.status = 'delivered' AND NEW.status <> 'pending' THEN
            RAISE EXCEPTION 'event transition % -> % is not allowed', OLD.status, NEW.status;
        END IF;
        INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason)
        VALUES (NEW.id, NULL, OLD.status, NEW.status, CASE
            WHEN NEW.status = 'delivered' THEN 'every delivery delivered'
            WHEN NEW.status = 'dead_lettered' THEN 'a delivery was dead-lettered'
            WHEN OLD.status = 'delivered' THEN 'a delivery was redelivered'
            ELSE 'a delivery was replayed' END);
    END IF;
    RETURN NEW;
END $$;

-- `GET /v1/events?external_id=...` without a source; with one, events_source_external_id_key
-- serves it.
CREATE INDEX events_external_id ON events (external_id);

-- Bulk redelivery runs as an operation, like bulk replay.
ALTER TABLE operations DROP CONSTRAINT operations_kind_check,
    ADD CONSTRAINT operations_kind_check CHECK (kind IN ('replay', 'redeliver'));
