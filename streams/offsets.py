"""End offsets as the broker's fetch responses report them.

Tansu 0.6 answers ListOffsets (latest) with the base offset of a partition's last record
batch + 1: after batches holding offsets 0–9 and 10–12 it says 11, not 13.  Faust's table
recovery reads a changelog "to its end" by that figure and so missed the last updates of
the records on a restart.  Fetch responses carry the true high watermark, so the worker
asks for one record near the reported end and keeps the larger figure.  On Apache Kafka
both figures agree and this only costs one fetch per partition at a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

log = logging.getLogger("entwatch.offsets")


async def fetched_ends(bootstrap: str, ends: Mapping, timeout: float = 5.0, security: dict | None = None) -> dict:
    """``ends`` ({tp: end offset from ListOffsets}) raised to the fetch high watermark
    (``security``: the broker's TLS/SASL options, ``Settings.aiokafka_security()``)."""
    out = dict(ends)
    if not any(out.values()):  # Tansu says 0 only for an empty partition
        return out
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50,
                                auto_offset_reset="latest", **(security or {}))
    await consumer.start()
    try:
        parts = {tp: TopicPartition(tp[0], tp[1]) for tp, end in out.items() if end}
        consumer.assign(list(parts.values()))
        for tp, part in parts.items():
            consumer.seek(part, max(out[tp] - 1, 0))
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if all(consumer.highwater(part) is not None for part in parts.values()):
                break
            await consumer.getmany(timeout_ms=100)
        for tp, part in parts.items():
            high = consumer.highwater(part)
            if high is not None and high > out[tp]:
                log.info("%s[%d]: end offset %d by fetch, %d by ListOffsets", tp[0], tp[1], high, out[tp])
                out[tp] = high
    finally:
        await consumer.stop()
    return out


async def read_to_end(consumer: AIOKafkaConsumer, tps: list, bootstrap: str, take: Callable[[dict], object],
                      security: dict | None = None) -> dict:
    """Read ``tps`` (assigned to ``consumer``, no group) from their beginning until each
    position reaches its end by fetch (``fetched_ends``), handing each ``getmany`` result to
    ``take``; returns the ends ({tp: offset}).  A record written meanwhile may come too."""
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await fetched_ends(bootstrap, await consumer.end_offsets(tps), security=security)
    while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
        take(await consumer.getmany(timeout_ms=500))
    return ends
