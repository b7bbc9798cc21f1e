"""City-wide peer cohorts on real parts (issue #12, item 3): a worker whose topics have 4
partitions raises exactly the final alerts of the in-process driver at one partition, its
partitions' contributions are on the compacted topic ``monitor.cohorts`` once per day and
partition, and a restarted worker reads that topic back to its end before it judges."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta

import orjson
import pytest

from producers.simulator import AnomalyRates, SimulationConfig, UploadMix, generate
from streams.pipeline import replay_in_process
from streams.settings import Settings
from tests.conftest import wait_until
from tests.integration.kafka_io import read_to_end
from tests.integration.test_pipeline import _metric, replay

pytestmark = pytest.mark.integration
IDLE = {"ENTWATCH_COHORT_IDLE_SECONDS": "3"}


def test_a_worker_over_4_partitions_ends_with_the_alerts_of_one_partition(start_worker, broker, tmp_path):
    rates = AnomalyRates(**{name: 0.08 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=40, days=160, seed=41, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day", very_late_share=0.0,
                              uploads=UploadMix(daily=0.7, weekly=0.3, monthly=0.0))
    lines = [orjson.dumps(obj) if isinstance(obj, dict) else obj.encode() for obj in generate(config)]
    path = tmp_path / "city.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    results = list(replay_in_process(lines, 1, lateness=timedelta(days=14)))
    final = {}
    for result in results:
        for p in result.alerts:
            final[p.body["alert_id"]] = state_of(p.body)
    accepted = sum(r.accepted.total() for r in results)
    assert len({rule for _, rule, *_ in final.values()}) >= 3

    worker = start_worker(ENTWATCH_UTILITY_LATENESS_DAYS="14", **IDLE)
    assert Settings().partitions == 4
    replay(path, broker.url)
    wait_until(lambda: _metric(worker.metrics(), "entwatch_processing_latency_seconds_count") >= accepted,
               timeout=240, what="the city consumed")

    def stored() -> dict:
        return {a["alert_id"]: state_of(a) for a in worker.read("alerts", limit=10000)}

    try:
        wait_until(lambda: stored() == final, timeout=90, what="the final alerts")
    except AssertionError:
        pass  # the comparison says how they differ
    assert stored() == final

    # One contribution per day and partition on monitor.cohorts (keyed day/<day>/<partition>,
    # so a partition processed again overwrites its own), from all four partitions.
    records = read_to_end(broker.bootstrap, Settings().topic("cohorts"))
    days = Counter()
    for r in records:
        key = r.key.decode()
        if key.startswith("day/"):
            _, day, partition = key.split("/")
            body = orjson.loads(r.value)
            assert body["day"] == day and body["partition"] == int(partition)
            days[int(partition)] += 1
    assert set(days) == {0, 1, 2, 3} and min(days.values()) >= 100

    # A worker started again reads the topic to its end before it judges anything.
    worker.stop()
    again = start_worker(ENTWATCH_UTILITY_LATENESS_DAYS="14", **IDLE)
    wait_until(lambda: "monitor.cohorts read to its end" in again.log.read_text(), timeout=60,
               what="monitor.cohorts read back")
    line = re.search(r"monitor\.cohorts read to its end: (\d+) messages, the city folded through (\S+)",
                     again.log.read_text())
    assert int(line.group(1)) >= len(records) and line.group(2) != "None"


def state_of(alert: dict) -> tuple:
    return (alert["uscc"], alert["rule"], alert["status"], alert["severity"], alert["window_start"],
            alert["window_end"])
