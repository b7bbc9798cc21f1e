"""The alerts table's layout for the console's pages, on clickhouse-server 18.16 and chDB: a
table of the older layout (ordered by alert_id) is rebuilt on start without losing a row,
and the console's alert reads (one enterprise's alerts, one alert, the inbox read back from
the latest detection) answer exactly what the whole table's latest revisions say."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from console.app import INBOX_LIMIT, newest_open
from detectors.findings import RULES, SEVERITIES
from streams.readapi import bind
from streams.readparams import render
from streams.storage import TABLES, apply_schema, open_storage, sorting_key
from streams.uscc import make_uscc

pytestmark = pytest.mark.integration

OLD_ALERTS = """CREATE TABLE {db}.alerts (alert_id String, uscc String, enterprise_name String, industry String,
    town String, rule String, severity String, status String, window_start Date, window_end Date,
    detected_at DateTime('UTC'), score Float64, observed Float64, expected Float64, evidence String,
    explanation_zh String, explanation_en String, revision UInt64) ENGINE = ReplacingMergeTree(revision) ORDER BY alert_id"""
USCCS = [make_uscc(f"91441900MA{i:07d}") for i in range(40)]


def revisions(n_alerts: int, seed: int = 7) -> list[list[dict]]:
    """Batches of alert rows over 500 days: each alert opens, some change severity, most resolve
    (a later revision in a later batch, so storage holds several parts and unmerged versions)."""
    rng = random.Random(seed)
    first, later = [], []
    start = datetime(2023, 8, 1, 9, tzinfo=timezone.utc)
    for n in range(n_alerts):
        uscc = rng.choice(USCCS)
        detected = start + timedelta(days=rng.randrange(500), hours=rng.randrange(24))
        row = {"alert_id": f"a{n:05d}", "uscc": uscc, "enterprise_name": f"企业{uscc[-4:]}", "industry": "C13",
               "town": rng.choice(["虎门镇", "长安镇"]), "rule": rng.choice(RULES), "severity": "info",
               "status": "open", "window_start": detected.date() - timedelta(days=5),
               "window_end": detected.date(), "detected_at": detected, "score": 1.0, "observed": 1.0,
               "expected": 2.0, "evidence": "[]", "explanation_zh": "说明", "explanation_en": "why", "revision": 1}
        first.append(row)
        for revision in range(2, 2 + rng.randrange(3)):
            row = dict(row, revision=revision, severity=rng.choice(SEVERITIES),
                       status=rng.choice(["open", "resolved", "resolved", "withdrawn"]),
                       window_end=row["window_end"] + timedelta(days=7))
            later.append(row)
    return [first[: n_alerts // 2], later, first[n_alerts // 2:]]


def latest(batches: list[list[dict]]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for row in (r for batch in batches for r in batch):
        if row["alert_id"] not in found or row["revision"] > found[row["alert_id"]]["revision"]:
            found[row["alert_id"]] = row
    return found


def reader(storage):
    """Named queries run on ``storage`` (the SQL and the one escape function of the read API)."""
    return lambda name, **params: storage.query(render(*_bound(name, params)))


def _bound(name, params):
    bound = bind(name, {k: v for k, v in params.items() if v is not None})
    return bound.sql, bound.values


@pytest.fixture
def storage(storage_url):
    storage = open_storage(storage_url)
    yield storage
    storage.close()


def test_an_alerts_table_of_the_older_layout_is_rebuilt_on_start_and_keeps_every_row(storage):
    storage.execute(f"CREATE DATABASE IF NOT EXISTS {storage.database}")
    storage.execute(OLD_ALERTS.format(db=storage.database))
    batches = revisions(600)
    for batch in batches:
        storage.insert("alerts", batch)
    assert sorting_key(storage, "alerts") == "alert_id"

    apply_schema(storage)
    assert sorting_key(storage, "alerts") == "uscc, alert_id"
    assert sorting_key(storage, "alerts_before_rekey") is None
    expected = latest(batches)
    final = [(a, expected[a]["status"], expected[a]["revision"]) for a in sorted(expected)]
    query = "SELECT alert_id, status, revision FROM alerts FINAL ORDER BY alert_id"
    assert [(r["alert_id"], r["status"], int(r["revision"])) for r in storage.query(query)] == final

    apply_schema(storage)  # a second start changes nothing
    assert sorting_key(storage, "alerts") == "uscc, alert_id"
    assert [(r["alert_id"], r["status"], int(r["revision"])) for r in storage.query(query)] == final


def test_a_rebuild_stopped_half_way_is_finished_on_the_next_start(storage):
    apply_schema(storage)
    db, columns = storage.database, ", ".join(TABLES["alerts"])
    batches = revisions(200, seed=3)
    for batch in batches[:2]:
        storage.insert("alerts", batch)
    # As a start that stopped during the copy leaves it: the old rows set aside, part of them copied,
    # and rows the worker wrote since in the new table.
    storage.execute(OLD_ALERTS.format(db=db).replace(".alerts ", ".alerts_before_rekey "))
    storage.execute(f"INSERT INTO {db}.alerts_before_rekey ({columns}) SELECT {columns} FROM {db}.alerts")
    storage.execute(f"TRUNCATE TABLE {db}.alerts")
    storage.insert("alerts", batches[1])
    storage.insert("alerts", batches[2])

    apply_schema(storage)
    assert sorting_key(storage, "alerts_before_rekey") is None
    stored = storage.query("SELECT alert_id, revision FROM alerts FINAL ORDER BY alert_id")
    expected = latest(batches)
    assert [(r["alert_id"], int(r["revision"])) for r in stored] == [
        (a, expected[a]["revision"]) for a in sorted(expected)]


def test_the_consoles_alert_reads_answer_what_the_latest_revisions_say(storage):
    apply_schema(storage)
    batches = revisions(3000, seed=11)
    for batch in batches:
        storage.insert("alerts", batch)
    expected = latest(batches)
    read = reader(storage)

    uscc = USCCS[5]
    mine = read("alerts", uscc=uscc, limit=10000)
    assert sorted((a["alert_id"], a["status"], int(a["revision"])) for a in mine) == sorted(
        (a["alert_id"], a["status"], a["revision"]) for a in expected.values() if a["uscc"] == uscc)
    one = next(iter(expected.values()))
    assert [(a["alert_id"], a["severity"]) for a in read("console_alert", alert_id=one["alert_id"])] == [
        (one["alert_id"], one["severity"])]

    def newest(rows, limit):
        rows = sorted(rows, key=lambda a: a["alert_id"])
        rows.sort(key=lambda a: a["detected_at"], reverse=True)
        return [a["alert_id"] for a in rows][:limit]

    opened = [a for a in expected.values() if a["status"] == "open"]
    assert len(opened) > INBOX_LIMIT
    asked = []
    recording = lambda name, **params: asked.append((name, params)) or read(name, **params)  # noqa: E731
    assert [a["alert_id"] for a in newest_open(recording, {})] == newest(opened, INBOX_LIMIT)
    assert "since" in asked[-1][1]  # a full page without reading every month
    town = [a for a in opened if a["town"] == "长安镇" and a["rule"] == RULES[0]]  # reads back to all
    assert [a["alert_id"] for a in newest_open(read, {"town": "长安镇", "rule": RULES[0]})] == newest(
        town, INBOX_LIMIT)
    assert len(town) < INBOX_LIMIT
    since = datetime(2024, 12, 1, tzinfo=timezone.utc)
    assert {a["alert_id"] for a in read("console_inbox", since=since, limit=10000)} == {
        a["alert_id"] for a in opened if a["detected_at"] >= since}


def risk_row(uscc: str, score: float, day: int, revision: int) -> dict:
    return {"uscc": uscc, "score": score, "level": "high" if score >= 60 else "medium", "rules": ["utility_drop"],
            "updated_at": datetime(2024, 3, day, 8, tzinfo=timezone.utc), "revision": revision}


def test_every_stored_risk_score_is_kept_for_the_enterprise_pages_risk_over_time(storage):
    apply_schema(storage)
    uscc, other = USCCS[0], USCCS[1]
    storage.insert("risk", [risk_row(uscc, 45.0, 1, 1), risk_row(other, 20.0, 1, 1)])
    storage.insert("risk", [risk_row(uscc, 67.5, 3, 2)])
    storage.insert("risk", [risk_row(uscc, 33.8, 9, 3)])
    history = reader(storage)("enterprise_risk_history", uscc=uscc)
    assert [(h["updated_at"], h["score"]) for h in history] == [
        ("2024-03-01 08:00:00", 45.0), ("2024-03-03 08:00:00", 67.5), ("2024-03-09 08:00:00", 33.8)]
    assert [r["score"] for r in storage.query(f"SELECT score FROM risk FINAL WHERE uscc = '{uscc}'")] == [33.8]


def test_scores_stored_before_the_history_existed_are_copied_in_once(storage):
    apply_schema(storage)
    storage.execute(f"DROP TABLE {storage.database}.risk_history_feed")
    storage.execute(f"DROP TABLE {storage.database}.risk_history")
    storage.insert("risk", [risk_row(USCCS[2], 70.0, 2, 4)])  # an older data directory's latest score
    apply_schema(storage)
    apply_schema(storage)  # a second start copies nothing again
    storage.insert("risk", [risk_row(USCCS[2], 75.0, 5, 5)])
    history = reader(storage)("enterprise_risk_history", uscc=USCCS[2])
    assert [(h["updated_at"][:10], h["score"]) for h in history] == [("2024-03-02", 70.0), ("2024-03-05", 75.0)]
    raw = storage.query(f"SELECT count() AS n FROM risk_history WHERE uscc = '{USCCS[2]}'")
    assert int(raw[0]["n"]) == 2
