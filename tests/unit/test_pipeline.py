"""One batch of messages in, one BatchResult out (rows, dead letters, state)."""

from __future__ import annotations

from datetime import date

import orjson

from detectors.record import EnterpriseState
from detectors.partition import Tracked
from streams.pipeline import BatchProcessor, DictStates, Message, deadletter_headers

USCC = "914403001922038216"
OTHER = "91440300MA5D12345W"
KIND_BY_TOPIC = {f"enterprise.{k}": k for k in ("registry", "utility", "tax", "social", "complaint")}
COMMON = {"uscc": USCC, "source": "dept", "event_time": "2024-03-10T09:00:00+08:00", "schema_version": 1}


def message(kind: str, offset: int, uscc: str = USCC, topic: str | None = None, headers=(), **fields) -> Message:
    body = {**COMMON, "kind": kind, "event_id": f"{kind}-{offset}", "uscc": uscc, **fields}
    return Message(topic or f"enterprise.{kind}", 0, offset, uscc.encode(), orjson.dumps(body), 1710032400.0,
                   tuple(headers))


def meter(offset: int, day: str = "2024-03-09", amount: float = 100.0, **kw) -> Message:
    reading = {"start": f"{day}T00:00:00+08:00", "end": f"{day}T12:00:00+08:00", "amount": amount}
    return message("utility", offset, utility="electricity", unit="kWh", meter_id="m-1", readings=[reading], **kw)


def process(*messages: Message, states: DictStates | None = None):
    return BatchProcessor(KIND_BY_TOPIC).process(list(messages), states or DictStates())


def stored(result) -> DictStates:
    states = DictStates()
    states.update(result)
    return states


def test_valid_events_become_rows_in_their_tables():
    result = process(
        meter(1),
        message("tax", 2, period="2024-02", declared_sales_cny=100.0, tax_paid_cny=3.0),
        message("social", 3, period="2024-02", insured_headcount=5, contributions_cny=900.0),
        message("complaint", 4, complaint_id="c-1", category="service", channel="web", text="电话13800138000"),
        message("registry", 5, name="示范公司", industry="C39", town="长安镇", registered_capital_cny=1e6,
                established_on="2015-03-01", status="active"),
    )
    assert {t: len(r) for t, r in result.rows.items()} == {
        "events": 5, "utility_daily": 1, "tax_monthly": 1, "social_monthly": 1, "complaints": 1, "enterprises": 1}
    assert result.rows["tax_monthly"][0]["period"] == date(2024, 2, 1)
    assert result.rows["complaints"][0]["text"] == "电话138****8000"
    assert result.deadletters == []


def test_bad_messages_become_dead_letters_with_their_reason():
    bad_json = Message("enterprise.tax", 1, 7, None, b"{oops", 1710032400.0)
    result = process(bad_json, meter(8, uscc=USCC[:17] + "7"), message("tax", 9, topic="enterprise.social"))
    assert [(m.offset, r.reason) for m, r in result.deadletters] == [
        (7, "invalid_json"), (8, "invalid_uscc"), (9, "wrong_topic")]
    assert [row["reason"] for row in result.rows["deadletters"]] == ["invalid_json", "invalid_uscc", "wrong_topic"]
    assert "events" not in result.rows


def test_a_duplicate_utility_event_counts_once_in_utility_daily():
    result = process(meter(1, amount=100.0), meter(1, amount=100.0))
    assert result.duplicates == 1
    assert [(r["day"], r["amount"], r["readings"]) for r in result.rows["utility_daily"]] == [
        (date(2024, 3, 9), 100.0, 1)]


def test_a_duplicate_from_an_earlier_batch_counts_once():
    first = process(meter(1))
    again = process(meter(1), states=stored(first))
    assert (again.duplicates, again.rows.get("utility_daily", [])) == (1, [])


def test_state_bytes_are_returned_per_partition_and_uscc():
    result = process(meter(1), meter(2, uscc=OTHER), meter(3))
    assert sorted(result.states) == sorted([(0, USCC), (0, OTHER)])
    last_index, blob = result.states[(0, USCC)]
    assert last_index == 2  # the enterprise's last message in the batch (offset 3)
    assert Tracked.load(USCC, blob).state.days[("electricity", date(2024, 3, 9))].amount == 200.0


