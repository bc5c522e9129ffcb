-- Retention deletes settled events with their deliveries, attempts and audit trail (the
-- cascades of 0002), but never a dead letter through its event: an event is kept as long as
-- any of its dead letters, whose `dlq show` and replays read its headers and deliveries. A
-- delete that would break this rule now fails instead of silently taking dead letters along.
ALTER TABLE dead_letters
    DROP CONSTRAINT dead_letters_event_id_fkey,
    ADD CONSTRAINT dead_letters_event_id_fkey
        FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE RESTRICT;

-- A retention pass walks a source's events oldest first through events_source_received (0005),
-- read backwards.
