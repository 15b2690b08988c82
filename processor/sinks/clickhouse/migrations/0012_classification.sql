-- Classification axes (issue #17): proxy, certainty, rules_version and signals on every hit, and
-- the counts analysts need to count probable machine opens as human if they choose.
--
-- Upgrade in place, with writers running, moving no number:
--
-- * The four columns are added to `hits` before `hits_ingest` (its view copies rows by name,
--   `SELECT *`), so no insert can carry a column `hits` lacks. Existing rows read '' for all
--   four: "decided before rules were versioned"; a machine verdict with certainty '' counts as
--   certain everywhere, as every verdict did before. `opens reclassify` re-decides them.
-- * `sealed_counts.probable_opens` defaults to 0, exact for every existing seal (no stored row
--   is probable yet).
-- * `opener_state.lenient_key` is the first open that is human *or a probable machine*. It
--   defaults to `human_key` — exact for every row already stored, and for every row the existing
--   view writes, since that view fills all other columns and leaves this one to its default. A
--   second view adds, for probable machine opens only, a row whose other columns are neutral
--   for their merge functions (min of the largest value, max of 0 or '', an empty array), so
--   merges and FINAL give the per-subscriber minimum without touching the existing view (which
--   would need a drop and leave a window with no view).
-- * The writers' view on `hits_ingest` is replaced by one that carries the new columns (below).
-- * Views are replaced in place (CREATE OR REPLACE). `campaign_summary` gets two columns at the
--   end: probable_machine_opens (requests) and human_unique_opens_with_probable (subscribers whose
--   first open that is not a *certain* machine open exists).
--   Note for the lead: migration 0012 (per-recipient sends) also replaces campaign_summary; the
--   two definitions are to be merged, these two columns appended last.

ALTER TABLE {db}.hits
    ADD COLUMN IF NOT EXISTS proxy LowCardinality(String) DEFAULT '' AFTER time_taken,
    ADD COLUMN IF NOT EXISTS certainty LowCardinality(String) DEFAULT '' AFTER proxy,
    ADD COLUMN IF NOT EXISTS rules_version LowCardinality(String) DEFAULT '' AFTER certainty,
    ADD COLUMN IF NOT EXISTS signals String DEFAULT '' AFTER rules_version;

ALTER TABLE {db}.hits_ingest
    ADD COLUMN IF NOT EXISTS proxy LowCardinality(String) DEFAULT '' AFTER time_taken,
    ADD COLUMN IF NOT EXISTS certainty LowCardinality(String) DEFAULT '' AFTER proxy,
    ADD COLUMN IF NOT EXISTS rules_version LowCardinality(String) DEFAULT '' AFTER certainty,
    ADD COLUMN IF NOT EXISTS signals String DEFAULT '' AFTER rules_version;

-- The writers' view was created with the columns of its day (a view's `SELECT *` is expanded
-- once): a new one with the new columns starts before the old one is dropped, so no insert
-- passes without a view; a row inserted in between lands twice and `hits` keeps one (same
-- request, same version; opener_state's min/max and day_changes' max absorb it too).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hits_ingest_classified_mv TO {db}.hits AS
SELECT *
FROM {db}.hits_ingest
WHERE sid NOT IN (
    SELECT sid FROM {db}.forgotten_subscribers
    GROUP BY sid
    HAVING argMax(forgotten, (changed_at, forgotten)) = 1
);

DROP VIEW IF EXISTS {db}.hits_ingest_mv;

ALTER TABLE {db}.sealed_counts
    ADD COLUMN IF NOT EXISTS probable_opens UInt64 DEFAULT 0;

ALTER TABLE {db}.opener_state
    ADD COLUMN IF NOT EXISTS lenient_key SimpleAggregateFunction(min, UInt64) DEFAULT human_key;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.opener_state_probable_mv TO {db}.opener_state AS
SELECT
    cid,
    sid,
    ''                                                                    AS cat,
    toUInt64(18446744073709551615)                                        AS first_key,
    toUInt64(0)                                                           AS last_key,
    toUInt64(18446744073709551615)                                        AS human_key,
    (toUInt64(18446744073709551615), '', '', '')                          AS attribution,
    CAST([], 'Array(String)')                                             AS machines,
    order_key                                                             AS lenient_key
FROM {db}.hits
WHERE signature != 'invalid' AND machine != '' AND certainty = 'probable';

CREATE OR REPLACE VIEW {db}.live_hits AS
SELECT cid, sid, request_id, ts, cat, signature, client, device, country, machine, certainty
FROM {db}.hits FINAL
WHERE toYYYYMMDD(ts) IN (SELECT toYYYYMMDD(day) FROM {db}.live_days)
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- A view's `SELECT *` is expanded when it is created: made again to see probable_opens.
CREATE OR REPLACE VIEW {db}.sealed_rows AS
SELECT *
FROM {db}.sealed_counts
WHERE day NOT IN (SELECT day FROM {db}.live_days);

CREATE OR REPLACE VIEW {db}.counts_by_minute AS
SELECT cid, minute, sum(n_opens) AS opens, sum(n_human) AS human_opens,
       sum(n_machine) AS machine_opens, sum(n_invalid) AS invalid_hits,
       sum(n_probable) AS probable_opens
FROM (
    SELECT cid, minute, opens AS n_opens, human_opens AS n_human, machine_opens AS n_machine,
           invalid_hits AS n_invalid, probable_opens AS n_probable
    FROM {db}.sealed_rows WHERE kind = 'minute'
    UNION ALL
    SELECT cid, toStartOfMinute(ts) AS minute,
           countIf(signature != 'invalid') AS n_opens,
           countIf(signature != 'invalid' AND machine = '') AS n_human,
           countIf(signature != 'invalid' AND machine != '') AS n_machine,
           countIf(signature = 'invalid') AS n_invalid,
           countIf(signature != 'invalid' AND machine != '' AND certainty = 'probable')
               AS n_probable
    FROM {db}.live_hits GROUP BY cid, minute
)
GROUP BY cid, minute;

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
    machines,
    if(lenient_key = 18446744073709551615, NULL,
       fromUnixTimestamp64Milli(toInt64(bitShiftRight(lenient_key, 12) * 1000
                                        + bitAnd(lenient_key, 1023)), 'UTC')) AS first_lenient_open_at
FROM {db}.opener_state FINAL;

CREATE OR REPLACE VIEW {db}.campaign_summary AS
WITH
    m AS (
        SELECT cid, sum(opens) AS opens, sum(machine_opens) AS machine_opens,
               sum(invalid_hits) AS invalid_hits, sum(probable_opens) AS probable_opens
        FROM {db}.counts_by_minute GROUP BY cid
    ),
    f AS (
        SELECT cid, max(cat) AS cat, count() AS unique_opens,
               countIf(first_human_open_at IS NOT NULL) AS human_unique_opens,
               min(first_open_at) AS first_at, max(last_open_at) AS last_at,
               min(first_human_open_at) AS first_human_at,
               countIf(first_lenient_open_at IS NOT NULL) AS lenient_unique_opens
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
    f.first_human_at                                             AS first_human_open_at,
    ifNull(m.probable_opens, 0)                                  AS probable_machine_opens,
    ifNull(f.lenient_unique_opens, 0)                            AS human_unique_opens_with_probable
FROM c
LEFT JOIN m ON m.cid = c.cid
LEFT JOIN f ON f.cid = c.cid
LEFT JOIN s ON s.campaign = c.cid
SETTINGS join_use_nulls = 1;
