"""Reliability on real parts: a worker killed with SIGKILL mid-stream loses nothing and doubles nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from streams.uscc import make_uscc
from tests.conftest import wait_until
from tests.integration.test_pipeline import (
    assert_same_totals, expected_daily, replay, stored_daily, valid_ids, wait_for_events,
)

pytestmark = pytest.mark.integration
CST = timezone(timedelta(hours=8))


def write_city(path: Path, enterprises: int, days: int, upload: str = "") -> Path:
    """A replay file: each enterprise uploads a day of hourly electricity readings per day
    (another ``upload`` name gives other event ids, adding to the same daily totals)."""
    start = datetime(2024, 5, 1, tzinfo=CST)
    with open(path, "w") as fh:
        for e in range(enterprises):
            uscc = make_uscc(f"91441900MA{e:07d}")
            for d in range(days):
                day = start + timedelta(days=d)
                readings = [{"start": (day + timedelta(hours=h)).isoformat(),
                             "end": (day + timedelta(hours=h + 1)).isoformat(),
                             "amount": round(5 + (e % 7) + h * 0.25 + d * 0.1, 2)} for h in range(24)]
                fh.write(json.dumps({"kind": "utility", "event_id": f"e{e}-d{d}{upload}", "uscc": uscc, "source": "grid",
                                     "event_time": (day + timedelta(days=1)).isoformat(), "schema_version": 1,
                                     "utility": "electricity", "unit": "kWh", "meter_id": f"M{e}",
                                     "readings": readings}) + "\n")
    return path


def test_a_worker_killed_mid_stream_and_restarted_stores_exactly_a_clean_runs_contents(start_worker, broker,
                                                                                       state_store, tmp_path):
    city = write_city(tmp_path / "city.jsonl", enterprises=150, days=20)
    total = len(valid_ids(city))
    # With RocksDB the restarted worker reopens the killed one's local databases.
    worker = start_worker(ENTWATCH_BATCH_MAX="200", ENTWATCH_STATE_STORE=state_store)
    replay(city, broker.url)
    def stored():
        count = worker.scalar("SELECT count() FROM events") or 0
        return count if count >= total // 10 else 0

    stored_before_kill = wait_until(stored, interval=0.05, what="the worker to be part-way through")
    worker.kill9()
    assert worker.proc.returncode == -9
    assert stored_before_kill < total, "the worker finished before it was killed: make the file bigger"
    # Restart at once, while the group still lists the killed member (a 10 s session): the
    # harder case, two join rounds, in which Faust drops fetched messages that the worker
    # must then re-read (docs/RELIABILITY.md).
    restarted = start_worker(ENTWATCH_BATCH_MAX="200", ENTWATCH_STATE_STORE=state_store)
    wait_for_events(restarted, total, timeout=180)
    expected = expected_daily(city)

    def daily_gap():
        stored = stored_daily(restarted).keys()
        return {"missing": sorted(expected.keys() - stored)[:5], "missing_count": len(expected.keys() - stored),
                "extra": sorted(stored - expected.keys())[:5]}

    try:
        wait_until(lambda: len(stored_daily(restarted)) == len(expected), what="all daily totals")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; daily rows {daily_gap()}") from None
    assert_same_totals(stored_daily(restarted), expected)
    rows = restarted.query("SELECT event_id, count() AS n FROM events FINAL GROUP BY event_id HAVING n > 1")
    assert rows == []


def test_a_restarted_worker_goes_on_from_the_state_it_recovered(start_worker, broker, state_store, tmp_path):
    """Daily totals are sums over the enterprise's record: a second upload for the same days,
    processed after a restart, only adds up right if the restarted worker recovered every
    record update (from the changelog, or RocksDB plus the changelog)."""
    first = write_city(tmp_path / "first.jsonl", enterprises=150, days=8)
    second = write_city(tmp_path / "second.jsonl", enterprises=150, days=8, upload="-again")
    both = tmp_path / "both.jsonl"
    both.write_text(first.read_text() + second.read_text())
    worker = start_worker(ENTWATCH_STATE_STORE=state_store)
    replay(first, broker.url)
    wait_for_events(worker, len(valid_ids(first)))
    worker.stop()
    assert worker.proc.returncode == 0  # SIGTERM: Faust stops, the storage is closed, the worker exits 0

    restarted = start_worker(ENTWATCH_STATE_STORE=state_store)
    replay(second, broker.url)
    wait_for_events(restarted, len(valid_ids(both)))
    expected = expected_daily(both)
    wait_until(lambda: stored_daily(restarted) == pytest.approx(expected, rel=1e-9), what="the doubled daily totals")
