-- Raw pixel requests, one row per CloudFront request.
--
-- ReplacingMergeTree keyed by (cid, sid, request_id): a request delivered twice (Kinesis
-- redelivery, a replayed Kafka offset, real time + standard log overlap, a re-run backfill)
-- collapses to one row, so readers that use FINAL or GROUP BY request_id never count it twice.
-- `ts` is not in the key: the real-time log has milliseconds, the standard log whole seconds,
-- and both describe the same request. Partitions by month of the event keep late data cheap.
CREATE TABLE IF NOT EXISTS {db}.hits
(
    request_id    String,
    ts            DateTime64(3, 'UTC'),
    source        LowCardinality(String),
    sid           String,
    cid           String,
    cat           String,
    signature     LowCardinality(String),
    method        LowCardinality(String),
    status        UInt16,
    uri           String,
    edge_location LowCardinality(String),
    client_ip     String,
    country       LowCardinality(String),
    user_agent    String,
    client        LowCardinality(String),
    device        LowCardinality(String),
    machine       LowCardinality(String),
    referer       String,
    bytes         UInt64,
    time_taken    Float32,
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (cid, sid, request_id);
