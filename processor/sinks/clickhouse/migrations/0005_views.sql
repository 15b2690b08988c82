-- The analysts' contract (DESIGN §5). Every number is exact: uniqExact over request-id sets,
-- counts over (campaign, subscriber) keys. The views read aggregate states only, never `hits`,
-- so the raw-hit retention (TTL) does not change them, and they give the same numbers whether
-- rows came from real time, backfill or both.

CREATE OR REPLACE VIEW {db}.campaign_summary AS
WITH
    m AS (
        SELECT cid, max(cat) AS cat,
               uniqExactMerge(opens) AS opens,
               uniqExactMerge(machine_opens) AS machine_opens,
               uniqExactMerge(invalid_hits) AS invalid_hits
        FROM {db}.opens_by_minute GROUP BY cid
    ),
    f AS (
        SELECT cid, count() AS unique_opens,
               countIf(first_human IS NOT NULL) AS human_unique_opens,
               min(first) AS first_open_at, max(last) AS last_open_at
        FROM (
            SELECT cid, sid, min(first_open_at) AS first, max(last_open_at) AS last,
                   min(first_human_open_at) AS first_human
            FROM {db}.first_opens GROUP BY cid, sid
        )
        GROUP BY cid
    ),
    s AS (
        SELECT campaign, max(category) AS category, sum(sends) AS sends
        FROM {db}.sends FINAL GROUP BY campaign
    ),
    c AS (SELECT cid FROM m UNION DISTINCT SELECT campaign AS cid FROM s)
SELECT
    c.cid                                                        AS campaign,
    if(ifNull(m.cat, '') != '', m.cat, ifNull(s.category, ''))   AS category,
    ifNull(s.sends, 0)                                           AS sends,
    ifNull(m.opens, 0)                                           AS opens,
    ifNull(f.unique_opens, 0)                                    AS unique_opens,
    ifNull(f.human_unique_opens, 0)                              AS human_unique_opens,
    ifNull(m.machine_opens, 0)                                   AS machine_opens,
    ifNull(m.invalid_hits, 0)                                    AS invalid_hits,
    if(sends > 0, unique_opens / sends, NULL)                    AS open_rate,
    if(sends > 0, human_unique_opens / sends, NULL)              AS human_open_rate,
    f.first_open_at                                              AS first_open_at,
    f.last_open_at                                               AS last_open_at
FROM c
LEFT JOIN m ON m.cid = c.cid
LEFT JOIN f ON f.cid = c.cid
LEFT JOIN s ON s.campaign = c.cid
SETTINGS join_use_nulls = 1;

-- unique_opens per minute = subscribers whose *first* open fell in that minute, so the
-- running sum of the timeline is the campaign's unique opens.
CREATE OR REPLACE VIEW {db}.opens_timeline AS
SELECT a.minute AS minute, a.campaign AS campaign, a.opens AS opens,
       ifNull(b.unique_opens, 0) AS unique_opens, a.machine_opens AS machine_opens
FROM (
    SELECT cid AS campaign, minute,
           uniqExactMerge(opens) AS opens, uniqExactMerge(machine_opens) AS machine_opens
    FROM {db}.opens_by_minute GROUP BY cid, minute
) AS a
LEFT JOIN (
    SELECT cid AS campaign, toStartOfMinute(first) AS minute, count() AS unique_opens
    FROM (SELECT cid, sid, min(first_open_at) AS first FROM {db}.first_opens GROUP BY cid, sid)
    GROUP BY campaign, minute
) AS b ON a.campaign = b.campaign AND a.minute = b.minute
SETTINGS join_use_nulls = 1;

-- weekday: 1 = Monday … 7 = Sunday; hour: 0–23, UTC.
CREATE OR REPLACE VIEW {db}.opens_by_hour_of_day AS
SELECT cid AS campaign, toHour(minute) AS hour, toDayOfWeek(minute) AS weekday,
       uniqExactMerge(opens) AS opens
FROM {db}.opens_by_minute
GROUP BY campaign, hour, weekday;

-- unique_opens attributes each unique opener to the client/device of their first open, so the
-- rows add up to the campaign's unique opens.
CREATE OR REPLACE VIEW {db}.opens_by_client AS
SELECT a.campaign AS campaign, a.client AS client, a.device AS device, a.opens AS opens,
       ifNull(b.unique_opens, 0) AS unique_opens, a.human_opens AS human_opens,
       a.machine_opens AS machine_opens
FROM (
    SELECT cid AS campaign, client, device, uniqExactMerge(opens) AS opens,
           uniqExactMerge(human_opens) AS human_opens,
           uniqExactMerge(machine_opens) AS machine_opens
    FROM {db}.opens_by_minute GROUP BY cid, client, device
) AS a
LEFT JOIN (
    SELECT cid AS campaign, first_client AS client, first_device AS device,
           count() AS unique_opens
    FROM (
        SELECT cid, sid, argMinMerge(first_client) AS first_client,
               argMinMerge(first_device) AS first_device
        FROM {db}.first_opens GROUP BY cid, sid
    )
    GROUP BY campaign, client, device
) AS b ON a.campaign = b.campaign AND a.client = b.client AND a.device = b.device
SETTINGS join_use_nulls = 1;

CREATE OR REPLACE VIEW {db}.opens_by_country AS
SELECT a.campaign AS campaign, a.country AS country, a.opens AS opens,
       ifNull(b.unique_opens, 0) AS unique_opens
FROM (
    SELECT cid AS campaign, country, uniqExactMerge(opens) AS opens
    FROM {db}.opens_by_minute GROUP BY cid, country
) AS a
LEFT JOIN (
    SELECT cid AS campaign, first_country AS country, count() AS unique_opens
    FROM (
        SELECT cid, sid, argMinMerge(first_country) AS first_country
        FROM {db}.first_opens GROUP BY cid, sid
    )
    GROUP BY campaign, country
) AS b ON a.campaign = b.campaign AND a.country = b.country
SETTINGS join_use_nulls = 1;

-- lag_seconds: age of the newest event seen from each source, now.
CREATE OR REPLACE VIEW {db}.freshness AS
SELECT source, last_event_at, last_ingested_at,
       dateDiff('millisecond', last_event_at, now64(3)) / 1000 AS lag_seconds
FROM (
    SELECT source, max(last_event_at) AS last_event_at,
           max(last_ingested_at) AS last_ingested_at
    FROM {db}.pipeline_state GROUP BY source
);
