-- Pending deliveries by event id, in place of deliveries_due (by due time). A claim asks for
-- `event_id = ANY(...) AND state = 'pending'`; deliveries_due could serve that only as a scan
-- of the whole index, and the planner chose exactly that (ANDed with the primary key) for its
-- generic plan, so every claim read every pending delivery: the worker slowed down as its
-- backlog grew. Keyed by event id, the same partial index is a lookup for a claim, and the
-- walks over all pending deliveries (recovery after Redis lost its data, the sweep of
-- unrouted deliveries) page through it. Due times are the scheduler's, through
-- deliveries_requeue (0008).
CREATE INDEX deliveries_pending ON deliveries (event_id) WHERE state = 'pending';
DROP INDEX deliveries_due;
