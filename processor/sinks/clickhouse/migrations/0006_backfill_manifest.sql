-- Objects `opens backfill` has finished: one row per (object, ETag), written only after every
-- hit of the object is in ClickHouse (--direct) or acknowledged by Kafka (default mode).
--
-- ReplacingMergeTree(finished_at) keyed by (object, etag): `--force` redoes an object and writes
-- its row again, and the newest row replaces the older one instead of adding to it. A changed
-- object has a new ETag, so it is not mistaken for a finished one. `failures` counts bad lines by
-- reason; `examples` names the first lines of each (`reason@line`), so a bad object can be found.
CREATE TABLE IF NOT EXISTS {db}.backfill_manifest
(
    object      String,
    etag        String,
    size        UInt64,
    format      LowCardinality(String),
    mode        LowCardinality(String),
    lines       UInt64,
    hits        UInt64,
    bad_lines   UInt64,
    complete    UInt8,
    failures    Map(String, UInt64),
    examples    Array(String),
    finished_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(finished_at)
ORDER BY (object, etag);
