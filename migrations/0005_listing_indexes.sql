-- Indexes for what operators look up most, so each stays an index scan however large the
-- tables grow.

-- An event's dead letters, oldest first: every GET /v1/events/{id} and `hookgate events show`.
CREATE INDEX dead_letters_event ON dead_letters (event_id, created_at, id);

-- Event listings by status or by source, newest first, paged on (received_at, id).
CREATE INDEX events_status_received ON events (status, received_at DESC, id DESC);
CREATE INDEX events_source_received ON events (source, received_at DESC, id DESC);

-- Open dead letters of a source, newest first: the dead-letter listing's usual filter (with or
-- without a destination), and the order bulk replays walk it in, read backwards.
CREATE INDEX dead_letters_open_source ON dead_letters (source, created_at DESC, id DESC)
    WHERE replayed_at IS NULL;
