"""The Faust worker: input topics -> BatchProcessor -> ClickHouse, dead letters, state.

At-least-once with idempotent sinks (SPEC §6): a batch's rows are written to ClickHouse
and its dead letters acknowledged by the broker *before* the batch's events are acked,
and Faust commits only acked offsets.  A worker killed mid-batch re-reads the batch; the
ReplacingMergeTree tables and the state's event digests make the second pass a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import faust
from faust.streams import _current_event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.pipeline import BatchProcessor, BatchResult, Message, deadletter_headers
from streams.settings import INPUT_KINDS, Settings
from streams.storage import Storage, apply_schema, open_storage

log = logging.getLogger("entwatch.worker")

SINK_ORDER = ("events", "enterprises", "utility_daily", "tax_monthly", "social_monthly", "complaints", "deadletters")
READ_ONLY = ("select", "with", "show", "describe", "desc", "exists")


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


@contextmanager
def as_current(event):
    """Make ``event`` Faust's current event, so table writes go to its partition's changelog."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def create_app(settings: Settings, storage: Storage | None = None) -> faust.App:
    """Build the worker app for ``settings`` (storage opened on start if not given)."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Short group timeouts: a worker that joins, or one killed without leaving, is
        # noticed in seconds (Tansu holds a join until the rebalance timeout has passed).
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 5),
        web_enabled=True,
        web_bind=settings.metrics_host,
        web_port=settings.metrics_port,
        web_host=settings.metrics_host,
        key_serializer="raw",
        value_serializer="raw",
        producer_max_request_size=max(settings.max_message_bytes * 2, 1_048_576),
        consumer_max_fetch_size=max(settings.max_message_bytes * 2, 4 * 1024 * 1024),
    )
    kind_by_topic = {settings.topic(kind): kind for kind in INPUT_KINDS}
    inputs = app.topic(*kind_by_topic, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(settings.topic("deadletter"), key_serializer="raw", value_serializer="raw")
    states = app.Table("enterprise_state", key_type=bytes, value_type=bytes,
                       partitions=settings.partitions)
    processor = BatchProcessor(kind_by_topic, settings.timezone, settings.max_message_bytes)
    store = storage or open_storage(settings.effective_storage_url(),
                                    settings.storage_password.get_secret_value() if settings.storage_password else None)
    apply_schema(store)
    sink = Sink(store)

    @app.agent(inputs)
    async def ingest(stream):
        async for events in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            await handle_batch(events)

    async def handle_batch(events) -> None:
        messages = [_message(e) for e in events]
        result: BatchResult = processor.process(messages, lambda uscc: states.get(uscc.encode()))
        sends = [
            await deadletter.send(key=m.key, value=m.value, headers=deadletter_headers(m, r))
            for m, r in result.deadletters
        ]
        await sink.write(result.rows)
        if sends:
            await asyncio.gather(*sends)
        for uscc, (index, blob) in result.states.items():
            with as_current(events[index]):
                states[uscc.encode()] = blob
        _count(result, messages, kind_by_topic)

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/ready")
    async def ready_page(web, request):
        """200 once this worker has partitions assigned and its state recovered."""
        try:
            assigned = bool(app.consumer.assignment())
        except Exception:
            assigned = False
        ready = assigned and not app.rebalancing
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/query")
    async def query_page(web, request):
        """Read-only SQL against this worker's storage (how other commands read chDB)."""
        sql = request.query.get("sql", "").strip()
        if not sql.lower().startswith(READ_ONLY) or ";" in sql.rstrip(";"):
            return web.json({"error": "only one read-only statement (SELECT, WITH, SHOW, DESCRIBE)"}, status=400)
        try:
            rows = await sink.call(store.query, sql)
        except Exception as exc:
            return web.json({"error": str(exc).splitlines()[0][:500]}, status=400)
        return web.json({"rows": rows})

    return app


def _message(event) -> Message:
    m = event.message
    headers = tuple((k, v) for k, v in (m.headers or ()))
    return Message(m.topic, m.partition, m.offset, m.key, m.value, (m.timestamp or time.time()), headers)


def _count(result: BatchResult, messages: list[Message], kind_by_topic: dict[str, str]) -> None:
    """Update the metrics for one batch: one increment per kind, one latency sample per message."""
    now = time.time()
    for kind, n in result.consumed.items():
        metrics.EVENTS_IN.labels(kind).inc(n)
        metrics.FRESHNESS.seen(kind, now)
    for message in messages:
        metrics.LATENCY.observe(max(0.0, now - message.timestamp))
    for message, rejection in result.deadletters:
        metrics.DEADLETTERED.labels(kind_by_topic.get(message.topic, "unknown"), rejection.reason).inc()
    metrics.READINGS.inc(result.readings)
    metrics.LATE_READINGS.inc(result.too_late)
    if result.duplicates:
        metrics.DUPLICATES.labels("utility").inc(result.duplicates)
