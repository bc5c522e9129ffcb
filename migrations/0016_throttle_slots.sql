-- A delivery its destination's throttle deferred keeps the rate slot it reserved then: claimed
-- again shortly before it, it goes at that slot instead of queueing behind every reservation
-- made since (which would defer it again, and again). Cleared by the delivery's next outcome.
ALTER TABLE deliveries ADD COLUMN throttle_slot timestamptz;
