-- Delivered sends, the denominator of open rates (`opens sends load FILE.csv`).
-- ReplacingMergeTree keyed by (campaign, category, sent_at) with the load time as version:
-- loading the same file again replaces its rows instead of adding to them.
CREATE TABLE IF NOT EXISTS {db}.sends
(
    campaign  String,
    category  String,
    sent_at   DateTime('UTC'),
    sends     UInt64,
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (campaign, category, sent_at);

-- Freshness per source: the newest event time and ingestion time seen, as max states filled
-- from every insert into `hits` (max is idempotent, so replays change nothing).
CREATE TABLE IF NOT EXISTS {db}.pipeline_state
(
    source           LowCardinality(String),
    last_event_at    SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    last_ingested_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY source;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pipeline_state_mv TO {db}.pipeline_state AS
SELECT source, max(ts) AS last_event_at, max(ingested_at) AS last_ingested_at
FROM {db}.hits
GROUP BY source;
