"""entwatch reconcile's comparison: a file's events, daily totals and returns against stored rows."""

from __future__ import annotations

import orjson

from producers.replay import judge
from streams.reconcile import expected_from, reconcile

USCC = "914403001922038216"
BASE = {"uscc": USCC, "source": "dept", "schema_version": 1}


def units(*events: dict):
    return [judge(n, orjson.dumps(e) if isinstance(e, dict) else e, 0) for n, e in enumerate(events, 1)]


def upload(event_id: str, day: str, amount: float) -> dict:
    return {**BASE, "kind": "utility", "event_id": event_id, "event_time": f"{day}T23:00:00+08:00",
            "utility": "water", "unit": "m3", "meter_id": "w",
            "readings": [{"start": f"{day}T00:00:00+08:00", "end": f"{day}T12:00:00+08:00", "amount": amount}]}


def tax(event_id: str, at: str, sales: float) -> dict:
    return {**BASE, "kind": "tax", "event_id": event_id, "event_time": at, "period": "2024-02",
            "declared_sales_cny": sales, "tax_paid_cny": 1.0}


class Stored:
    """What storage answers to the named queries reconcile asks (rows as the read API gives them)."""

    def __init__(self, events=(), daily=(), tax=()):
        self.rows = {"events_range": list(events), "daily_range": list(daily), "monthly_range": list(tax)}

    def read(self, name: str, **params) -> list[dict]:
        rows = self.rows[name]
        if name == "events_range":
            rows = [r for r in rows if r["kind"] == params["kind"]]
        if name == "monthly_range" and params["kind"] != "tax":
            return []
        return [r for r in rows if params["first_uscc"] <= r["uscc"] <= params["last_uscc"]]


FILE = units(upload("u-1", "2024-03-01", 5.0), upload("u-2", "2024-03-01", 2.0), upload("u-1", "2024-03-01", 5.0),
             tax("t-1", "2024-03-10T09:00:00+08:00", 100.0), tax("t-fix", "2024-03-30T09:00:00+08:00", 150.0),
             b"{broken")


def event(kind, event_id, at):
    return {"kind": kind, "uscc": USCC, "event_id": event_id, "event_time": at}


def test_storage_that_holds_what_the_file_says_matches():
    expected = expected_from(FILE)
    stored = Stored(
        events=[event("utility", "u-1", "2024-03-01 15:00:00"), event("utility", "u-2", "2024-03-01 15:00:00"),
                event("tax", "t-1", "2024-03-10 01:00:00"), event("tax", "t-fix", "2024-03-30 01:00:00")],
        daily=[{"uscc": USCC, "utility": "water", "day": "2024-03-01", "amount": 7.0, "readings": 2}],
        tax=[{"uscc": USCC, "period": "2024-02-01", "declared_sales_cny": 150.0, "tax_paid_cny": 1.0}])
    report = reconcile(expected, stored)
    assert report.ok, report.lines()
    assert (report.events, report.days, report.months, report.bad_lines) == (4, 1, 1, 1)


def test_a_missing_event_a_short_day_and_an_old_return_are_each_reported():
    report = reconcile(expected_from(FILE), Stored(
        events=[event("utility", "u-1", "2024-03-01 15:00:00"), event("tax", "t-1", "2024-03-10 01:00:00"),
                event("tax", "t-fix", "2024-03-30 01:00:00")],
        daily=[{"uscc": USCC, "utility": "water", "day": "2024-03-01", "amount": 5.0, "readings": 1}],
        tax=[{"uscc": USCC, "period": "2024-02-01", "declared_sales_cny": 100.0, "tax_paid_cny": 1.0}]))
    assert not report.ok
    assert report.missing_events == [("utility", "u-2")]
    assert [d[3:] for d in report.different_days] == [(7.0, 5.0)]
    assert report.different_months == [("tax", USCC, "2024-02", (150.0, 1.0), (100.0, 1.0))]
    assert report.lines()[-1] == "storage differs from the file"
