"""The contracts on real parts: a simulated city and some bad messages replayed into a real
worker (Tansu broker, chDB): every message it publishes on monitor.alerts, monitor.risk
and monitor.deadletter matches its committed schema and carries its headers; and the
subscriber example of docs/examples, run against the broker, ends with exactly the open
alerts that storage holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

import orjson
import pytest

from producers.simulator import LEGACY, AnomalyRates, SimulationConfig, generate
from streams import cloudevents
from streams.contracts import Rejection, decode_event
from streams.settings import Settings
from tests.conftest import wait_until
from tests.integration.kafka_io import produce_raw, read_to_end
from tests.integration.test_pipeline import _metric, replay
from tests.schema_check import header_text, problems

pytestmark = pytest.mark.integration

SUBSCRIBER = Path(__file__).parents[2] / "docs" / "examples" / "subscriber.py"
USCC = "914403001922038216"
BAD = [  # (input kind, value): each is dead-lettered
    ("utility", b"\xff\xfe not JSON"),
    ("social", b"[1, 2, 3]"),
    ("tax", b'{"kind": "tax", "schema_version": 1, "uscc": "914403001922038217"}'),
    ("complaint", b'{"kind": "payroll", "schema_version": 1}'),
]


@pytest.fixture
def storage_url(tmp_path) -> str:
    """The contracts do not depend on the storage backend: chDB only."""
    return f"chdb://{tmp_path / 'chdb'}"


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> tuple[Path, list[bytes]]:
    rates = AnomalyRates(**{name: 0.08 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=30, days=200, seed=5, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day", **{**LEGACY, "late_share": 0.0})  # punctual
    path = tmp_path_factory.mktemp("city") / "events.jsonl"
    lines = [orjson.dumps(obj) if isinstance(obj, dict) else obj.encode() for obj in generate(config)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, lines


def replayed(worker, broker, city, bad=()) -> None:
    """Replay the city (and ``bad`` messages) and wait until the worker has processed all of
    them (it publishes a batch's messages before it counts the batch processed)."""
    path, lines = city
    replay(path, broker.url)
    settings = Settings(broker_url=broker.url)
    produce_raw(broker.bootstrap, [(settings.topic(kind), USCC.encode(), value) for kind, value in bad])
    judged = (decode_event(line) for line in lines)  # what replay sends: the valid ones
    messages = sum(1 for event in judged if not isinstance(event, Rejection)) + len(bad)
    wait_until(lambda: _metric(worker.metrics(), "entwatch_processing_latency_seconds_count") >= messages,
               timeout=180, what="the city processed")


def assert_published(records, schema: str, kind: str) -> None:
    """Each record: keyed by its USCC, body valid, CloudEvents headers valid and of the kind;
    a message delivered twice carries the same body under the same ce_id."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for record in records:
        body = orjson.loads(record.value)
        headers = header_text(record.headers)
        assert record.key.decode() == body["uscc"]
        assert problems(schema, body) == [], body
        assert problems("cloudevents-headers.v1.json", headers) == [], headers
        assert headers["ce_type"].startswith(f"cn.entwatch.{kind}.") and headers["ce_subject"] == body["uscc"]
        assert headers["ce_dataschema"] == cloudevents.schema_id(schema.split(".")[0], 1)
        bodies[headers["ce_id"]].add(record.value)
    assert all(len(values) == 1 for values in bodies.values())


def test_every_message_the_worker_publishes_matches_its_schema_and_headers(start_worker, broker, city):
    worker = start_worker()
    replayed(worker, broker, city, BAD)
    settings = Settings()

    published = read_to_end(broker.bootstrap, settings.topic("alerts"))
    assert len({orjson.loads(r.value)["alert_id"] for r in published}) >= 10  # not a vacuous check
    assert_published(published, "alert.v1.json", "alert")
    types = {header_text(r.headers)["ce_type"] for r in published}
    assert {"cn.entwatch.alert.opened", "cn.entwatch.alert.resolved"} <= types

    scores = read_to_end(broker.bootstrap, settings.topic("risk"))
    assert len({orjson.loads(r.value)["uscc"] for r in scores}) >= 10
    assert_published(scores, "risk.v1.json", "risk")

    letters = read_to_end(broker.bootstrap, settings.topic("deadletter"))
    assert sorted(r.value for r in letters) == sorted(value for _, value in BAD)
    for record in letters:
        headers = header_text(record.headers)
        assert problems("deadletter-headers.v1.json", headers) == [], headers
        assert headers["entwatch.topic"] == settings.topic(dict((v, k) for k, v in BAD)[record.value])
        assert problems("cloudevents-headers.v1.json", headers) == [], headers
        assert headers["ce_type"] == "cn.entwatch.deadletter"
        assert headers["ce_id"] == f"{headers['entwatch.topic']}-{headers['entwatch.partition']}-{headers['entwatch.offset']}"


def test_the_subscriber_example_ends_with_the_open_alerts_that_storage_holds(start_worker, broker, city):
    worker = start_worker()
    replayed(worker, broker, city)
    token = getattr(worker, "token", None)  # the worker's read API takes one where conftest gives it
    env = {**os.environ, **({"ENTWATCH_API_TOKEN": token} if token else {})}
    listed = subprocess.run([sys.executable, "-m", "streams.cli", "alerts", "--json", "--worker", worker.base_url,
                             "--limit", "10000"], capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    stored = {a["alert_id"]: a for a in map(json.loads, listed.stdout.splitlines())}
    assert len(stored) >= 5  # not a vacuous comparison

    done = subprocess.run([sys.executable, str(SUBSCRIBER), "--broker", broker.bootstrap, "--idle", "5"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "does not match" not in done.stderr, done.stderr
    table = {a["alert_id"]: a for a in map(json.loads, done.stdout.splitlines())}
    assert table.keys() == stored.keys()
    fields = ("status", "severity", "window_start", "window_end", "rule", "uscc", "detected_at")
    assert {k: [a[f] for f in fields] for k, a in table.items()} == {k: [a[f] for f in fields] for k, a in stored.items()}
