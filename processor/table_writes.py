"""Write many keys of a Faust table at once: the store directly, the changelog through aiokafka.

``table[key] = value`` sends one changelog message per key through Faust's producer buffer, a
queue drained one message at a time; with a key per subscriber that was most of the worker's
time and held every batch behind the queue (``scripts/bench_worker``: 2,545 hits/s with it,
10,477 without table writes at all). Here each value goes into the table's store and straight
into the aiokafka producer for its changelog partition, the same bytes Faust would send, so
recovery and standby replicas read them exactly as their own. Delivery needs no waiting here:
Faust flushes the producer before it commits any offset, so a crash re-processes what was not
yet written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any


async def write_table(
    table: Any,
    producer: Any,
    items: Iterable[tuple[Any, str, Any]],
    make_current: Callable[[Any], None],
) -> int:
    """``items``: (event the key arrived in, key, value). Returns the records appended.

    ``make_current(event)`` points Faust at the event's partition (RocksDB keeps one database
    per partition); the changelog record goes to that same partition. A value ``None`` deletes
    the key: a tombstone in the changelog, so recovery and compaction drop it too.
    """
    store = table.data
    topic = table.changelog_topic.get_topic_name()
    written = 0
    for event, key, value in items:
        if value is None:
            written += await delete_keys(table, producer, [(event.message.partition, key)])
            continue
        make_current(event)
        store[key] = value
        # aiokafka batches records per partition itself; this only appends to its buffer.
        await producer.send(
            topic,
            value=store._encode_value(value),
            key=store._encode_key(key),
            partition=event.message.partition,
        )
        written += 1
    return written


async def delete_keys(table: Any, producer: Any, items: Iterable[tuple[int, str]]) -> int:
    """Delete each (partition, key) from the store and send its changelog tombstone (a Kafka
    record without a value, which Faust's recovery applies as a delete). Needs no current
    event: deleting looks the key up in every partition's database."""
    store = table.data
    topic = table.changelog_topic.get_topic_name()
    written = 0
    for partition, key in items:
        with contextlib.suppress(KeyError):  # the memory store raises for a missing key
            del store[key]
        await producer.send(topic, value=None, key=store._encode_key(key), partition=partition)
        written += 1
    return written
