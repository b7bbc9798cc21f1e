"""Stalls and unstorable rows on real parts: a clickhouse-server 18.16 frozen with SIGSTOP
under a real worker (Tansu broker, real Prometheus with the deployed rules), and rows the
server or chDB refuse, split out of their batch and dead-lettered."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from clickhouse_driver import Client
from kafka import KafkaProducer

from streams.settings import Settings
from streams.sink import Sink
from streams.storage import EmbeddedStorage, apply_schema, open_storage
from streams.uscc import make_uscc
from tests.conftest import Worker, require, wait_until
from tests.integration.kafka_io import read_topic
from tests.schema_check import header_text, problems
from tests.integration.test_deploy_observability import Prometheus
from tests.integration.test_pipeline import _metric
from tests.services import ClickHouseServer

pytestmark = pytest.mark.integration
CST = timezone(timedelta(hours=8))
STALL_SECONDS = 5
STALL_ALERTS = {"EntwatchSinkStalled", "EntwatchBatchStuck", "EntwatchLagGrowingNothingConsumed",
                "EntwatchWorkerNotReady"}


def uscc(n: int) -> str:
    return make_uscc(f"91441900MA{n:07d}")


def utility_event(n: int) -> bytes:
    """One hourly electricity upload of enterprise ``n % 40``, its own hour and event id."""
    start = datetime(2024, 5, 1, tzinfo=CST) + timedelta(hours=n)
    return json.dumps({"kind": "utility", "event_id": f"u-{n}", "uscc": uscc(n % 40), "source": "grid",
                       "event_time": (start + timedelta(hours=1)).isoformat(), "schema_version": 1,
                       "utility": "electricity", "unit": "kWh", "meter_id": f"M{n % 40}",
                       "readings": [{"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
                                     "amount": 1.5}]}).encode()


def social_event(n: int, headcount: int) -> bytes:
    return json.dumps({"kind": "social", "event_id": f"s-{n}", "uscc": uscc(n), "source": "hrss",
                       "event_time": "2024-02-10T09:00:00+08:00", "schema_version": 1, "period": "2024-01",
                       "insured_headcount": headcount, "contributions_cny": 1000.0}).encode()


class Sender(threading.Thread):
    """Sends utility events at about ``rate`` a second until stopped; counts acknowledged sends."""

    def __init__(self, bootstrap: str, topic: str, rate: float = 40):
        super().__init__(daemon=True)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.topic, self.rate = topic, rate
        self.sent = 0
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            self.producer.send(self.topic, key=uscc(n % 40).encode(), value=utility_event(n))
            n += 1
            time.sleep(1 / self.rate)
        self.producer.flush()
        self.sent = n

    def stop(self) -> int:
        self.halt.set()
        self.join(30)
        self.producer.close()
        return self.sent


def ready(worker: Worker) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{worker.base_url}/ready", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def firing(prom: Prometheus) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{prom.port}/api/v1/alerts", timeout=5) as resp:
        alerts = json.loads(resp.read())["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def test_a_frozen_clickhouse_fails_ready_raises_the_stall_gauges_and_alerts_and_loses_nothing(broker, tmp_path):
    require(shutil.which("prometheus") is not None, "prometheus is not installed (apt-get install prometheus)")
    server = ClickHouseServer().start()  # its own: a frozen session server would stall other tests
    worker = prom = sender = None
    try:
        worker = Worker(broker.url, f"clickhouse://default@127.0.0.1:{server.tcp_port}/stalls", tmp_path / "worker.log",
                        extra_env={"ENTWATCH_STALL_SECONDS": str(STALL_SECONDS)}).start()
        prom = Prometheus(tmp_path, worker.port).start()
        client = Client("127.0.0.1", port=server.tcp_port)
        stored = lambda: client.execute("SELECT count() FROM stalls.events FINAL")[0][0]  # noqa: E731
        sender = Sender(broker.bootstrap, Settings().topic("utility"))
        sender.start()
        wait_until(lambda: stored() > 50 and ready(worker)[0] == 200, what="events flowing and stored")
        # a worker that has been consuming for a while, as Prometheus sees it (the lag rule
        # looks 30 s back: a younger series fires sooner)
        wait_until(lambda: prom.query("count_over_time(entwatch_events_in_total[30s]) >= 28")["data"]["result"],
                   timeout=60, what="30 s of consumption scraped")
        before = worker.metrics()
        os.killpg(server.proc.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()

        unready_after = unready_body = during = None
        fired: dict[str, float] = {}
        lag_at_unready = None
        while time.monotonic() - frozen_at < 75 and not (unready_after and fired.keys() >= STALL_ALERTS):
            status, body = ready(worker)
            if status == 503 and unready_after is None:
                unready_after, unready_body = time.monotonic() - frozen_at, body
                during = worker.metrics()
                lag_at_unready = _metric(during, "entwatch_consumer_lag")
            for name in firing(prom) - fired.keys():
                fired[name] = time.monotonic() - frozen_at
            time.sleep(0.25)
        stalled = worker.metrics()
        print(f"\n/ready 503 {unready_after:.1f} s after SIGSTOP; alerts firing after "
              + ", ".join(f"{n} {s:.1f} s" for n, s in sorted(fired.items(), key=lambda i: i[1])))

        assert unready_after is not None and STALL_SECONDS - 0.5 <= unready_after <= STALL_SECONDS + 3
        assert any(r.startswith("sink stalled") for r in unready_body["reasons"]), unready_body
        assert _metric(during, "entwatch_sink_stalled_seconds") >= STALL_SECONDS
        assert _metric(during, "entwatch_oldest_unfinished_batch_seconds") >= STALL_SECONDS
        assert _metric(during, "entwatch_ready") == 0
        assert _metric(during, "entwatch_sink_failures_total") > _metric(before, "entwatch_sink_failures_total")
        assert _metric(stalled, "entwatch_consumer_lag") > lag_at_unready  # asked of the broker, not frozen
        assert _metric(stalled, "entwatch_events_in_total") == _metric(during, "entwatch_events_in_total")
        assert fired.keys() >= STALL_ALERTS and max(fired.values()) <= 60, fired

        sent = sender.stop()
        os.killpg(server.proc.pid, signal.SIGCONT)
        thawed_at = time.monotonic()
        wait_until(lambda: stored() == sent, timeout=120, what=f"all {sent} events stored")
        wait_until(lambda: ready(worker)[0] == 200, timeout=30, what="/ready 200 again")
        print(f"stored {stored()} of {sent} sent, {time.monotonic() - thawed_at:.1f} s after SIGCONT")
        assert client.execute("SELECT uniqExact(event_id), count() FROM stalls.events FINAL")[0] == (sent, sent)
        assert _metric(worker.metrics(), "entwatch_sink_stalled_seconds") < STALL_SECONDS  # 0 idle, small busy
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
        if sender is not None and sender.is_alive():
            sender.stop()
        for service in (prom, worker):
            if service is not None:
                service.stop()
        server.stop()


def _social_rows(n: int, bad: dict[int, object]) -> list[dict]:
    at = datetime(2024, 2, 10, 1, tzinfo=timezone.utc)
    return [{"uscc": uscc(i), "period": datetime(2024, 1, 1).date(), "insured_headcount": bad.get(i, 10 + i),
             "contributions_cny": 1000.0, "event_id": f"s-{i}", "event_time": at} for i in range(n)]


def _event_rows(n: int, early: set[int]) -> list[dict]:
    return [{"kind": "tax", "uscc": uscc(i), "event_id": f"t-{i}", "source": "tax",
             "event_time": datetime(1900 if i in early else 2024, 3, 1, tzinfo=timezone.utc), "payload": "{}"}
            for i in range(n)]


def test_the_server_refuses_only_the_rows_it_cannot_hold_and_stores_the_rest_of_their_batch(clickhouse_server):
    """Rows built here, not sent through the contract (which bounds these values now)."""
    import asyncio

    storage = open_storage(f"clickhouse://default@127.0.0.1:{clickhouse_server.tcp_port}/t_{uuid.uuid4().hex[:12]}")
    apply_schema(storage)
    rows = {"social_monthly": _social_rows(200, {7: 2**40, 150: -1}), "events": _event_rows(100, {42})}
    refused = asyncio.run(Sink(storage, first_backoff=0.01).write(rows))
    assert sorted((r.table, r.row["uscc"], r.fault.detail) for r in refused) == sorted([
        ("social_monthly", uscc(7), "ClickHouse 53 TYPE_MISMATCH, column insured_headcount"),
        ("social_monthly", uscc(150), "ClickHouse 53 TYPE_MISMATCH, column insured_headcount"),
        ("events", uscc(42), "ClickHouse 53 TYPE_MISMATCH, column event_time")])
    assert storage.query("SELECT count() AS n FROM social_monthly FINAL") == [{"n": 198}]
    assert storage.query("SELECT count() AS n FROM events FINAL") == [{"n": 99}]
    storage.close()


def test_chdb_refuses_only_the_rows_it_cannot_hold_and_stores_the_rest_of_their_batch(tmp_path):
    import asyncio

    storage = EmbeddedStorage(tmp_path / "chdb")
    try:
        apply_schema(storage)
        rows = {"social_monthly": _social_rows(100, {3: "four hundred", 60: 2**70})}
        refused = asyncio.run(Sink(storage, first_backoff=0.01).write(rows))
        assert sorted((r.row["uscc"], r.fault.detail) for r in refused) == sorted([
            (uscc(3), "ClickHouse 27 CANNOT_PARSE_INPUT_ASSERTION_FAILED, column insured_headcount"),
            (uscc(60), "JSON_ENCODE_ERROR")])
        assert storage.query("SELECT count() AS n FROM social_monthly FINAL") == [{"n": 98}]
    finally:
        storage.close()


@pytest.mark.parametrize("storage_url", ["server"], indirect=True)
def test_a_worker_dead_letters_rows_its_storage_refuses_and_stores_every_other_message(start_worker, broker,
                                                                                        storage_url):
    """Every value the contract accepts fits the deployed schema, so the server's column is
    narrowed here (UInt8: a schema that drifted from the contract): headcounts of 300 and
    more pass the contract and cannot be stored."""
    storage = open_storage(storage_url)
    apply_schema(storage)
    storage.execute(f"ALTER TABLE {storage.database}.social_monthly MODIFY COLUMN insured_headcount UInt8")
    worker = start_worker()
    settings = Settings()
    too_many = {5: 300, 17: 1000, 29: 70000}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    for n in range(30):
        producer.send(settings.topic("social"), key=uscc(n).encode(), value=social_event(n, too_many.get(n, 10 + n)))
    for n in range(20):
        producer.send(settings.topic("utility"), key=uscc(n % 40).encode(), value=utility_event(n))
    producer.flush()
    producer.close()

    letters = read_topic(broker.bootstrap, settings.topic("deadletter"), len(too_many))
    assert len(letters) == len(too_many)
    for letter in letters:
        headers = dict(letter.headers)
        entwatch = {k: v for k, v in headers.items() if k.startswith("entwatch.")}
        assert entwatch == {"entwatch.stage": b"sink", "entwatch.reason": b"unstorable",
                            "entwatch.table": b"social_monthly",
                            "entwatch.detail": b"ClickHouse 53 TYPE_MISMATCH, column insured_headcount",
                            "entwatch.sha256": hashlib.sha256(letter.value).hexdigest().encode()}
        assert problems("cloudevents-headers.v1.json", header_text(letter.headers)) == []
        assert headers["ce_id"] == b"sink-social_monthly-" + headers["entwatch.sha256"]
        row = json.loads(letter.value)
        assert too_many[int(row["event_id"][2:])] == row["insured_headcount"] and letter.key == row["uscc"].encode()
    count = lambda sql: storage.query(sql)[0]["n"]  # noqa: E731
    wait_until(lambda: count("SELECT count() AS n FROM events FINAL") == 50, what="every message's event stored")
    wait_until(lambda: count("SELECT count() AS n FROM deadletters FINAL") == 3, what="the deadletters rows")
    assert count("SELECT count() AS n FROM social_monthly FINAL") == 27
    assert count("SELECT count() AS n FROM utility_daily FINAL") > 0
    assert storage.query("SELECT DISTINCT topic, stage, reason, detail FROM deadletters FINAL") == [
        {"topic": settings.topic("deadletter"), "stage": "sink", "reason": "unstorable",
         "detail": "social_monthly: ClickHouse 53 TYPE_MISMATCH, column insured_headcount"}]
    metrics = worker.metrics()
    assert 'entwatch_events_deadlettered_total{kind="social",reason="unstorable"} 3.0' in metrics
    assert ready(worker)[0] == 200
    storage.close()
