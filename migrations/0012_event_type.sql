-- The provider's event type (`push`, `invoice.paid`), NULL when a webhook names none. Adding a
-- nullable column without a default rewrites nothing: existing events read as NULL.
ALTER TABLE events ADD COLUMN event_type text;

-- Event listings by type, newest first (`GET /v1/events?event_type=`, `hookgate events list
-- --event-type`): without it such a listing reads every event. An exact type is a scan of the
-- index in listing order; a prefix (`invoice.*`) is the range ~>=~ 'invoice.' AND ~<~ 'invoice/'
-- of the byte-wise order, which text_pattern_ops serves whatever the database's collation (the
-- matching rows are then sorted). Partial: events without a type are never listed by type.
CREATE INDEX events_type_received ON events (event_type text_pattern_ops, received_at DESC, id DESC)
    WHERE event_type IS NOT NULL;
