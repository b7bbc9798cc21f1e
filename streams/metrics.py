"""Prometheus metrics (SPEC §7), defined once.  No per-enterprise labels: label values
come from small fixed sets (kind, reason code, table, rule, severity)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from streams.settings import INPUT_KINDS

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_IN = Counter("entwatch_events_in", "Messages consumed, by input kind", ["kind"], registry=REGISTRY)
DEADLETTERED = Counter(
    "entwatch_events_deadlettered", "Messages sent to the dead-letter topic, by kind and reason",
    ["kind", "reason"], registry=REGISTRY,
)
REREADS = Counter("entwatch_rereads", "Times a partition was sought back to re-read messages the consumer fetched "
                  "but did not hand to the processor", ["kind"], registry=REGISTRY)
DUPLICATES = Counter("entwatch_events_duplicate", "Redelivered utility events counted once", ["kind"], registry=REGISTRY)
READINGS = Counter("entwatch_readings_processed", "Utility readings aggregated", registry=REGISTRY)
LATE_READINGS = Counter(
    "entwatch_readings_too_late", "Readings older than the aggregation window (stored raw, not aggregated)",
    registry=REGISTRY,
)
LATENCY = Histogram(
    "entwatch_processing_latency_seconds", "From a message's Kafka timestamp to its results stored",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=REGISTRY,
)
SINK_BATCHES = Counter("entwatch_sink_batches", "Batches written to ClickHouse", ["table"], registry=REGISTRY)
SINK_ROWS = Counter("entwatch_sink_rows", "Rows written to ClickHouse", ["table"], registry=REGISTRY)
SINK_FAILURES = Counter("entwatch_sink_failures", "Failed ClickHouse writes (each is retried), and inserts still "
                        "unanswered after the sink's time limit (counted again every time limit)", ["table"],
                        registry=REGISTRY)
SINK_RETRIES = Counter("entwatch_sink_retries", "ClickHouse write retries", ["table"], registry=REGISTRY)
ALERTS_RAISED = Counter("entwatch_alerts_raised", "Alerts opened, by rule and severity", ["rule", "severity"], registry=REGISTRY)
# Stalls (streams.health sets what they read).
SINK_STALLED = Gauge("entwatch_sink_stalled_seconds", "Seconds since the sink last stored rows while it has rows to "
                     "store (0 when idle)", registry=REGISTRY)
OLDEST_BATCH = Gauge("entwatch_oldest_unfinished_batch_seconds", "Age of the oldest batch fetched but not yet stored "
                     "and acked (0 when idle)", registry=REGISTRY)
READY = Gauge("entwatch_ready", "1 while /ready answers 200, 0 while it answers 503", registry=REGISTRY)
OPEN_ALERTS = Gauge("entwatch_open_alerts", "Alerts currently open on this worker, by rule", ["rule"], registry=REGISTRY)


class Freshness:
    """Seconds since the last event of each input kind (a department that stopped sending)."""

    def __init__(self, kinds: tuple[str, ...], registry: CollectorRegistry = REGISTRY):
        self.kinds = kinds
        self.last_seen: dict[str, float] = {}
        self.started = time.time()
        registry.register(self)

    def seen(self, kind: str, at: float | None = None) -> None:
        self.last_seen[kind] = time.time() if at is None else at

    def collect(self):
        now = time.time()
        family = GaugeMetricFamily(
            "entwatch_source_freshness_seconds",
            "Seconds since the last event of each kind was consumed (since start if none yet)",
            labels=["kind"],
        )
        for kind in self.kinds:
            family.add_metric([kind], now - self.last_seen.get(kind, self.started))
        yield family

    def describe(self):
        return []


FRESHNESS = Freshness(INPUT_KINDS)


class ConsumerLag:
    """Messages behind the log end, per input kind, over this worker's partitions (the
    latest figure of ``streams.health.BrokerLag``, which asks the broker on a timer;
    ``source`` is set by the worker)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.source = lambda: {}
        registry.register(self)

    def collect(self):
        family = GaugeMetricFamily(
            "entwatch_consumer_lag", "Messages not yet committed, per input kind, on this worker's partitions",
            labels=["kind"],
        )
        try:
            lag = self.source()
        except Exception:  # the consumer is (re)starting: no figure rather than a failed scrape
            lag = {}
        for kind in INPUT_KINDS:
            family.add_metric([kind], float(lag.get(kind, 0)))
        yield family

    def describe(self):
        return []


CONSUMER_LAG = ConsumerLag()
