-- First opens without a GROUP BY at insert time. Aggregating each inserted block by (cid, sid)
-- cost more than everything else the insert into `hits` does (a million-row block: 200k rows/s
-- with it, 400k+ without, bench in the closing note of issue 7); subscribers are nearly all
-- distinct within a block, so the grouping bought almost nothing. Every hit now becomes one
-- row of per-row states (`initializeAggregation`), and the AggregatingMergeTree's own merges
-- collapse them in the background. Readers already GROUP BY (cid, sid) with min/max/argMinMerge,
-- so their numbers do not change, and the states are still idempotent under replays.
--
-- The new view is created before the old one is dropped, so a writer inserting while this runs
-- never misses first opens (while both exist a hit lands twice, which min/max/argMin absorb).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.first_opens_rows_mv TO {db}.first_opens AS
SELECT
    cid,
    sid,
    cat,
    ts                                                          AS first_open_at,
    ts                                                          AS last_open_at,
    if(machine = '', toNullable(ts), NULL)                      AS first_human_open_at,
    initializeAggregation('argMinState', toString(client), ts)  AS first_client,
    initializeAggregation('argMinState', toString(device), ts)  AS first_device,
    initializeAggregation('argMinState', toString(country), ts) AS first_country
FROM {db}.hits
WHERE signature != 'invalid';

DROP VIEW IF EXISTS {db}.first_opens_mv;
