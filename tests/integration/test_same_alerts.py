"""Same data, same alerts on real parts (issue #12): a city as departments send it (weekly
and monthly meters, late uploads, corrected returns, duplicates), fed to an `entwatch up`
stack (4 partitions) with its lines shuffled within the lateness, and to two workers sharing
the partitions (one killed part-way and restarted), ends with the final alerts that the file
in order gives through the processor in process at one partition: peers are the city's,
whatever the partitions and workers."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import date, timedelta

import orjson
import pytest

from producers.simulator import AnomalyRates, SimulationConfig, UploadMix, generate
from streams.broker import free_port
from streams.pipeline import replay_in_process
from tests.conftest import Worker, wait_until
from tests.integration.test_pipeline import _metric, replay

pytestmark = pytest.mark.integration
LATENESS_DAYS = 14  # weekly uploads (8 days old) that arrive up to 6 days late
IDLE_SECONDS = 3    # ENTWATCH_COHORT_IDLE_SECONDS: the end of the replay


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    rates = AnomalyRates(**{name: 0.08 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=40, days=200, seed=31, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day", very_late_share=0.0,
                              uploads=UploadMix(daily=0.5, weekly=0.3, monthly=0.2))
    lines = [orjson.dumps(obj) if isinstance(obj, dict) else obj.encode() for obj in generate(config)]
    folder = tmp_path_factory.mktemp("city")
    in_order, shuffled = folder / "in-order.jsonl", folder / "shuffled.jsonl"
    in_order.write_bytes(b"\n".join(lines) + b"\n")
    g = random.Random(7)
    order = sorted(range(len(lines)), key=lambda i: i + g.uniform(0, 40))  # well under a day of deliveries
    shuffled.write_bytes(b"\n".join(lines[i] for i in order) + b"\n")
    results = list(replay_in_process(lines, 1, lateness=timedelta(days=LATENESS_DAYS)))
    final = {}
    for result in results:
        for p in result.alerts:
            final[p.body["alert_id"]] = state_of(p.body)
    assert len({rule for _, rule, *_ in final.values()}) >= 3
    return in_order, shuffled, final, sum(r.accepted.total() for r in results)


def state_of(alert: dict) -> tuple:
    return (alert["uscc"], alert["rule"], alert["status"], alert["severity"], alert["window_start"],
            alert["window_end"])


def test_an_up_stack_fed_the_file_shuffled_within_the_lateness_ends_with_the_same_alerts(city, tmp_path):
    in_order, shuffled, final, accepted = city
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "ENTWATCH_UTILITY_LATENESS_DAYS": str(LATENESS_DAYS),
           "ENTWATCH_COHORT_IDLE_SECONDS": str(IDLE_SECONDS)}
    up = subprocess.Popen([sys.executable, "-m", "streams.cli", "up", "--metrics-port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out = ""
        deadline = time.monotonic() + 120
        while "Stop with Ctrl-C" not in out and time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, f"entwatch up exited early: {out}"
            out += line
        broker = re.search(r"kafka://127\.0\.0\.1:\d+", out).group(0)
        replay(shuffled, broker)
        metrics = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: _metric(_get(metrics), "entwatch_processing_latency_seconds_count") >= accepted,
                   timeout=240, what="the city consumed")

        def listed() -> dict:
            done = subprocess.run([sys.executable, "-m", "streams.cli", "alerts", "--json", "--all", "--limit", "10000",
                                   "--worker", f"http://127.0.0.1:{port}"],
                                  capture_output=True, text=True, timeout=60, env=env)
            assert done.returncode == 0, done.stderr
            return {a["alert_id"]: state_of(a) for a in map(json.loads, done.stdout.splitlines())}

        settled(listed, final)
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()


def test_two_workers_sharing_the_partitions_one_killed_mid_stream_end_with_the_alerts_of_one(
        city, clickhouse_server, broker, tmp_path):
    """Two workers, and one of them killed with SIGKILL part-way and started again: its
    partitions are closed again from their stored state, against the same cohorts (a day
    counts as closed in monitor.cohorts only once the partition's state is stored)."""
    in_order, _, final, accepted = city
    url = f"clickhouse://default@127.0.0.1:{clickhouse_server.tcp_port}/t_{uuid.uuid4().hex[:12]}"
    workers = [Worker(broker.url, url, tmp_path / f"w{n}" / "worker.log",
                      extra_env={"ENTWATCH_UTILITY_LATENESS_DAYS": str(LATENESS_DAYS),
                                 "ENTWATCH_COHORT_IDLE_SECONDS": str(IDLE_SECONDS)}) for n in range(2)]
    try:
        for w in workers:
            w.log.parent.mkdir()
            w.start()
        replay(in_order, broker.url)
        consumed = lambda: sum(_metric(w.metrics(), "entwatch_processing_latency_seconds_count")  # noqa: E731
                               for w in workers)
        wait_until(lambda: consumed() >= accepted * 0.4, interval=0.05, timeout=240, what="part of the city consumed")
        assert consumed() < accepted, "the city was consumed before the kill: make it bigger"
        workers[1].kill9()
        workers[1].start()
        settled(lambda: {a["alert_id"]: state_of(a) for a in workers[0].read("alerts", limit=10000)}, final,
                timeout=240)
    finally:
        for w in workers:
            if w.proc is not None:
                w.stop()


def settled(read, final: dict, timeout: float = 60) -> None:
    """Wait for the stored alerts to reach ``final`` (the last rows land just after the last
    message is consumed), then compare them."""
    try:
        wait_until(lambda: read() == final, timeout=timeout, what="the final alerts")
    except AssertionError:
        pass  # the comparison says how they differ
    assert read() == final


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()
