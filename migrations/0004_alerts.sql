-- Whether each source's dead-letter alert is firing. Every worker process evaluates the
-- threshold; the one whose update flips this row sends the notification, so an alert goes out
-- once however many workers run.
CREATE TABLE dead_letter_alerts (
    source     text        PRIMARY KEY,
    firing     boolean     NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
