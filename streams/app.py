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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import faust
from faust.types import TP
import orjson
from faust.streams import _current_event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detectors.findings import RULES
from streams import metrics
from streams.pipeline import BatchProcessor, BatchResult, Message, deadletter_headers
from streams.settings import INPUT_KINDS, Settings
from streams.storage import Storage, apply_schema, open_storage

log = logging.getLogger("entwatch.worker")

SINK_ORDER = ("events", "enterprises", "utility_daily", "tax_monthly", "social_monthly", "complaints", "deadletters",
              "alerts", "risk")
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
    alerts_topic = app.topic(settings.topic("alerts"), key_serializer="raw", value_serializer="raw")
    risk_topic = app.topic(settings.topic("risk"), key_serializer="raw", value_serializer="raw")
    table = app.Table("enterprise_state", key_type=bytes, value_type=bytes, partitions=settings.partitions)
    states = TableStates(table)
    processor = BatchProcessor(kind_by_topic, settings.timezone, settings.max_message_bytes)
    store = storage or open_storage(settings.effective_storage_url(),
                                    settings.storage_password.get_secret_value() if settings.storage_password else None)
    apply_schema(store)
    sink = Sink(store)
    open_alerts: dict[int, Counter] = {}
    consumed: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset processed

    @app.agent(inputs)
    async def ingest(stream):
        async for events in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            await handle_batch(events)

    async def handle_batch(events) -> None:
        messages = [_message(e) for e in events]
        for m in messages:
            consumed[(m.topic, m.partition)] = m.offset
        result: BatchResult = processor.process(messages, states, lambda p: _behind(app, kind_by_topic, consumed, p))
        # 1. ClickHouse, 2. the output topics (acknowledged), 3. the state; then Faust may
        # commit the offsets.  A crash in between replays the batch: every step is idempotent.
        await sink.write(result.rows)
        sends = [await deadletter.send(key=m.key, value=m.value, headers=deadletter_headers(m, r))
                 for m, r in result.deadletters]
        sends += [await topic.send(key=p.uscc.encode(), value=orjson.dumps(p.body))
                  for topic, published in ((alerts_topic, result.alerts), (risk_topic, result.risk))
                  for p in published]
        if sends:
            await asyncio.gather(*sends)
        for (partition, uscc), (index, blob) in result.states.items():
            with as_current(events[index]):
                table[state_key(partition, uscc)] = blob
        for partition, (index, blob) in result.clocks.items():
            with as_current(events[index]):
                table[clock_key(partition)] = blob
        open_alerts.update(result.open_alerts)
        _count(result, messages, kind_by_topic, _assigned(app, kind_by_topic), open_alerts)

    metrics.CONSUMER_LAG.source = lambda: _lag(app, kind_by_topic)

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


def state_key(partition: int, uscc: str) -> bytes:
    """The table key of an enterprise: its partition, so a partition's members are known
    without reading their state."""
    return f"{partition}/{uscc}".encode()


def clock_key(partition: int) -> bytes:
    return f"clock/{partition}".encode()


class TableStates:
    """The ``StateView`` of the pipeline over the worker's Faust table."""

    def __init__(self, table):
        self.table = table

    def get(self, partition: int, uscc: str) -> bytes | None:
        return self.table.get(state_key(partition, uscc))

    def members(self, partition: int) -> list[str]:
        prefix = f"{partition}/".encode()
        return [key[len(prefix):].decode() for key in list(self.table.keys()) if key.startswith(prefix)]

    def clock(self, partition: int) -> bytes | None:
        return self.table.get(clock_key(partition))


def _assigned(app, kind_by_topic: dict[str, str]) -> set[int]:
    try:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic in kind_by_topic}
    except Exception:
        return set()


def _behind(app, kind_by_topic: dict[str, str], consumed: dict[tuple[str, int], int], partition: int) -> set[str]:
    """The input kinds whose topic has messages on ``partition`` that this worker has not
    processed yet (or whose end it does not know yet): the clock waits for them.

    Known cost (docs/BENCHMARKS.md, latency): live, a sparse topic often has a message in
    flight, and the clock then waits at that topic's last event time until it is read."""
    out = set()
    for topic, kind in kind_by_topic.items():
        tp = TP(topic, partition)
        try:
            end = app.consumer.highwater(tp)
        except Exception:  # not assigned (any more): nothing to wait for
            continue
        done = consumed.get((topic, partition))
        if done is None:
            committed = app.consumer._committed_offset.get(tp)
            done = -1 if committed is None else committed
        if end is None or end > done + 1:
            out.add(kind)
    return out


def _lag(app, kind_by_topic: dict[str, str]) -> dict[str, int]:
    """Messages behind the log end per input kind, over this worker's partitions."""
    lag: Counter = Counter()
    consumer = app.consumer
    for tp in consumer.assignment():
        kind = kind_by_topic.get(tp.topic)
        if kind is None:
            continue
        end = consumer.highwater(tp)
        if end is None:
            continue
        done = consumer._committed_offset.get(tp)
        lag[kind] += max(0, end - (done + 1 if done is not None else 0))
    return lag


def _count(result: BatchResult, messages: list[Message], kind_by_topic: dict[str, str],
           assigned: set[int], open_alerts: dict[int, Counter]) -> None:
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
    for published in result.alerts:
        if published.opened:
            metrics.ALERTS_RAISED.labels(published.body["rule"], published.body["severity"]).inc()
    if result.open_alerts:
        totals = sum((open_alerts[p] for p in assigned if p in open_alerts), Counter())
        for rule in RULES:
            metrics.OPEN_ALERTS.labels(rule).set(totals.get(rule, 0))
