"""End to end on real parts: Tansu broker + entwatch worker + ClickHouse (server 18.16 and chDB)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from streams.contracts import Rejection, validate_event
from streams.settings import Settings
from tests.conftest import wait_until
from tests.integration.kafka_io import produce_raw, read_topic

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures"
EVENTS = FIXTURES / "events.jsonl"
EXPECTED_REJECTIONS = json.loads((FIXTURES / "expected_rejections.json").read_text())
CITY = ZoneInfo("Asia/Shanghai")


def judged(path: Path) -> list[tuple[bytes, dict | None, object]]:
    """Each line of a replay file: (raw bytes, parsed object or None, verdict)."""
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            out.append((raw, None, Rejection("decode", "invalid_json", "")))
            continue
        out.append((raw, obj, validate_event(obj)))
    return out


def expected_daily(path: Path) -> dict[tuple[str, str, str], float]:
    """Daily totals computed straight from the file: each reading spread over local days by the hour."""
    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    seen = set()
    for _, obj, verdict in judged(path):
        if isinstance(verdict, Rejection) or obj["kind"] != "utility" or obj["event_id"] in seen:
            continue
        seen.add(obj["event_id"])
        for r in obj["readings"]:
            start, end = datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"])
            hours = int((end - start).total_seconds() // 3600)
            for h in range(hours):
                day = (start + timedelta(hours=h)).astimezone(CITY).date().isoformat()
                totals[(obj["uscc"], obj["utility"], day)] += r["amount"] / hours
    return dict(totals)


def valid_ids(path: Path) -> set[tuple[str, str]]:
    return {(v.kind, v.event_id) for _, _, v in judged(path) if not isinstance(v, Rejection)}


def replay(path: Path, broker_url: str) -> str:
    done = subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(path), "--broker", broker_url, "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def stored_daily(worker) -> dict[tuple[str, str, str], float]:
    rows = worker.query("SELECT uscc, utility, toString(day) AS day, amount FROM utility_daily FINAL")
    return {(r["uscc"], r["utility"], r["day"]): r["amount"] for r in rows}


def assert_same_totals(stored: dict, expected: dict) -> None:
    assert stored.keys() == expected.keys()
    for key, amount in expected.items():
        assert stored[key] == pytest.approx(amount, rel=1e-9), key


def wait_for_events(worker, count: int, timeout: float = 90) -> None:
    wait_until(lambda: worker.scalar("SELECT count() FROM events FINAL") == count, timeout,
               what=f"{count} events in storage")


@pytest.fixture
def worker(start_worker):
    return start_worker()


def test_replay_lands_every_valid_event_once_with_exact_daily_totals(worker, broker):
    output = replay(EVENTS, broker.url)
    assert f"{len(EXPECTED_REJECTIONS)} bad lines not sent" in output
    ids = valid_ids(EVENTS)
    wait_for_events(worker, len(ids))

    rows = worker.query("SELECT kind, event_id, count() AS n FROM events FINAL GROUP BY kind, event_id")
    assert {(r["kind"], r["event_id"]) for r in rows} == ids
    assert all(r["n"] == 1 for r in rows)
    wait_until(lambda: len(stored_daily(worker)) == len(expected_daily(EVENTS)), what="daily totals")
    assert_same_totals(stored_daily(worker), expected_daily(EVENTS))


def test_a_corrected_tax_return_replaces_the_first_and_complaint_text_is_masked(worker, broker):
    replay(EVENTS, broker.url)
    wait_for_events(worker, len(valid_ids(EVENTS)))
    first_uscc = next(obj["uscc"] for _, obj, _ in judged(EVENTS) if obj and obj.get("event_id") == "tax-0-02-fix")
    wait_until(lambda: worker.query(f"SELECT declared_sales_cny FROM tax_monthly FINAL WHERE uscc = '{first_uscc}'"),
               what="tax rows")
    rows = worker.query(f"SELECT declared_sales_cny, event_id FROM tax_monthly FINAL WHERE uscc = '{first_uscc}'")
    assert rows == [{"declared_sales_cny": 150000.0, "event_id": "tax-0-02-fix"}]
    texts = worker.query("SELECT text FROM complaints FINAL")
    assert texts == [{"text": "投诉人手机号138****8000，身份证440301********1234，产品质量差"}]
    payloads = worker.query("SELECT payload FROM events FINAL WHERE kind = 'complaint'")
    assert "13800138000" not in payloads[0]["payload"] and "440301199001011234" not in payloads[0]["payload"]


def test_bad_messages_reach_the_deadletter_topic_with_reason_and_original_bytes(start_worker, broker):
    worker = start_worker(ENTWATCH_MAX_MESSAGE_BYTES="20000")
    settings = Settings(broker_url=broker.url)
    lines = judged(EVENTS)
    sends = []
    for raw, obj, _ in lines:
        kind = obj.get("kind") if isinstance(obj, dict) else None
        topic = settings.topic(kind if kind in ("registry", "utility", "tax", "social", "complaint") else "tax")
        uscc = obj.get("uscc") if isinstance(obj, dict) else None
        sends.append((topic, uscc.encode() if isinstance(uscc, str) else b"k", raw))  # key = USCC (SPEC §2)
    tax_line = next(raw for raw, obj, v in lines if obj and obj.get("kind") == "tax" and not isinstance(v, Rejection))
    extra = {
        "invalid_json": (settings.topic("utility"), b"\xff\xfe not utf-8"),
        "not_an_object": (settings.topic("social"), b"[1, 2, 3]"),
        "oversize": (settings.topic("complaint"), b'{"kind": "complaint", "text": "' + b"x" * 30000 + b'"}'),
        "wrong_topic": (settings.topic("utility"), tax_line),
    }
    sends += [(topic, b"k", value) for topic, value in extra.values()]
    produce_raw(broker.bootstrap, sends)

    expected_reasons = sorted(EXPECTED_REJECTIONS + list(extra))
    records = read_topic(broker.bootstrap, settings.topic("deadletter"), len(expected_reasons))
    reasons = sorted(dict(r.headers)["entwatch.reason"].decode() for r in records)
    assert reasons == expected_reasons
    originals = {value for _, _, value in sends}
    for record in records:
        headers = dict(record.headers)
        assert record.value in originals
        assert headers["entwatch.stage"] in (b"decode", b"validate")
        assert headers["entwatch.topic"].decode().startswith("enterprise.")
        assert int(headers["entwatch.offset"]) >= 0
    stored = wait_until(lambda: worker.query("SELECT reason FROM deadletters FINAL ORDER BY reason"), what="dead letters")
    assert sorted(r["reason"] for r in stored) == expected_reasons
    wait_for_events(worker, len(valid_ids(EVENTS)))
    metrics = worker.metrics()
    assert 'entwatch_events_deadlettered_total{kind="utility",reason="wrong_topic"} 1.0' in metrics


def test_replaying_the_same_file_twice_adds_nothing(worker, broker):
    replay(EVENTS, broker.url)
    wait_for_events(worker, len(valid_ids(EVENTS)))
    replay(EVENTS, broker.url)
    sent_twice = 2 * sum(1 for _, _, v in judged(EVENTS) if not isinstance(v, Rejection))
    wait_until(lambda: _metric(worker.metrics(), "entwatch_events_in_total") == sent_twice, what="second replay consumed")
    wait_until(lambda: _metric(worker.metrics(), "entwatch_processing_latency_seconds_count") == sent_twice,
               what="second replay stored")
    rows = worker.query("SELECT kind, event_id, count() AS n FROM events FINAL GROUP BY kind, event_id")
    assert len(rows) == len(valid_ids(EVENTS)) and all(r["n"] == 1 for r in rows)
    assert_same_totals(stored_daily(worker), expected_daily(EVENTS))
    assert worker.scalar("SELECT count() FROM tax_monthly FINAL") == 5


def _metric(text: str, name: str) -> float:
    """Sum of a metric's samples over all label sets."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total
