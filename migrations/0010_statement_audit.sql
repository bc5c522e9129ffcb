-- The audit trail is written per statement, not per row: a worker records many outcomes in one
-- statement, and a row trigger's function call and INSERT for each changed row cost more than
-- the change itself. The rules of 0007 are unchanged, checked over each statement's transition
-- tables; a statement with one forbidden change fails as a whole, as before.
DROP TRIGGER deliveries_transition ON deliveries;
DROP FUNCTION deliveries_transition();

CREATE FUNCTION deliveries_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
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
    INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason)
    SELECT n.event_id, n.destination, o.state, n.state, n.reason
    FROM old_rows o JOIN new_rows n USING (event_id, destination)
    WHERE o.state IS DISTINCT FROM n.state
    ORDER BY n.event_id, n.destination;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_transitions AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION deliveries_transitions();

DROP TRIGGER events_transition ON events;
DROP FUNCTION events_transition();

CREATE FUNCTION events_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    refused record;
BEGIN
    SELECT o.status AS from_state, n.status AS to_state INTO refused
    FROM old_rows o JOIN new_rows n USING (id)
    WHERE o.status IS DISTINCT FROM n.status
      AND o.status = 'delivered' AND n.status <> 'pending'
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event transition % -> % is not allowed',
            refused.from_state, refused.to_state;
    END IF;
    INSERT INTO event_transitions (event_id, destination, from_state, to_state, reason)
    SELECT n.id, NULL, o.status, n.status, CASE
        WHEN n.status = 'delivered' THEN 'every delivery delivered'
        WHEN n.status = 'dead_lettered' THEN 'a delivery was dead-lettered'
        WHEN o.status = 'delivered' THEN 'a delivery was redelivered'
        ELSE 'a delivery was replayed' END
    FROM old_rows o JOIN new_rows n USING (id)
    WHERE o.status IS DISTINCT FROM n.status
    ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER events_transitions AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION events_transitions();
