"""Is the worker making progress?  Readiness, stall gauges, and consumer lag from the broker.

A worker can be up, assigned and answering scrapes while nothing moves: ClickHouse frozen
(an insert that never returns), a sink thread held by something else, a batch that never
finishes.  Three figures say so, whatever the cause:

- ``entwatch_sink_stalled_seconds``: seconds since the sink last stored rows while it has
  rows to store (``Sink.stalled_seconds``; 0 when idle);
- ``entwatch_oldest_unfinished_batch_seconds``: age of the batch fetched but not yet stored
  and acked (a worker processes one batch at a time; 0 when idle);
- ``entwatch_consumer_lag``: end offsets asked of the broker every ``LAG_INTERVAL`` seconds,
  minus the committed offsets, so lag keeps growing while the worker is stuck (the
  consumer's own figure is refreshed only by fetches, which a stuck worker does not make).

``/ready`` answers 503 when either of the first two passes ``ENTWATCH_STALL_SECONDS``
(``judge``); the Prometheus rules in ``deploy/prometheus/rules.yml`` alert on all three.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams import metrics
from streams.seam import committed_offset

log = logging.getLogger("entwatch.worker")

LAG_INTERVAL = 5.0  # seconds between two questions to the broker about end offsets


@dataclass(frozen=True)
class Verdict:
    """What ``/ready`` answers: ready or not, and why not."""

    ready: bool
    reasons: tuple[str, ...] = ()

    def body(self) -> dict:
        return {"ready": self.ready, "reasons": list(self.reasons)}


def judge(*, assigned: bool, rebalancing: bool, sink_stalled: float, oldest_batch: float,
          stall_seconds: float) -> Verdict:
    """Ready: partitions assigned, no rebalance under way, and neither the sink nor the
    oldest unfinished batch stuck for ``stall_seconds``.

    >>> judge(assigned=True, rebalancing=False, sink_stalled=0.0, oldest_batch=0.4, stall_seconds=30)
    Verdict(ready=True, reasons=())
    >>> judge(assigned=True, rebalancing=False, sink_stalled=31.0, oldest_batch=31.5, stall_seconds=30).reasons
    ('sink stalled for 31 s', 'oldest unfinished batch is 32 s old')
    """
    reasons = []
    if not assigned:
        reasons.append("no partitions assigned")
    if rebalancing:
        reasons.append("rebalancing")
    if sink_stalled >= stall_seconds:
        reasons.append(f"sink stalled for {sink_stalled:.0f} s")
    if oldest_batch >= stall_seconds:
        reasons.append(f"oldest unfinished batch is {oldest_batch:.0f} s old")
    return Verdict(not reasons, tuple(reasons))


class UnfinishedBatches:
    """When each batch in flight was fetched: ``oldest_seconds`` is the age of the oldest."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._started: dict[int, float] = {}
        self._next = 0

    @contextmanager
    def tracking(self):
        """Around a batch, from its fetch until it is stored and acked."""
        token, self._next = self._next, self._next + 1
        self._started[token] = self.clock()
        try:
            yield
        finally:
            del self._started[token]

    def oldest_seconds(self) -> float:
        """Seconds since the oldest unfinished batch was fetched (0 when there is none).

        >>> now = [100.0]
        >>> batches = UnfinishedBatches(lambda: now[0])
        >>> with batches.tracking():
        ...     now[0] += 12
        ...     batches.oldest_seconds()
        12.0
        >>> batches.oldest_seconds()
        0.0
        """
        if not self._started:
            return 0.0
        return max(0.0, self.clock() - min(self._started.values()))


