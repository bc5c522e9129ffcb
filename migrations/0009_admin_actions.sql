-- The operators' audit log. `event_transitions` says what changed in an event or delivery;
-- this says who asked for it, so "who replayed these last night?" and "who deleted that dead
-- letter?" have an answer after the fact. A row is written in the transaction of the action it
-- records (a bulk operation's: the one that creates it), so the log never misses an action that
-- happened and never shows one that rolled back.
CREATE TABLE admin_actions (
    id      uuid        PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    -- The admin token's configured name (never the token itself), or `cli:<user>` for the
    -- command line: who to ask about an action.
    actor   text        NOT NULL,
    -- 'pause' and 'resume' are for pausing a destination, which is not built yet: allowed now
    -- so that feature needs no migration of this table.
    action  text        NOT NULL CHECK (action IN ('replay', 'redeliver', 'delete', 'purge',
                                                   'cancel', 'pause', 'resume')),
    -- JSON because every action names different things (dead letter ids, an event and its
    -- destinations, a bulk filter, an operation), and the log is read, never joined: the rows
    -- it names may be gone (purged, or deleted by retention) while the record stays.
    target  jsonb       NOT NULL,
    -- What came of it: counts and the ids it changed, or the operation it started.
    outcome jsonb       NOT NULL
);

-- GET /v1/admin-actions pages newest first on (at, id), like every other listing. Filters by
-- actor or action walk the same index rather than having their own: operators act a few times
-- a day, so the log stays small beside events and dead letters.
CREATE INDEX admin_actions_at ON admin_actions (at DESC, id DESC);
