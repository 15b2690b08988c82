"""ClickHouse: connection, schema migrations and the batched idempotent sink.

The schema lives here, beside the sink that writes it, rather than in ``infra/``: ``infra/`` is
AWS provisioning run by an operator once, while the schema is the pipeline's own storage
contract, applied by the worker, the backfill job and ``opens schema apply`` alike, and it must
change in the same commit as the code that writes it.
"""
