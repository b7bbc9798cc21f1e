"""Daily totals on real parts with the data departments send (issue #16): weekly and monthly
meter uploads, late and duplicate deliveries, through a real worker on both storage backends
and both state stores, straight, across a kill -9 and restart, and with two workers.

``utility_daily FINAL`` must equal the totals computed from the file, enterprise-day by
enterprise-day (tests/realdata/departments.py computes them without entwatch's code)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import pytest

from tests.conftest import Worker, wait_until
from tests.integration.test_pipeline import replay, wait_for_events
from tests.realdata.departments import department_city, expected_daily

pytestmark = pytest.mark.integration


def write_city(path, **kw):
    events = department_city(**kw)
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return events


def stored_daily(worker) -> dict:
    rows = worker.query("SELECT uscc, utility, toString(day) AS day, amount, readings FROM utility_daily FINAL")
    return {(r["uscc"], r["utility"], r["day"]): (r["amount"], r["readings"]) for r in rows}


def assert_daily_totals_match(worker, events) -> None:
    expected = {(u, k, d.isoformat()): v for (u, k, d), v in expected_daily(events).items()}
    try:
        wait_until(lambda: len(stored_daily(worker)) >= len(expected), timeout=120, what="every enterprise-day")
    finally:
        stored = stored_daily(worker)
        missing = sorted(expected.keys() - stored.keys())
        assert missing == [], f"{len(missing)} of {len(expected)} enterprise-days missing, e.g. {missing[:3]}"
    assert stored.keys() == expected.keys()
    for key, (amount, readings) in expected.items():
        assert stored[key] == (pytest.approx(amount, rel=1e-9), readings), key


def reconcile(worker, path, env=None):
    """``entwatch reconcile`` against the worker's storage (its read API and token)."""
    done = subprocess.run([sys.executable, "-m", "streams.cli", "reconcile", str(path), "--worker", worker.base_url],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ENTWATCH_API_TOKEN": worker.token, **(env or {})})
    return done.returncode, done.stdout + done.stderr


def unique_events(events) -> int:
    return len({(e["kind"], e["event_id"]) for e in events})


def test_weekly_and_monthly_uploads_give_exact_daily_totals_across_a_kill_and_restart(start_worker, broker,
                                                                                       state_store, tmp_path):
    # A backlog: each fetch holds months of one partition's uploads, the case that lost days.
    events = write_city(tmp_path / "city.jsonl", enterprises=80, weeks=40, seed=16)
    worker = start_worker(ENTWATCH_STATE_STORE=state_store)
    replay(tmp_path / "city.jsonl", broker.url)
    wait_until(lambda: (worker.scalar("SELECT count() FROM events") or 0) > 200, interval=0.05,
               what="the worker to be part-way through")
    worker.kill9()
    restarted = start_worker(ENTWATCH_STATE_STORE=state_store)
    wait_for_events(restarted, unique_events(events), timeout=180)
    assert_daily_totals_match(restarted, events)
    code, report = reconcile(restarted, tmp_path / "city.jsonl")
    assert code == 0 and "storage matches the file" in report, report

    # One more upload in the file than was sent: reconcile names it and the days it covers.
    extra = dict(next(e for e in events if e["kind"] == "utility"), event_id="never-sent")
    more = tmp_path / "more.jsonl"
    more.write_bytes((tmp_path / "city.jsonl").read_bytes() + orjson.dumps(extra) + b"\n")
    code, report = reconcile(restarted, more)
    assert code == 1, report
    assert "1 events missing from storage" in report and "utility never-sent" in report
    assert f"{len(extra['readings'])} enterprise-days whose daily total differs" in report


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_two_workers_give_the_same_exact_daily_totals(clickhouse_server, broker, store, tmp_path):
    """On clickhouse-server only: chDB belongs to one process, so it has one worker."""
    events = write_city(tmp_path / "city.jsonl", enterprises=80, weeks=40, seed=17)
    url = f"clickhouse://default@127.0.0.1:{clickhouse_server.tcp_port}/t_{uuid.uuid4().hex[:12]}"
    workers = [Worker(broker.url, url, tmp_path / f"w{n}" / "worker.log",
                      extra_env={"ENTWATCH_STATE_STORE": store}) for n in range(2)]
    for w in workers:
        w.log.parent.mkdir()
    first = workers[0].start()
    try:
        workers[1].start()
        replay(tmp_path / "city.jsonl", broker.url)
        wait_for_events(first, unique_events(events), timeout=180)
        assert_daily_totals_match(first, events)
    finally:
        for w in workers:
            if w.proc is not None:
                w.stop()
