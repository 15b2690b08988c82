-- One canonical row per request, and aggregates built for a month of a large sender.
--
-- Why. Until migration 10 every view merged sets of request ids (uniqExact states in
-- opens_by_minute) and one row per hit of first_opens: exact, but at 5M hits the summary took
-- 2.9 s and 630 MiB, growing faster than linearly. And a request seen twice (its real-time record
-- and its standard-log line) kept whichever copy merges or argMin met first: the legacy copy
-- (whole seconds, no country) often won, so countries and milliseconds were lost.
--
-- The design, in three parts:
--
-- 1. `hits` becomes ReplacingMergeTree(version), partitioned by day of the event. `version`
--    orders the copies of one request: the earliest second first, then the richest copy
--    (quality: real time's milliseconds, then a country), then the earliest millisecond. So the
--    copy kept after merges, and the one `FINAL` reads before them, is the same whatever the
--    arrival order or path. Copies of one request share (cid, sid, request_id) and, being one
--    request, the same day; a hostile replay moving a request to another *day* would stay two
--    rows (documented in the README).
--
-- 2. Request counts are plain numbers, never sets. A day's counts are *sealed*: computed once
--    from `hits FINAL` for that day into `sealed_counts` (per minute, per client/device, per
--    country, per machine reason), swapped in whole with REPLACE PARTITION, stamped with the
--    time the seal's snapshot began minus a margin (`as_of`). `day_changes` records, through a
--    view on `hits`, when each day last received a row. A day is read from its seal only when
--    the seal is newer than its last change; otherwise (today, a day with late data, a
--    re-backfill) the views count that day from `hits FINAL` directly. Sealing therefore only
--    makes reading cheaper: a day that was never sealed, or changed since, is still counted
--    exactly, and a late or replayed hit can never be counted twice. The worker seals quiet days
--    in the background (`opens schema seal` does it by hand).
--
-- 3. Subscriber state is kept once per (campaign, subscriber) in `opener_state`, with plain
--    min/max columns that merges collapse: first and last open, first human open, the
--    attribution (client, device, country of the first human open, else the first open) as a
--    min over (machine?, order key, …), and the machine reasons seen. Each copy of a request
--    enters with the same order key as `version`, so the richest copy of the first open wins
--    here too. Only countable hits (signature not invalid) enter: a forged pixel never makes a
--    campaign row, an opener or a category.
--
-- Upgrade in place, with writers running: the new `hits` is filled by a second view on
-- `hits_ingest` *before* the old rows are copied (a row written meanwhile lands twice, and the
-- replacing engine keeps one), then the two tables are exchanged by name (the writers' view
-- follows the name `hits`), and only then are the new aggregates created and filled from it.
-- The old aggregate tables are dropped last; `first_opens` and `opens_by_minute` stay as views
-- with plain columns.

CREATE TABLE IF NOT EXISTS {db}.hits_next
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
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3),
    quality       UInt8 MATERIALIZED 2 * (source = 'realtime') + (country != ''),
    order_key     UInt64 MATERIALIZED bitOr(
                      bitShiftLeft(toUInt64(toUnixTimestamp(ts)), 12),
                      bitOr(bitShiftLeft(toUInt64(3 - quality), 10),
                            toUInt64(toUnixTimestamp64Milli(ts) % 1000))),
    version       UInt64 MATERIALIZED bitNot(order_key)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (cid, sid, request_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hits_ingest_next_mv TO {db}.hits_next AS
SELECT *
FROM {db}.hits_ingest
WHERE sid NOT IN (
    SELECT sid FROM {db}.forgotten_subscribers
    GROUP BY sid
    HAVING argMax(forgotten, (changed_at, forgotten)) = 1
);

INSERT INTO {db}.hits_next
SELECT * FROM {db}.hits
SETTINGS max_partitions_per_insert_block = 0, optimize_on_insert = 0;

DROP VIEW IF EXISTS {db}.first_opens_rows_mv;

DROP VIEW IF EXISTS {db}.opens_by_minute_mv;

DROP VIEW IF EXISTS {db}.pipeline_state_mv;

EXCHANGE TABLES {db}.hits AND {db}.hits_next;

DROP VIEW IF EXISTS {db}.hits_ingest_next_mv;

DROP TABLE IF EXISTS {db}.hits_next;

-- When each day last received a row (the view runs inside the insert, so now64() is the insert's
-- time). Deleting writers (opens forget, opens reclassify) add rows here themselves.
CREATE TABLE IF NOT EXISTS {db}.day_changes
(
    day        Date,
    changed_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY day;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.day_changes_mv TO {db}.day_changes AS
SELECT toDate(ts) AS day, max(now64(3)) AS changed_at
FROM {db}.hits
GROUP BY day;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pipeline_state_hits_mv TO {db}.pipeline_state AS
SELECT source, max(ts) AS last_event_at, max(ingested_at) AS last_ingested_at
FROM {db}.hits
GROUP BY source;

-- Order keys: (second << 12) | (3 - quality) << 10 | millisecond — the same as hits.order_key,
-- so the smallest key of a subscriber is the richest copy of their first open. `last_key` puts
-- quality the other way round so its *largest* value is the richest copy of the last open.
-- human_key is the largest UInt64 for a machine open (min ignores it when a human one exists).
CREATE TABLE IF NOT EXISTS {db}.opener_state
(
    cid         String,
    sid         String,
    cat         SimpleAggregateFunction(max, String),
    first_key   SimpleAggregateFunction(min, UInt64),
    last_key    SimpleAggregateFunction(max, UInt64),
    human_key   SimpleAggregateFunction(min, UInt64),
    attribution SimpleAggregateFunction(min, Tuple(UInt64, String, String, String)),
    machines    SimpleAggregateFunction(groupUniqArrayArray, Array(String))
)
ENGINE = AggregatingMergeTree
ORDER BY (cid, sid);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.opener_state_mv TO {db}.opener_state AS
SELECT
    cid,
    sid,
    cat,
    order_key                                                             AS first_key,
    bitOr(bitAnd(order_key, bitNot(toUInt64(3072))),
          bitShiftLeft(toUInt64(quality), 10))                            AS last_key,
    if(machine = '', order_key, toUInt64(18446744073709551615))           AS human_key,
    (bitOr(bitShiftLeft(toUInt64(machine != ''), 63), order_key),
     toString(client), toString(device), toString(country))               AS attribution,
    if(machine = '', CAST([], 'Array(String)'), [toString(machine)])      AS machines
FROM {db}.hits
WHERE signature != 'invalid';

-- Sealed request counts: one partition per day, replaced whole by each seal. `kind` says which
-- grouping a row belongs to; the other dimensions are empty for it.
CREATE TABLE IF NOT EXISTS {db}.sealed_counts
(
    day                    Date,
    as_of                  DateTime64(3, 'UTC'),
    kind                   LowCardinality(String),
    cid                    String,
    minute                 DateTime('UTC'),
    client                 LowCardinality(String),
    device                 LowCardinality(String),
    country                LowCardinality(String),
    machine                LowCardinality(String),
    opens                  UInt64,
    human_opens            UInt64,
    machine_opens          UInt64,
    invalid_hits           UInt64
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY (kind, cid, minute, client, device, country, machine);

-- Fill the new aggregates from the rows already stored. The views above are live, so a row
-- written meanwhile may enter twice: min/max absorb it, and day_changes only moves forward.
INSERT INTO {db}.opener_state
SELECT
    cid, sid, cat, order_key,
    bitOr(bitAnd(order_key, bitNot(toUInt64(3072))), bitShiftLeft(toUInt64(quality), 10)),
    if(machine = '', order_key, toUInt64(18446744073709551615)),
    (bitOr(bitShiftLeft(toUInt64(machine != ''), 63), order_key),
     toString(client), toString(device), toString(country)),
    if(machine = '', CAST([], 'Array(String)'), [toString(machine)])
FROM {db}.hits
WHERE signature != 'invalid';

INSERT INTO {db}.day_changes
SELECT toDate(ts) AS day, max(now64(3)) FROM {db}.hits GROUP BY day;

-- Raw-hit retention (`opens schema ttl`): 0 keeps raw hits forever. A sealed day older than
-- the retention is read from its seal even after a change: its raw rows are gone, so counting it
-- live would lose them (a late row for it still lands in `hits` and in opener_state).
CREATE TABLE IF NOT EXISTS {db}.raw_retention
(
    days       UInt32,
    changed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(changed_at)
ORDER BY tuple();

-- Days that must be counted from `hits` (never sealed, or changed since their seal).
CREATE OR REPLACE VIEW {db}.live_days AS
WITH (SELECT argMax(days, changed_at) FROM {db}.raw_retention) AS retention
SELECT c.day AS day
FROM (SELECT day, max(changed_at) AS changed_at FROM {db}.day_changes GROUP BY day) AS c
LEFT JOIN (SELECT day, min(as_of) AS as_of FROM {db}.sealed_counts GROUP BY day) AS s
    ON s.day = c.day
WHERE s.as_of IS NULL
   OR (s.as_of <= c.changed_at AND NOT (retention > 0 AND c.day < today() - retention))
SETTINGS join_use_nulls = 1;

-- The canonical row of each request of the live days.
CREATE OR REPLACE VIEW {db}.live_hits AS
SELECT cid, sid, request_id, ts, cat, signature, client, device, country, machine
FROM {db}.hits FINAL
WHERE toYYYYMMDD(ts) IN (SELECT toYYYYMMDD(day) FROM {db}.live_days)
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- Sealed days (their seal is newer than their last change).
CREATE OR REPLACE VIEW {db}.sealed_rows AS
SELECT *
FROM {db}.sealed_counts
WHERE day NOT IN (SELECT day FROM {db}.live_days);

-- Request counts of sealed and live days together. The inner columns are named n_* so the
-- outer sums can take the contract's names without shadowing them.
CREATE OR REPLACE VIEW {db}.counts_by_minute AS
SELECT cid, minute, sum(n_opens) AS opens, sum(n_human) AS human_opens,
       sum(n_machine) AS machine_opens, sum(n_invalid) AS invalid_hits
FROM (
    SELECT cid, minute, opens AS n_opens, human_opens AS n_human, machine_opens AS n_machine,
           invalid_hits AS n_invalid
    FROM {db}.sealed_rows WHERE kind = 'minute'
    UNION ALL
    SELECT cid, toStartOfMinute(ts) AS minute,
           countIf(signature != 'invalid') AS n_opens,
           countIf(signature != 'invalid' AND machine = '') AS n_human,
           countIf(signature != 'invalid' AND machine != '') AS n_machine,
           countIf(signature = 'invalid') AS n_invalid
    FROM {db}.live_hits GROUP BY cid, minute
)
GROUP BY cid, minute;

CREATE OR REPLACE VIEW {db}.counts_by_client AS
SELECT cid, client, device, sum(n_opens) AS opens, sum(n_human) AS human_opens,
       sum(n_machine) AS machine_opens
FROM (
    SELECT cid, client, device, opens AS n_opens, human_opens AS n_human,
           machine_opens AS n_machine
    FROM {db}.sealed_rows WHERE kind = 'client'
    UNION ALL
    SELECT cid, client, device, count() AS n_opens, countIf(machine = '') AS n_human,
           countIf(machine != '') AS n_machine
    FROM {db}.live_hits WHERE signature != 'invalid' GROUP BY cid, client, device
)
GROUP BY cid, client, device;

CREATE OR REPLACE VIEW {db}.counts_by_country AS
SELECT cid, country, sum(n_opens) AS opens
FROM (
    SELECT cid, country, opens AS n_opens FROM {db}.sealed_rows WHERE kind = 'country'
    UNION ALL
    SELECT cid, country, count() AS n_opens FROM {db}.live_hits
    WHERE signature != 'invalid' GROUP BY cid, country
)
GROUP BY cid, country;

CREATE OR REPLACE VIEW {db}.counts_by_machine AS
SELECT cid, machine, sum(n_opens) AS opens
FROM (
    SELECT cid, machine, opens AS n_opens FROM {db}.sealed_rows
    WHERE kind = 'machine' AND machine != ''
    UNION ALL
    SELECT cid, machine, count() AS n_opens FROM {db}.live_hits
    WHERE signature != 'invalid' AND machine != '' GROUP BY cid, machine
)
GROUP BY cid, machine;

-- One row per (campaign, subscriber) with plain values.
CREATE OR REPLACE VIEW {db}.openers AS
SELECT
    cid,
    sid,
    cat,
    fromUnixTimestamp64Milli(toInt64(bitShiftRight(first_key, 12) * 1000
                                     + bitAnd(first_key, 1023)), 'UTC')   AS first_open_at,
    fromUnixTimestamp64Milli(toInt64(bitShiftRight(last_key, 12) * 1000
                                     + bitAnd(last_key, 1023)), 'UTC')    AS last_open_at,
    if(human_key = 18446744073709551615, NULL,
       fromUnixTimestamp64Milli(toInt64(bitShiftRight(human_key, 12) * 1000
                                        + bitAnd(human_key, 1023)), 'UTC')) AS first_human_open_at,
    fromUnixTimestamp64Milli(toInt64(bitShiftRight(bitAnd(attribution.1, 9223372036854775807), 12)
                                     * 1000 + bitAnd(attribution.1, 1023)), 'UTC') AS attributed_at,
    attribution.2                                                          AS client,
    attribution.3                                                          AS device,
    attribution.4                                                          AS country,
    machines
FROM {db}.opener_state FINAL;

-- Kept under the old names with plain columns (they were aggregate-state tables).
DROP VIEW IF EXISTS {db}.campaign_summary;

DROP TABLE IF EXISTS {db}.first_opens;

DROP TABLE IF EXISTS {db}.opens_by_minute;

CREATE OR REPLACE VIEW {db}.first_opens AS
SELECT cid, sid, cat, first_open_at, last_open_at, first_human_open_at,
       client AS first_client, device AS first_device, country AS first_country
FROM {db}.openers;

CREATE OR REPLACE VIEW {db}.opens_by_minute AS
SELECT cid, minute, opens, human_opens, machine_opens, invalid_hits
FROM {db}.counts_by_minute;

-- The current sends of a campaign: the rows of its latest load (a file replaces every send row of
-- the campaigns it lists, `opens sends load`).
CREATE OR REPLACE VIEW {db}.current_sends AS
SELECT campaign, category, sent_at, sends
FROM {db}.sends
WHERE (campaign, loaded_at) IN (SELECT campaign, max(loaded_at) FROM {db}.sends GROUP BY campaign);

-- The analysts' contract (DESIGN §5). A campaign has a row when it has sends or countable opens;
-- hits with a forged signature are counted in invalid_hits, and those for campaigns that have
-- neither are shown to operators in `invalid_hits_by_campaign`.
CREATE OR REPLACE VIEW {db}.campaign_summary AS
WITH
    m AS (
        SELECT cid, sum(opens) AS opens, sum(machine_opens) AS machine_opens,
               sum(invalid_hits) AS invalid_hits
        FROM {db}.counts_by_minute GROUP BY cid
    ),
    f AS (
        SELECT cid, max(cat) AS cat, count() AS unique_opens,
               countIf(first_human_open_at IS NOT NULL) AS human_unique_opens,
               min(first_open_at) AS first_at, max(last_open_at) AS last_at,
               min(first_human_open_at) AS first_human_at
        FROM {db}.openers GROUP BY cid
    ),
    s AS (
        SELECT campaign, max(category) AS category, sum(sends) AS sends
        FROM {db}.current_sends GROUP BY campaign
    ),
    c AS (SELECT cid FROM f UNION DISTINCT SELECT campaign AS cid FROM s)
SELECT
    c.cid                                                        AS campaign,
    if(ifNull(f.cat, '') != '', f.cat, ifNull(s.category, ''))   AS category,
    ifNull(s.sends, 0)                                           AS sends,
    ifNull(m.opens, 0)                                           AS opens,
    ifNull(f.unique_opens, 0)                                    AS unique_opens,
    ifNull(f.human_unique_opens, 0)                              AS human_unique_opens,
    ifNull(m.machine_opens, 0)                                   AS machine_opens,
    ifNull(m.invalid_hits, 0)                                    AS invalid_hits,
    if(sends > 0, unique_opens / sends, NULL)                    AS open_rate,
    if(sends > 0, human_unique_opens / sends, NULL)              AS human_open_rate,
    f.first_at                                                   AS first_open_at,
    f.last_at                                                    AS last_open_at,
    f.first_human_at                                             AS first_human_open_at
FROM c
LEFT JOIN m ON m.cid = c.cid
LEFT JOIN f ON f.cid = c.cid
LEFT JOIN s ON s.campaign = c.cid
SETTINGS join_use_nulls = 1;

CREATE OR REPLACE VIEW {db}.invalid_hits_by_campaign AS
SELECT m.cid AS campaign, m.invalid_hits AS invalid_hits,
       m.cid IN (SELECT campaign FROM {db}.campaign_summary) AS known_campaign
FROM (SELECT cid, sum(invalid_hits) AS invalid_hits FROM {db}.counts_by_minute GROUP BY cid) AS m
WHERE m.invalid_hits > 0;

-- unique_opens per minute: subscribers whose first open fell in it; human_unique_opens: whose
-- first human open did. Each column's running sum is the campaign's number.
CREATE OR REPLACE VIEW {db}.opens_timeline AS
SELECT a.minute AS minute, a.cid AS campaign, a.opens AS opens,
       ifNull(b.n, 0) AS unique_opens, ifNull(h.n, 0) AS human_unique_opens,
       a.machine_opens AS machine_opens
FROM (SELECT cid, minute, opens, machine_opens FROM {db}.counts_by_minute WHERE opens > 0) AS a
LEFT JOIN (
    SELECT cid, toStartOfMinute(first_open_at) AS minute, count() AS n
    FROM {db}.openers GROUP BY cid, minute
) AS b ON a.cid = b.cid AND a.minute = b.minute
LEFT JOIN (
    SELECT cid, toStartOfMinute(first_human_open_at) AS minute, count() AS n
    FROM {db}.openers WHERE first_human_open_at IS NOT NULL GROUP BY cid, minute
) AS h ON a.cid = h.cid AND a.minute = h.minute
SETTINGS join_use_nulls = 1;

-- weekday: 1 = Monday … 7 = Sunday; hour 0–23. unique_opens: subscribers whose attributed open
-- (first human open, else first open) fell in that hour, so the rows add up to unique_opens.
CREATE OR REPLACE VIEW {db}.opens_by_local_hour AS
SELECT a.campaign AS campaign, a.hour AS hour, a.weekday AS weekday, a.n AS opens,
       ifNull(b.n, 0) AS unique_opens
FROM (
    SELECT cid AS campaign, toHour(minute, {tz:String}) AS hour,
           toDayOfWeek(minute, 0, {tz:String}) AS weekday, sum(opens) AS n
    FROM {db}.counts_by_minute WHERE opens > 0 GROUP BY campaign, hour, weekday
) AS a
LEFT JOIN (
    SELECT cid AS campaign, toHour(attributed_at, {tz:String}) AS hour,
           toDayOfWeek(attributed_at, 0, {tz:String}) AS weekday, count() AS n
    FROM {db}.openers GROUP BY campaign, hour, weekday
) AS b ON a.campaign = b.campaign AND a.hour = b.hour AND a.weekday = b.weekday
SETTINGS join_use_nulls = 1;

CREATE OR REPLACE VIEW {db}.opens_by_hour_of_day AS
SELECT * FROM {db}.opens_by_local_hour(tz = 'UTC');

-- unique_opens: each opener under the client and device of their first human open (else first
-- open), so the rows add up to the campaign's unique opens.
CREATE OR REPLACE VIEW {db}.opens_by_client AS
SELECT a.cid AS campaign, a.client AS client, a.device AS device, a.opens AS opens,
       ifNull(b.n, 0) AS unique_opens, a.human_opens AS human_opens,
       a.machine_opens AS machine_opens
FROM {db}.counts_by_client AS a
LEFT JOIN (
    SELECT cid, client, device, count() AS n FROM {db}.openers GROUP BY cid, client, device
) AS b ON a.cid = b.cid AND a.client = b.client AND a.device = b.device
SETTINGS join_use_nulls = 1;

-- Each request counts under the country of its canonical row (real time's over a legacy line
-- without one), so the rows add up; unique_opens by the country of the attributed open.
CREATE OR REPLACE VIEW {db}.opens_by_country AS
SELECT a.cid AS campaign, a.country AS country, a.opens AS opens, ifNull(b.n, 0) AS unique_opens
FROM {db}.counts_by_country AS a
LEFT JOIN (
    SELECT cid, country, count() AS n FROM {db}.openers GROUP BY cid, country
) AS b ON a.cid = b.cid AND a.country = b.country
SETTINGS join_use_nulls = 1;

-- subscribers: distinct subscribers with at least one open of that reason.
CREATE OR REPLACE VIEW {db}.opens_by_machine_reason AS
SELECT a.cid AS campaign, a.machine AS machine, a.opens AS opens, ifNull(b.n, 0) AS subscribers
FROM {db}.counts_by_machine AS a
LEFT JOIN (
    SELECT cid, arrayJoin(machines) AS machine, count() AS n FROM {db}.openers
    GROUP BY cid, machine
) AS b ON a.cid = b.cid AND a.machine = b.machine
SETTINGS join_use_nulls = 1;
