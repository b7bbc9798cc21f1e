"""``monitor.cohorts``: the city-wide peer cohorts shared by every worker.

Each worker's partitions contribute to the city's cohorts day by day
(``detectors.citywide.CityCohorts``); the contributions and progress reports go to the
compacted topic ``monitor.cohorts``, keyed ``day/<day>/<partition>`` and
``clock/<partition>``, so a partition that is processed again (after a crash or a
rebalance) overwrites its own contribution with the same one.  It is internal: only
entwatch workers read it (docs/STREAMING.md, "Peer cohorts").

Every worker reads the whole topic with a plain consumer *outside* the consumer group
(``CohortFeed``: all partitions assigned, read from the start to the fetch high watermark,
then followed), not Faust's ``GlobalTable``, which does not keep workers in step
(faust-streaming #283).  Before the first batch a worker judges, it has read the topic to
its end, so it starts from every contribution published before it.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from detectors.citywide import CityCohorts
from streams.offsets import read_to_end
from streams.settings import Settings

log = logging.getLogger("entwatch.cohorts")


def encode(key: str, body: dict) -> tuple[bytes, bytes]:
    """A message of ``monitor.cohorts`` as (key, value) bytes.

    >>> encode("clock/3", {"partition": 3})
    (b'clock/3', b'{"partition":3}')
    """
    return key.encode(), orjson.dumps(body)


class CohortFeed:
    """Reads ``monitor.cohorts`` in full, then follows it, into ``city``; ``changed`` is set
    whenever what it read may let a partition close a day."""

    def __init__(self, settings: Settings, city: CityCohorts):
        self.settings = settings
        self.city = city
        self.topic = settings.topic("cohorts")
        self.ready = asyncio.Event()    # the topic has been read to its end once
        self.changed = asyncio.Event()
        self.received = 0
        self.reader: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Read the topic to its end (every partition, from the start), then follow it."""
        security = self.settings.aiokafka_security()
        consumer = self.reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers(), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=20, **security)
        await consumer.start()
        partitions = None
        for _ in range(100):  # the topic's metadata may take a moment after it was created
            await consumer.topics()
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                break
            await asyncio.sleep(0.1)
        if not partitions:
            raise RuntimeError(f"{self.topic}: no such topic (entwatch worker creates it at start)")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        await read_to_end(consumer, tps, self.settings.bootstrap_servers(), self._take, security)
        log.info("%s read to its end: %d messages, the city folded through %s", self.topic, self.received,
                 self.city.folded)
        self.ready.set()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            if self._take(await self.reader.getmany(timeout_ms=1000)):
                self.changed.set()

    def _take(self, batches: dict) -> bool:
        moved = False
        for messages in batches.values():
            for m in messages:
                self.received += 1
                if m.value is None or m.key is None:
                    continue
                try:
                    body = orjson.loads(m.value)
                except orjson.JSONDecodeError:
                    log.warning("%s[%d]@%d: not JSON, ignored", m.topic, m.partition, m.offset)
                    continue
                moved |= self.city.receive(m.key.decode(), body)
        return moved

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.reader is not None:
            await self.reader.stop()
