-- Per-minute aggregates by campaign and the dimensions analysts slice by.
--
-- The states are *sets of CloudFront request ids* (uniqExactState), not counters: a replayed or
-- duplicated hit adds an id that is already in the set, so no number moves (a SummingMergeTree
-- `+= 1` would double on every replay). uniqExact is exact. Late hits land in the minute they
-- happened (`minute` comes from the event time), and merging states across minutes never
-- counts one request twice. Subscriber ids are not stored here (see `opens forget`).
-- Ordered by dimensions, then time.
CREATE TABLE IF NOT EXISTS {db}.opens_by_minute
(
    cid           String,
    client        LowCardinality(String),
    device        LowCardinality(String),
    country       LowCardinality(String),
    minute        DateTime('UTC'),
    cat           SimpleAggregateFunction(max, String),
    opens         AggregateFunction(uniqExact, String),
    human_opens   AggregateFunction(uniqExact, String),
    machine_opens AggregateFunction(uniqExact, String),
    invalid_hits  AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (cid, client, device, country, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.opens_by_minute_mv TO {db}.opens_by_minute AS
SELECT
    cid,
    client,
    device,
    country,
    toStartOfMinute(ts)                                                    AS minute,
    max(cat)                                                               AS cat,
    uniqExactStateIf(request_id, signature != 'invalid')                   AS opens,
    uniqExactStateIf(request_id, signature != 'invalid' AND machine = '')  AS human_opens,
    uniqExactStateIf(request_id, signature != 'invalid' AND machine != '') AS machine_opens,
    uniqExactStateIf(request_id, signature = 'invalid')                    AS invalid_hits
FROM {db}.hits
GROUP BY cid, client, device, country, minute;
