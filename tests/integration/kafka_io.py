"""Small real-broker helpers for tests: raw produce, and read a whole topic (aiokafka, no group)."""

from __future__ import annotations

import asyncio

from kafka import KafkaProducer


def produce_raw(bootstrap: str, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Send ``(topic, key, value)`` as they are, bypassing every check."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 * 1024 * 1024)
    for topic, key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    """All records of ``topic`` once at least ``expected`` are there (or what arrived by ``timeout``)."""
    from aiokafka import AIOKafkaConsumer

    async def run():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        records = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(records) < expected and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
        finally:
            await consumer.stop()
        return records

    return asyncio.run(run())


def read_to_end(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` up to its end now.  The end is the fetch high watermark
    (``streams.offsets.read_to_end``, as the worker reads monitor.cohorts): Tansu's ListOffsets
    answer can be short by all but one record of the last record batch, and a test reading to
    it missed a dead letter."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.offsets import read_to_end as read

    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not parts:
                await consumer.force_metadata_update()
                parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            fetched = []
            ends = await read(consumer, parts, bootstrap, lambda batches: fetched.extend(
                r for batch in batches.values() for r in batch))
            return [r for r in fetched if r.offset < ends[TopicPartition(r.topic, r.partition)]]
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(run(), 120))
