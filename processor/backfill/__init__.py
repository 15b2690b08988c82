"""``opens backfill``: CloudFront standard logs and S3 access logs → the same hits as real time.

The folder is the data flow: ``sources`` lists objects (local files or S3, with the date filter
read from key names) → ``stream`` downloads and decompresses each one in a background thread →
``run`` decodes lines in batches with ``processor.core`` → ``sinks`` either insert into ClickHouse
(``--direct``) or publish to the hits topic the worker consumes → ``manifest`` records each
finished object, so a re-run skips it and a crash only redoes unfinished objects. Counting stays
exact because every write downstream is idempotent (hits keyed by request id).
"""
