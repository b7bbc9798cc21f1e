"""The ClickHouse sink of the worker: a batch's rows, table by table, from one thread."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from streams import metrics
from streams.storage import Storage

log = logging.getLogger("entwatch.worker")

SINK_ORDER = ("events", "enterprises", "utility_daily", "tax_monthly", "social_monthly", "complaints", "deadletters",
              "alerts", "risk")


class Sink:
    """Writes a batch's rows to storage from one thread; retries until it succeeds.

    A failing ClickHouse holds the batch (and so the offsets) back instead of dropping it:
    back-pressure, not loss.
    """

    def __init__(self, storage: Storage, max_backoff: float = 30.0):
        self.storage = storage
        self.max_backoff = max_backoff
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="entwatch-sink")

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def write(self, rows: dict[str, list[dict]]) -> None:
        for table in SINK_ORDER:
            batch = rows.get(table)
            if not batch:
                continue
            backoff = 0.5
            while True:
                try:
                    await self.call(self.storage.insert, table, batch)
                    break
                except Exception as exc:
                    metrics.SINK_FAILURES.labels(table).inc()
                    metrics.SINK_RETRIES.labels(table).inc()
                    log.warning("writing %d rows to %s failed (%s); retrying in %.1f s", len(batch), table, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            metrics.SINK_BATCHES.labels(table).inc()
            metrics.SINK_ROWS.labels(table).inc(len(batch))
