-- First open per (campaign, subscriber): the basis of unique and human unique opens.
--
-- AggregatingMergeTree with min/max/argMin states, filled by a materialized view on every insert
-- into `hits`. min, max and argMin are idempotent: inserting the same hit again (a replay, the
-- standard log after real time) leaves every value unchanged, so no dedupe is needed here.
-- Only opens (signature valid or missing) are aggregated; forged pixels never make a subscriber
-- an opener. The client, device and country of the *first* open are kept so the breakdowns can
-- attribute each unique opener exactly once without storing subscriber ids in the aggregates.
CREATE TABLE IF NOT EXISTS {db}.first_opens
(
    cid                 String,
    sid                 String,
    cat                 SimpleAggregateFunction(max, String),
    first_open_at       SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_open_at        SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    first_human_open_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    first_client        AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    first_device        AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    first_country       AggregateFunction(argMin, String, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (cid, sid);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.first_opens_mv TO {db}.first_opens AS
SELECT
    cid,
    sid,
    max(cat)                          AS cat,
    min(ts)                           AS first_open_at,
    max(ts)                           AS last_open_at,
    minIfOrNull(ts, machine = '')     AS first_human_open_at,
    argMinState(client, ts)           AS first_client,
    argMinState(device, ts)           AS first_device,
    argMinState(country, ts)          AS first_country
FROM {db}.hits
WHERE signature != 'invalid'
GROUP BY cid, sid;
