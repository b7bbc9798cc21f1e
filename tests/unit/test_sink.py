"""The sink's splitting of batches with rows storage refuses, its retries, and its stall
figures, on a storage stand-in whose inserts fail as clickhouse-driver's do (the same
splitting on a real clickhouse-server 18.16 and chDB: tests/integration/test_stalls.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import namedtuple
from datetime import datetime, timezone

import pytest
from clickhouse_driver.errors import NetworkError, TypeMismatchError

from streams import metrics
from streams.sink import Fault, Sink, Unstorable, fault_of, set_aside
from tests.schema_check import header_text, problems

UINT32_MAX = 2**32 - 1


class Headcounts:
    """Stores ``social_monthly``-like rows; a headcount above UInt32 fails the whole insert
    the way clickhouse-driver fails it.  ``hiccups``: connection errors to raise first."""

    def __init__(self, hiccups: int = 0, refuse_times: int | None = None):
        self.stored: list[dict] = []
        self.calls = 0
        self.hiccups = hiccups
        self.refuse_times = refuse_times  # None: bad rows fail every time

    def insert(self, table: str, rows: list[dict]) -> None:
        self.calls += 1
        if self.hiccups:
            self.hiccups -= 1
            raise NetworkError("Code: 210. Connection refused (127.0.0.1:9000)")
        if any(r["insured_headcount"] > UINT32_MAX for r in rows):
            if self.refuse_times is None or self.refuse_times > 0:
                if self.refuse_times:
                    self.refuse_times -= 1
                raise TypeMismatchError("Type mismatch in VALUES section. Column insured_headcount: "
                                        "'I' format requires 0 <= number <= 4294967295")
        self.stored += rows


def rows(n: int, bad: set[int] = frozenset()) -> list[dict]:
    return [{"uscc": f"91440300MA{i:08d}", "insured_headcount": 2**40 if i in bad else i,
             "event_time": datetime(2024, 3, 1, tzinfo=timezone.utc)} for i in range(n)]


def sink(storage, **kw) -> Sink:
    return Sink(storage, first_backoff=0.001, max_backoff=0.01, **kw)


def sample(name: str, table: str = "social_monthly") -> float:
    return metrics.REGISTRY.get_sample_value(name, {"table": table}) or 0.0


def test_a_batch_with_rows_storage_refuses_stores_every_other_row_and_returns_those():
    storage, batch = Headcounts(), rows(1000, bad={3, 500, 998})
    refused = asyncio.run(sink(storage).write({"social_monthly": batch}))
    assert [r.row["insured_headcount"] for r in refused] == [2**40] * 3
    assert [r.row["uscc"] for r in refused] == [batch[i]["uscc"] for i in (3, 500, 998)]
    assert sorted(r["uscc"] for r in storage.stored) == sorted(r["uscc"] for i, r in enumerate(batch)
                                                              if i not in {3, 500, 998})
    assert storage.calls <= 3 + 2 * 3 * 10  # three tries, then two halves per level per bad row


def test_a_data_error_must_repeat_attempts_times_before_the_batch_is_split():
    storage = Headcounts(refuse_times=2)
    refused = asyncio.run(sink(storage, attempts=3).write({"social_monthly": rows(10, bad={4})}))
    assert refused == [] and len(storage.stored) == 10 and storage.calls == 3


def test_connection_errors_are_retried_never_split_and_counted():
    storage = Headcounts(hiccups=5)
    failures, retries = sample("entwatch_sink_failures_total"), sample("entwatch_sink_retries_total")
    refused = asyncio.run(sink(storage, attempts=2).write({"social_monthly": rows(10)}))
    assert refused == [] and len(storage.stored) == 10 and storage.calls == 6
    assert sample("entwatch_sink_failures_total") - failures == 5
    assert sample("entwatch_sink_retries_total") - retries == 5


def test_connection_errors_in_the_middle_of_a_split_lose_nothing():
    storage = Headcounts()
    batch = rows(64, bad={17})
    real = storage.insert

    def flaky(table, rows_):
        if len(rows_) == 16 and storage.hiccups == 0 and not getattr(flaky, "done", False):
            flaky.done = True
            storage.hiccups = 2
        real(table, rows_)

    storage.insert = flaky
    refused = asyncio.run(sink(storage).write({"social_monthly": batch}))
    assert [r.row["uscc"] for r in refused] == [batch[17]["uscc"]]
    assert len(storage.stored) == 63


def test_the_refused_rows_of_each_table_are_found_separately():
    storage = Headcounts()
    refused = asyncio.run(sink(storage).write({"social_monthly": rows(8, bad={1}), "events": rows(8, bad={6})}))
    assert [(r.table, r.row["uscc"][-1]) for r in refused] == [("events", "6"), ("social_monthly", "1")]


class Hanging:
    """An insert that does not return until released, like one to a frozen server."""

    def __init__(self):
        self.release = threading.Event()
        self.stored: list[dict] = []

    def insert(self, table, rows_):
        self.release.wait(10)
        self.stored += rows_


def test_an_insert_that_hangs_counts_failures_and_the_sink_says_how_long_it_stalled():
    storage = Hanging()
    s = sink(storage, time_limit=0.05)
    before = sample("entwatch_sink_failures_total", "events")

    async def run():
        writing = asyncio.ensure_future(s.write({"events": rows(3)}))
        await asyncio.sleep(0.4)
        stalled, failures = s.stalled_seconds(), sample("entwatch_sink_failures_total", "events") - before
        storage.release.set()
        assert await writing == []
        return stalled, failures

    stalled, failures = asyncio.run(run())
    assert stalled >= 0.35 and failures >= 4
    assert len(storage.stored) == 3  # one insert, waited for, not resent
    assert s.stalled_seconds() == 0.0


def test_an_idle_sink_is_not_stalled():
    s = sink(Headcounts())
    assert s.stalled_seconds() == 0.0
    asyncio.run(s.write({"social_monthly": rows(2)}))
    assert s.stalled_seconds() == 0.0


@pytest.mark.parametrize("exc, from_data", [
    (TypeMismatchError("Column event_time: argument out of range"), True),
    (NetworkError("Code: 210. Connection refused"), False),
    (ConnectionRefusedError(111, "Connection refused"), False),
    (TimeoutError("timed out"), False),
    (RuntimeError("something else"), False),
])
def test_only_errors_the_data_causes_split_a_batch(exc, from_data):
    assert fault_of(exc, "events").from_data is from_data


def test_a_chdb_parse_error_keeps_its_code_and_column_but_none_of_the_values():
    from chdb._exceptions import ChdbError

    exc = ChdbError("Code: 27. DB::Exception: Cannot parse input: expected '\"' before: '13800138000\",\"event_id\"'"
                    ": (while reading the value of key insured_headcount): (at row 1)\n: While executing "
                    "ParallelParsingBlockInputFormat. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)")
    fault = fault_of(exc, "social_monthly")
    assert fault == Fault(27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "insured_headcount", True)
    assert "13800138000" not in fault.detail


def test_a_dead_letter_is_the_row_as_json_with_headers_that_hold_no_value():
    row = rows(1, bad={0})[0] | {"kind": "social"}
    refused = Unstorable("events", row, fault_of(TypeMismatchError("Column insured_headcount: out of range"), "events"))
    assert json.loads(refused.value()) == {"uscc": row["uscc"], "insured_headcount": 2**40, "kind": "social",
                                           "event_time": "2024-03-01T00:00:00+00:00"}
    key, value, headers = refused.record()
    assert dict(headers) == {"entwatch.stage": b"sink", "entwatch.reason": b"unstorable", "entwatch.table": b"events",
                             "entwatch.detail": b"ClickHouse 53 TYPE_MISMATCH",
                             "entwatch.sha256": hashlib.sha256(value).hexdigest().encode()}
    assert refused.kind == "social" and key == row["uscc"].encode() and value == refused.value()


def test_a_dead_letter_with_a_source_carries_cloudevents_headers_that_its_schemas_accept():
    row = rows(1, bad={0})[0] | {"kind": "social"}
    refused = Unstorable("events", row, Fault(53, "TYPE_MISMATCH", "insured_headcount", True))
    key, value, headers = refused.record(ce_source="/entwatch")
    text = header_text(headers)
    assert problems("cloudevents-headers.v1.json", text) == [] and problems("deadletter-headers.v1.json", text) == []
    assert text["ce_id"] == f"sink-events-{hashlib.sha256(value).hexdigest()}" == f"sink-events-{text['entwatch.sha256']}"
    assert (text["ce_type"], text["ce_subject"], text["ce_time"]) == (
        "cn.entwatch.deadletter", row["uscc"], "2024-03-01T00:00:00Z")  # the row's own time: sent again, the same
    assert refused.record(ce_source="/entwatch") == (key, value, headers)


def test_a_dead_letter_too_big_for_the_broker_has_its_longest_strings_cut_and_says_so():
    row = {"kind": "complaint", "uscc": "u", "event_id": "e", "payload": "投诉" * 400_000, "source": "12315"}
    refused = Unstorable("events", row, Fault(53, "TYPE_MISMATCH", "event_time", True))
    key, value, headers = refused.record(limit=100_000)
    cut = json.loads(value)
    assert len(value) <= 100_000 and row["payload"].startswith(cut["payload"]) and len(cut["payload"]) > 10_000
    assert {k: v for k, v in cut.items() if k != "payload"} == {k: v for k, v in row.items() if k != "payload"}
    assert dict(headers)["entwatch.truncated"] == str(len(refused.value())).encode()
    assert dict(headers)["entwatch.sha256"] == hashlib.sha256(refused.value()).hexdigest().encode()


Written = namedtuple("Written", "topic partition offset")


class Topic:
    """A dead-letter topic stand-in: each send is acknowledged at the next offset."""

    def __init__(self):
        self.sent = []

    async def send(self, key, value, headers):
        self.sent.append((key, value, headers))
        done = asyncio.get_running_loop().create_future()
        done.set_result(Written("monitor.deadletter", 2, 40 + len(self.sent)))
        return done


class Tables:
    def __init__(self):
        self.rows: dict[str, list[dict]] = {}

    def insert(self, table, rows_):
        self.rows.setdefault(table, []).extend(rows_)


def test_set_aside_sends_each_refused_row_then_records_where_its_dead_letter_went():
    storage, topic = Tables(), Topic()
    fault = Fault(53, "TYPE_MISMATCH", "insured_headcount", True)
    refused = [Unstorable("social_monthly", r, fault) for r in rows(2, bad={0, 1})]
    counted = metrics.REGISTRY.get_sample_value("entwatch_events_deadlettered_total",
                                                {"kind": "social", "reason": "unstorable"}) or 0.0
    asyncio.run(set_aside(refused, sink(storage), topic))
    assert [value for _, value, _ in topic.sent] == [r.value() for r in refused]
    stored = storage.rows["deadletters"]
    assert [(r["topic"], r["partition"], r["offset"], r["stage"], r["reason"]) for r in stored] == [
        ("monitor.deadletter", 2, 41, "sink", "unstorable"), ("monitor.deadletter", 2, 42, "sink", "unstorable")]
    assert stored[0]["detail"] == "social_monthly: ClickHouse 53 TYPE_MISMATCH, column insured_headcount"
    assert metrics.REGISTRY.get_sample_value("entwatch_events_deadlettered_total",
                                             {"kind": "social", "reason": "unstorable"}) == counted + 2


def test_a_long_split_counts_as_progress():
    """Each stored half moves the sink on: a batch split row by row is not a stall."""
    storage = Headcounts()
    s = sink(storage)
    seen = []
    real = storage.insert

    def timed(table, rows_):
        seen.append(s.stalled_seconds())
        time.sleep(0.01)
        real(table, rows_)

    storage.insert = timed
    asyncio.run(s.write({"social_monthly": rows(32, bad={5, 20})}))
    assert max(seen) < 0.1
