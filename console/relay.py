"""The outbox relay: publishes case events on ``monitor.cases``, at least once, in order.

Each case action writes its event to the ``outbox`` table in the action's own transaction
(``console.store``).  The relay sends unsent rows oldest first and marks a row sent only
after the broker acknowledged it (``acks=all``).  A crash between the acknowledgement and the
mark re-sends that row on restart, with the same ``event_id`` (in the body and in the
``event_id`` header): a subscriber drops an ``event_id`` it has seen, so no change is lost
and none counts twice.  Key: the enterprise's USCC (one enterprise's cases stay in order).
"""

from __future__ import annotations

import json
import logging
import threading

from console.store import CaseStore
from streams import cloudevents

log = logging.getLogger("entwatch.console.relay")


def cases_topic(settings) -> str:
    """The full name of the case topic (with ``ENTWATCH_TOPIC_PREFIX``)."""
    return settings.topic("cases")


def ensure_cases_topic(settings) -> None:
    """Create ``monitor.cases`` when missing (a week's retention, like the other monitor topics)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers(), request_timeout_ms=10000,
                             **settings.kafka_python_security())
    try:
        if cases_topic(settings) not in set(admin.list_topics()):
            try:
                admin.create_topics([NewTopic(cases_topic(settings), settings.partitions, 1,
                                              topic_configs={"retention.ms": str(7 * 24 * 3600 * 1000)})])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


class OutboxRelay(threading.Thread):
    """A daemon thread that drains the outbox to the broker every ``interval`` seconds."""

    def __init__(self, store: CaseStore, settings, interval: float = 0.5):
        super().__init__(name="outbox-relay", daemon=True)
        self.store, self.settings, self.interval = store, settings, interval
        self.stopping = threading.Event()
        self._producer = None

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.drain()
            except Exception as exc:  # the broker is away: keep the rows, say so, try again
                log.warning("monitor.cases relay: %s: %s (the outbox keeps the events)", exc.__class__.__name__, exc)
                self._close()
                self.stopping.wait(5)
            self.stopping.wait(self.interval)
        self._close()

    def drain(self) -> int:
        """Send every unsent row, each marked sent after its acknowledgement; returns how many."""
        rows = self.store.unsent()
        if not rows:
            return 0
        producer = self._connect()
        for row in rows:
            headers = [("event_id", row["event_id"].encode()),  # CloudEvents headers (binary mode) after it
                       *cloudevents.case_headers(json.loads(row["payload"]), cloudevents.source(self.settings.app_id))]
            producer.send(cases_topic(self.settings), key=row["key"].encode(), value=row["payload"].encode(),
                          headers=headers).get(timeout=30)
            self.store.mark_sent(row["id"])
        return len(rows)

    def _connect(self):
        if self._producer is None:
            from kafka import KafkaProducer

            ensure_cases_topic(self.settings)
            self._producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap_servers(), acks="all",
                                           max_in_flight_requests_per_connection=1, linger_ms=0,
                                           **self.settings.kafka_python_security())
        return self._producer

    def _close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            finally:
                self._producer = None

    def stop(self) -> None:
        self.stopping.set()
