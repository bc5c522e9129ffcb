-- An event's arrival transition is now written by the statement that inserts the event
-- (store/events.rs), not by a statement trigger: the trigger's PL/pgSQL cost ingest a tenth of
-- its throughput (interleaved A/B, 1 KiB at 16 and 64 in flight: 4,811 and 4,900/s with it,
-- 5,415 and 5,258/s without; 8,729 and 8,609/s against 9,877 and 9,575/s). The rows are the
-- same: one per inserted event, none for a duplicate.
DROP TRIGGER events_received ON events;
DROP FUNCTION events_received();
