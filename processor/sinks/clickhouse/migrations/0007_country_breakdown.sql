-- One request can reach `hits` with a country (real-time log, standard logging v2) and without
-- one (legacy standard logs have no c-country). Its id then sits in two per-minute rows, and a
-- plain per-country sum would count it under both. Known countries are exact as they are; the
-- unknown bucket is what is left of the campaign's distinct opens, so the rows add up exactly.
CREATE OR REPLACE VIEW {db}.opens_by_country AS
SELECT a.campaign AS campaign, a.country AS country, a.opens AS opens,
       ifNull(b.unique_opens, 0) AS unique_opens
FROM (
    SELECT cid AS campaign, country, toUInt64(uniqExactMerge(opens)) AS opens
    FROM {db}.opens_by_minute WHERE country != '' GROUP BY cid, country
    UNION ALL
    SELECT t.campaign AS campaign, '' AS country, toUInt64(t.n - ifNull(k.n, 0)) AS opens
    FROM (SELECT cid AS campaign, uniqExactMerge(opens) AS n
          FROM {db}.opens_by_minute GROUP BY cid) AS t
    LEFT JOIN (SELECT cid AS campaign, uniqExactMerge(opens) AS n
               FROM {db}.opens_by_minute WHERE country != '' GROUP BY cid) AS k
        ON k.campaign = t.campaign
    WHERE t.n > ifNull(k.n, 0)
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
