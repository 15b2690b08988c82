-- `opens backfill --since/--until` keeps only the hits inside the window, so an object read with
-- a window may be finished for that window only. `outside_window` counts the hits it left out;
-- with none left out the row means "finished" for any window, otherwise only for windows inside
-- [since, until) (NULL: unbounded), and a wider run reads the object again (idempotently).
ALTER TABLE {db}.backfill_manifest
    ADD COLUMN IF NOT EXISTS outside_window UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS since Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS until Nullable(DateTime64(3, 'UTC'));
