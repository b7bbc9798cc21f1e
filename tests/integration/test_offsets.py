"""End offsets on the real broker: what table recovery reads up to."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.offsets import fetched_ends
from streams.settings import Settings
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_end_offsets_count_every_record_of_the_last_batch(broker):
    ensure_topics(Settings(broker_url=broker.url))
    topic = "enterprise.utility"

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
        await producer.start()
        for size in (10, 3):  # two record batches on partition 0: offsets 0-9 and 10-12
            sent = [await producer.send(topic, b"x", key=b"k", partition=0) for _ in range(size)]
            await asyncio.gather(*sent)
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(4)]
        listed = await consumer.end_offsets(tps)
        await consumer.stop()
        return listed, await fetched_ends(broker.bootstrap, listed)

    listed, fetched = asyncio.run(scenario())
    assert fetched[TopicPartition(topic, 0)] == 13
    assert [fetched[TopicPartition(topic, p)] for p in (1, 2, 3)] == [0, 0, 0]
    assert listed[TopicPartition(topic, 0)] <= 13  # Tansu 0.6 lists 11 (the last batch's base + 1)
