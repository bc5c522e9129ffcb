-- What each source's requests came to, per minute, for the console's overview and
-- `GET /v1/sources`: duplicates and refusals leave no event row, so receivers count every
-- request by outcome and add their counts here every second. Kept for a day.
CREATE TABLE ingress_counts (
    minute  timestamptz NOT NULL,
    source  text NOT NULL,
    outcome text NOT NULL,
    count   bigint NOT NULL,
    PRIMARY KEY (minute, source, outcome)
);
