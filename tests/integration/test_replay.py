"""Replay and the live simulator on a real broker: what lands on the topics, keys, pacing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import orjson
import pytest

from producers.replay import send_lines, simulated_lines
from producers.simulator import SimulationConfig, write_files
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def entwatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_csv_replay_sends_each_mapped_event_keyed_by_uscc_and_never_a_bad_row(broker, tmp_path):
    csv = tmp_path / "tax.csv"
    csv.write_text((EXAMPLES / "tax.csv").read_text(encoding="utf-8") + "SB-bad,914403001922038217,2024年3月,"
                   "2024年4月15日 10:32,1,1\n", encoding="utf-8")
    done = entwatch("replay", str(csv), "--mapping", str(EXAMPLES / "tax.yaml"), "--broker", broker.url, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "sent 4 events (tax 4)" in done.stdout and "1 bad rows not sent (invalid_uscc 1)" in done.stdout
    assert f"{csv}:6: invalid_uscc" in done.stderr + done.stdout
    records = read_topic(broker.bootstrap, "enterprise.tax", 4, timeout=20)
    events = [orjson.loads(r.value) for r in records]
    assert sorted(e["event_id"] for e in events) == ["SB2024040001", "SB2024040002", "SB2024040003", "SB2024040004"]
    assert all(r.key.decode() == e["uscc"] for r, e in zip(records, events))


def test_replay_to_a_broker_that_is_not_there_says_what_to_do(tmp_path):
    done = entwatch("replay", str(EXAMPLES / "tax.csv"), "--mapping", str(EXAMPLES / "tax.yaml"),
                    "--broker", "kafka://127.0.0.1:9", "--quiet")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "cannot send to the broker at kafka://127.0.0.1:9" in done.stderr and "Traceback" not in done.stderr


def test_simulator_to_kafka_sends_exactly_what_it_writes_to_a_file(broker, tmp_path):
    config = SimulationConfig(enterprises=15, days=20, start=date(2024, 5, 1), electricity_interval="day")
    write_files(config, tmp_path / "e.jsonl", tmp_path / "t.jsonl")
    expected = defaultdict(list)     # topic -> key -> lines, in file order
    kind = uscc = None
    for raw in (tmp_path / "e.jsonl").read_bytes().splitlines():
        obj = orjson.loads(raw) if raw.startswith(b"{") and raw.endswith(b"}") else None
        if isinstance(obj, dict) and not obj["event_id"].endswith("-x"):   # a malformed copy goes with its original
            kind, uscc = obj["kind"], obj["uscc"]
        expected[(kind, uscc)].append(raw)

    done = entwatch("simulate", "--to-kafka", "--broker", broker.url, "--enterprises", "15", "--days", "20",
                    "--start", "2024-05-01", "--electricity-interval", "day", "--speed", "max", "--quiet")

    assert done.returncode == 0, done.stderr
    got = defaultdict(list)
    for kind in {k for k, _ in expected}:
        n = sum(len(v) for (k, _), v in expected.items() if k == kind)
        for r in read_topic(broker.bootstrap, f"enterprise.{kind}", n, timeout=30):
            got[(kind, r.key.decode())].append(r.value)
    assert got == expected     # same bytes, same order per enterprise (one partition each)


def test_paced_simulation_takes_event_time_over_speed(broker):
    settings = Settings(broker_url=broker.url)
    ensure_topics(settings)
    config = SimulationConfig(enterprises=5, days=3, history_months=0, start=date(2024, 5, 6),
                              electricity_interval="day")
    lines = list(simulated_lines(config))
    span = (lines[-1].at - lines[0].at).total_seconds()
    speed = span / 2.0     # the whole delivery span in two seconds
    began = time.monotonic()
    report = send_lines(lines, settings, speed=speed)
    elapsed = time.monotonic() - began
    assert report.sent == len(lines) and 1.9 < elapsed < 4.0
