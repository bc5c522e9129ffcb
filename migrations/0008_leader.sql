-- One leader runs the background work, and none of it scans whole tables.

-- When the scheduler next owes a pending delivery a look, and what kind. The scheduler reads
-- only rows whose time has come (deliveries_requeue), so its cost per tick follows what is due
-- for a decision, not how many deliveries already wait on a stream (those have NULL here):
-- - ingest, replay and redelivery set now + a grace with requeue_check: an entry was added,
--   and the scheduler checks after the grace that it is still queued, adding one if not;
-- - a claim sets the lease's end: a worker that dies owes the scheduler a requeue then;
-- - a failed attempt sets its retry time.
-- A worker's claim or outcome overwrites it, so the scheduler clears only values it has read.
ALTER TABLE deliveries
    ADD COLUMN requeue_at timestamptz,
    ADD COLUMN requeue_check boolean NOT NULL DEFAULT false;
CREATE INDEX deliveries_requeue ON deliveries (requeue_at)
    WHERE state = 'pending' AND requeue_at IS NOT NULL;

-- The epoch each source's Redis keys were last known to carry. A Redis that lost its data has
-- no epoch (or another one): every delivery it held is then requeued. A source with no row
-- here (the first start of this version) is checked the same way, so nothing queued before
-- the upgrade is lost or sent twice.
CREATE TABLE stream_epochs (
    source     text        PRIMARY KEY,
    epoch      text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- Open dead letters per source and destination, as sums of signed deltas: each statement that
-- opens or closes dead letters appends one row per pair it touched (no row is updated, so
-- concurrent writers never wait on each other), and the leader folds the rows into one per pair
-- every few seconds. The depth gauges and alerts read this small table instead of counting.
CREATE TABLE dead_letter_counts (
    source      text   NOT NULL,
    destination text   NOT NULL,
    open        bigint NOT NULL
);
INSERT INTO dead_letter_counts
    SELECT source, destination, count(*) FROM dead_letters
    WHERE replayed_at IS NULL GROUP BY source, destination;

CREATE FUNCTION dead_letter_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dead_letter_counts
        SELECT source, destination, count(*) FROM new_rows
        WHERE replayed_at IS NULL GROUP BY source, destination;
    RETURN NULL;
END $$;
CREATE TRIGGER dead_letter_counts_insert AFTER INSERT ON dead_letters
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_counts_insert();

CREATE FUNCTION dead_letter_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dead_letter_counts
        SELECT n.source, n.destination,
               sum((n.replayed_at IS NULL)::int - (o.replayed_at IS NULL)::int)
        FROM old_rows o JOIN new_rows n USING (id)
        WHERE (o.replayed_at IS NULL) <> (n.replayed_at IS NULL)
        GROUP BY n.source, n.destination;
    RETURN NULL;
END $$;
CREATE TRIGGER dead_letter_counts_update AFTER UPDATE ON dead_letters
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_counts_update();

CREATE FUNCTION dead_letter_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dead_letter_counts
        SELECT source, destination, -count(*) FROM old_rows
        WHERE replayed_at IS NULL GROUP BY source, destination;
    RETURN NULL;
END $$;
CREATE TRIGGER dead_letter_counts_delete AFTER DELETE ON dead_letters
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_counts_delete();

-- Alert notifications not yet sent. A state change and its notification commit together, and
-- the leader deletes the row once the alert receiver answered 2xx: a restart in between
-- neither loses a notification nor (but for a crash between the answer and the delete) sends
-- one twice. Each carries its id, so a receiver can drop that one repeat.
CREATE TABLE alert_outbox (
    id              bigserial   PRIMARY KEY,
    body            jsonb       NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