def test_stored_state_is_loaded_and_extended():
    first = process(meter(1))
    second = process(meter(2), states=stored(first))
    assert second.rows["utility_daily"][0]["amount"] == 200.0


def test_a_reading_behind_the_retention_window_is_too_late_not_a_duplicate():
    states = DictStates()
    states.enterprises[(0, USCC)] = Tracked(USCC, state=EnterpriseState(newest_day=date(2024, 6, 1))).dump()
    result = process(meter(1, day="2024-03-09"), states=states)
    assert (result.too_late, result.duplicates) == (1, 0)


def test_readings_are_counted():
    assert process(meter(1), meter(2)).readings == 2


def test_deadletter_headers_carry_where_and_why_and_keep_the_original_headers():
    bad = Message("enterprise.tax", 3, 42, None, b"[]", 1710032400.0, (("traceparent", b"00-abc"),))
    (msg, rejection), = process(bad).deadletters
    assert deadletter_headers(msg, rejection) == [
        ("traceparent", b"00-abc"),
        ("entwatch.stage", b"decode"),
        ("entwatch.reason", b"not_an_object"),
        ("entwatch.detail", b"expected a JSON object, got list"),
        ("entwatch.topic", b"enterprise.tax"),
        ("entwatch.partition", b"3"),
        ("entwatch.offset", b"42"),
    ]


def daily_rows_of(results) -> dict:
    """The utility_daily table after ``results``: per key the row with the highest version."""
    table: dict = {}
    for result in results:
        for row in result.rows.get("utility_daily", []):
            key = (row["uscc"], row["utility"], row["day"])
            if key not in table or table[key][1] <= row["version"]:
                table[key] = (round(row["amount"], 6), row["version"])
    return {key: amount for key, (amount, _) in table.items()}


def batches_of(messages: list[Message], sizes: list[int]):
    """``messages`` cut into batches of the given sizes, in turn."""
    i, n = 0, 0
    while i < len(messages):
        yield messages[i:i + sizes[n % len(sizes)]]
        i, n = i + sizes[n % len(sizes)], n + 1


def test_every_day_a_batch_touches_is_stored_even_when_later_uploads_move_the_window_past_it():
    """A fetch can carry months of one enterprise's weekly or monthly uploads; the days of its
    first uploads must reach utility_daily although its last ones move the 40-day window on."""
    from tests.realdata.departments import department_city, expected_daily

    events = department_city(enterprises=12, weeks=30, seed=3, monthly_share=0.5)
    offsets: dict = {}
    messages = []
    for e in events:
        topic = f"enterprise.{e['kind']}"
        offsets[topic] = offsets.get(topic, -1) + 1
        messages.append(Message(topic, 0, offsets[topic], e["uscc"].encode(), orjson.dumps(e), 0.0))
    expected = {key: round(amount, 6) for key, (amount, _) in expected_daily(events).items()}
    for sizes in ([len(messages)], [1, 7, 300], [2000]):
        processor, states, results = BatchProcessor(KIND_BY_TOPIC), DictStates(), []
        for batch in batches_of(messages, sizes):
            results.append(processor.process(batch, states))
            states.update(results[-1])
        assert daily_rows_of(results) == expected, sizes


def test_a_record_stored_before_the_move_to_detectors_still_loads(monkeypatch):
    import sys

    import detectors.partition as partition
    from detectors.partition import load_state

    record = Tracked(USCC)
    record.state.apply_monthly(_tax_event())
    monkeypatch.setitem(sys.modules, "streams.monitor", partition)
    monkeypatch.setattr(Tracked, "__module__", "streams.monitor")
    old = record.dump()
    monkeypatch.undo()
    assert b"streams.monitor" in old
    loaded = load_state(old)
    assert isinstance(loaded, Tracked) and loaded.state.tax == record.state.tax


def _tax_event():
    from streams.contracts import decode_event

    return decode_event(message("tax", 1, period="2024-02", declared_sales_cny=1.0, tax_paid_cny=0.0).value)
