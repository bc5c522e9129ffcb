-- The scheduler reads the two kinds of requeue rows apart: those it owes an entry (a retry due,
-- a lease run out) at their time, and those whose entry it only checks for (10 s after an
-- enqueue) at their time only once the source's group has read its whole stream, or after a
-- long patience. While workers drain a backlog, the events still waiting on the stream would
-- otherwise each cost a check and an update once their 10 s were up: a million of them right
-- when the gateway has to catch up.
DROP INDEX deliveries_requeue;
CREATE INDEX deliveries_requeue ON deliveries (requeue_check, requeue_at)
    WHERE state = 'pending' AND requeue_at IS NOT NULL;