class Health:
    """The worker's progress: its sink, its unfinished batches, and the stall limit."""

    def __init__(self, sink, stall_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.sink = sink
        self.stall_seconds = stall_seconds
        self.batches = UnfinishedBatches(clock)

    def verdict(self, assigned: bool, rebalancing: bool) -> Verdict:
        return judge(assigned=assigned, rebalancing=rebalancing, sink_stalled=self.sink.stalled_seconds(),
                     oldest_batch=self.batches.oldest_seconds(), stall_seconds=self.stall_seconds)


def readiness(app) -> Verdict:
    """The verdict for a worker ``app`` (``/ready`` and ``entwatch_ready``)."""
    try:
        assigned = bool(app.consumer.assignment())
    except Exception:  # the consumer is (re)starting
        assigned = False
    health: Health | None = getattr(app, "health", None)
    if health is None:
        return judge(assigned=assigned, rebalancing=app.rebalancing, sink_stalled=0.0, oldest_batch=0.0,
                     stall_seconds=float("inf"))
    return health.verdict(assigned, app.rebalancing)


def lag_by_kind(ends: Mapping, committed: Mapping, kind_by_topic: Mapping[str, str],
                starts: Mapping | None = None) -> Counter:
    """Messages behind the log end per input kind: end offset minus the next offset to
    read (the committed offset; the log start if nothing was committed).

    >>> from faust.types import TP
    >>> tax0, tax1 = TP("enterprise.tax", 0), TP("enterprise.tax", 1)
    >>> lag_by_kind({tax0: 120, tax1: 7}, {tax0: 100, tax1: None}, {"enterprise.tax": "tax"}, {tax1: 2})
    Counter({'tax': 25})
    """
    lag: Counter = Counter()
    for tp, end in ends.items():
        kind = kind_by_topic.get(tp.topic)
        if kind is None or end is None:
            continue
        position = committed.get(tp)
        if position is None:
            position = (starts or {}).get(tp, 0)
        lag[kind] += max(0, end - position)
    return lag


class BrokerLag:
    """Consumer lag with end offsets asked of the broker (``refresh``, on a timer), by a
    consumer of its own that belongs to no group and fetches nothing.

    Where the broker's answer is below the worker's last fetch (Tansu answers ListOffsets
    with its last record batch's base offset + 1, ``streams.offsets``), the fetch's figure
    is kept: lag is then short by at most the last batch the producer wrote."""

    def __init__(self, bootstrap: str, kind_by_topic: Mapping[str, str], security: Mapping | None = None):
        self.bootstrap = bootstrap
        self.kind_by_topic = kind_by_topic
        self.security = dict(security or {})  # aiokafka's SASL/TLS options (Settings.aiokafka_security)
        self.lag: Counter = Counter()
        self._probe: AIOKafkaConsumer | None = None

    def figures(self) -> dict[str, int]:
        return dict(self.lag)

    async def refresh(self, consumer) -> None:
        """Recompute the lag of the worker's input partitions (``consumer``: Faust's)."""
        tps = [tp for tp in consumer.assignment() if tp.topic in self.kind_by_topic]
        if not tps:
            self.lag = Counter()
            return
        committed = {tp: committed_offset(consumer, tp) for tp in tps}
        fetched = {tp: consumer.highwater(tp) for tp in tps}
        try:
            asked, starts = await asyncio.wait_for(self._ask(tps, committed), timeout=2 * LAG_INTERVAL)
        except Exception as exc:  # broker unreachable or slow: the fetches' figures, as before
            log.info("end offsets not available from the broker (%s); lag from the last fetches", exc)
            asked, starts = {}, {}
        ends = {tp: max(asked.get(TopicPartition(tp.topic, tp.partition), 0), fetched[tp] or 0) for tp in tps}
        starts = {tp: starts.get(TopicPartition(tp.topic, tp.partition), 0) for tp in tps}
        self.lag = lag_by_kind(ends, committed, self.kind_by_topic, starts)

    async def _ask(self, tps, committed) -> tuple[dict, dict]:
        """End offsets of ``tps``, and log starts where nothing was committed, from the broker."""
        probe = await self._started()
        asked = await probe.end_offsets([TopicPartition(tp.topic, tp.partition) for tp in tps])
        unknown = [TopicPartition(tp.topic, tp.partition) for tp in tps if committed[tp] is None]
        return asked, (await probe.beginning_offsets(unknown) if unknown else {})

    async def _started(self) -> AIOKafkaConsumer:
        if self._probe is None:
            probe = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                     request_timeout_ms=10_000, **self.security)
            await probe.start()
            self._probe = probe
        return self._probe

    async def close(self) -> None:
        if self._probe is not None:
            probe, self._probe = self._probe, None
            await probe.stop()


def watch(app, sink, settings, kind_by_topic: Mapping[str, str]) -> Health:
    """Wire health into a worker ``app`` (``streams.app``) with ``settings`` (the stall
    limit, the broker's address and security): every batch ``app.on_batch`` handles is
    tracked from fetch to ack, the lag is asked of the broker every ``LAG_INTERVAL``
    seconds, the gauges read the figures, and ``app.health`` is what ``readiness``
    (``/ready``) judges."""
    health = Health(sink, settings.stall_seconds)
    lag = BrokerLag(settings.bootstrap_servers(), kind_by_topic, settings.aiokafka_security())
    handle = app.on_batch

    async def on_batch(fetched: list) -> None:
        with health.batches.tracking():
            await handle(fetched)

    app.on_batch = on_batch
    app.health = health

    @app.timer(LAG_INTERVAL)
    async def ask_broker_for_lag() -> None:
        await lag.refresh(app.consumer)

    @app.on_before_shutdown.connect
    async def close_lag_probe(sender, **kwargs) -> None:
        await lag.close()

    metrics.CONSUMER_LAG.source = lag.figures
    metrics.SINK_STALLED.set_function(sink.stalled_seconds)
    metrics.OLDEST_BATCH.set_function(health.batches.oldest_seconds)
    metrics.READY.set_function(lambda: float(readiness(app).ready))
    return health
