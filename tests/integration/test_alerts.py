"""Detection on real parts: a simulated city replayed into a worker (a backlog, caught up at
uneven speeds per topic) raises the alerts that the batch processor computes in process,
with the same ids, states, severities and windows, on monitor.alerts, in storage, in the
metrics and through ``entwatch alerts``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import orjson
import pytest

from producers.simulator import LEGACY, AnomalyRates, SimulationConfig, generate
from streams.pipeline import replay_in_process
from streams.settings import Settings
from tests.conftest import wait_until
from tests.integration.kafka_io import read_topic
from tests.integration.test_pipeline import _metric, replay

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def city(tmp_path_factory) -> tuple:
    rates = AnomalyRates(**{name: 0.08 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=40, days=200, seed=5, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day",
                              **{**LEGACY, "late_share": 0.0})  # punctual: see docs/STREAMING.md
    path = tmp_path_factory.mktemp("city") / "events.jsonl"
    lines = [orjson.dumps(obj) if isinstance(obj, dict) else obj.encode() for obj in generate(config)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, lines


def expected_alerts(lines: list[bytes], partitions: int) -> tuple[list[dict], int]:
    """What the pipeline must publish: the same messages through the processor in process,
    partitioned as the producer does."""
    results = list(replay_in_process(lines, partitions))
    return [p.body for r in results for p in r.alerts], sum(r.accepted.total() for r in results)


def test_the_worker_raises_the_alerts_the_processor_computes(start_worker, broker, city, state_store, tmp_path):
    path, lines = city
    worker = start_worker(ENTWATCH_STATE_STORE=state_store)
    alerts, accepted = expected_alerts(lines, Settings().partitions)
    assert len({a["rule"] for a in alerts}) >= 4
    replay(path, broker.url)  # faster than the worker reads: it catches up topics at uneven speeds

    wait_until(lambda: _metric(worker.metrics(), "entwatch_processing_latency_seconds_count") >= accepted,
               timeout=180, what="the city consumed")
    final = {}
    for a in alerts:
        final[a["alert_id"]] = a
    query = "SELECT alert_id, status, severity, toString(window_end) AS window_end, rule FROM alerts FINAL"
    try:
        wait_until(lambda: len(worker.query(query)) >= len(final), what="alert rows")
    except AssertionError:
        pass  # the comparison below says which
    stored = worker.query(query)
    assert {r["alert_id"]: (r["status"], r["severity"], r["window_end"], r["rule"]) for r in stored} == {
        k: (a["status"], a["severity"], a["window_end"], a["rule"]) for k, a in final.items()}

    # On the topic: each alert's last message is the stored state; keys are the USCCs.  (The
    # processor's byte-exact output is pinned by tests/unit/test_pipeline_detection.py; here a
    # late-judged return may carry another detected_at, see docs/STREAMING.md.)
    published = read_topic(broker.bootstrap, Settings().topic("alerts"), len(alerts))
    last = {}
    for record in published:
        body = orjson.loads(record.value)
        assert record.key.decode() == body["uscc"]
        last[body["alert_id"]] = (body["status"], body["severity"], body["window_end"], body["rule"])
    assert last == {k: (a["status"], a["severity"], a["window_end"], a["rule"]) for k, a in final.items()}

    opened = sum(1 for a in final.values() if a["status"] == "open")
    metrics = worker.metrics()
    assert _metric(metrics, "entwatch_alerts_raised_total") == len(final)
    assert _metric(metrics, "entwatch_open_alerts") == opened
    assert "entwatch_consumer_lag{" in metrics

    token = {**os.environ, "ENTWATCH_API_TOKEN": worker.token}  # the worker's web port needs it
    cli = subprocess.run([sys.executable, "-m", "streams.cli", "alerts", "--json", "--worker", worker.base_url,
                          "--limit", "10000"], capture_output=True, text=True, timeout=60, env=token)
    assert cli.returncode == 0, cli.stderr
    listed = [json.loads(line) for line in cli.stdout.splitlines()]
    assert sorted(a["alert_id"] for a in listed) == sorted(k for k, a in final.items() if a["status"] == "open")
    assert all(a["explanation"]["zh"] and a["schema_version"] == 1 for a in listed)
    table = subprocess.run([sys.executable, "-m", "streams.cli", "alerts", "--worker", worker.base_url, "--lang", "en"],
                           capture_output=True, text=True, timeout=60, env=token)
    assert table.returncode == 0 and "alerts" in table.stdout, table.stderr


def test_alerts_without_a_worker_is_one_clear_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "streams.cli", "alerts", "--worker", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=60, env={"ENTWATCH_STORAGE_URL": f"chdb://{tmp_path}",
                                                                           "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "entwatch up" in done.stderr
