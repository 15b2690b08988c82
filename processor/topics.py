"""What the broker already knows about our topics, asked once at worker start-up."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def existing_partitions(bootstrap: str, topic: str, timeout: float = 10.0) -> int | None:
    """Partition count of ``topic`` on the broker, or ``None`` when it does not exist (yet) or
    the broker cannot be asked now (the worker then creates topics with the configured count)."""

    async def ask() -> int | None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout)
            # Describing a missing topic would make a broker with auto-creation on create it
            # with one partition; listing first never creates anything.
            if topic not in await asyncio.wait_for(admin.list_topics(), timeout):
                return None
            described = await asyncio.wait_for(admin.describe_topics([topic]), timeout)
        finally:
            await admin.close()
        for t in described:
            if t.get("topic") == topic and not t.get("error_code") and t.get("partitions"):
                return len(t["partitions"])
        return None

    try:
        return asyncio.run(ask())
    except Exception as exc:  # the broker may be starting; Faust will wait for it anyway
        log.warning("could not read the partition count of %s: %r", topic, exc)
        return None
