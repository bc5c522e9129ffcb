-- The provider's event type (`push`, `invoice.paid`), NULL when a webhook names none. Adding a
-- nullable column without a default rewrites nothing: existing events read as NULL.
ALTER TABLE events ADD COLUMN event_type text;

-- Event listings by type, newest first (`GET /v1/events?event_type=`, `hookgate events list
-- --event-type`): without it such a listing reads every event. text_pattern_ops lets the same
-- index serve both an exact type (=) and a prefix (`invoice.*`, a LIKE 'invoice.%') whatever
-- the database's collation. Partial: events without a type are never listed by type.
CREATE INDEX events_type_received ON events (event_type text_pattern_ops, received_at DESC, id DESC)
    WHERE event_type IS NOT NULL;
