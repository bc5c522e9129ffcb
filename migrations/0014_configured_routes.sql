-- The routes (source, destination) the leader last ran with. A new leader sweeps the pending
-- deliveries for those no longer configured only when a route is gone since: the sweep reads
-- every pending delivery (4.7-8.2 s at a million), and a leader starts at every deploy and
-- failover. Empty (the first start of this version), it sweeps once.
CREATE TABLE configured_routes (
    source      text NOT NULL,
    destination text NOT NULL,
    PRIMARY KEY (source, destination)
);
