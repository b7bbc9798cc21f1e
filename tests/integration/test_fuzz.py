"""Fuzz the real worker with thousands of malformed messages: it never dies, nothing is lost."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts import Rejection, decode_event
from streams.settings import INPUT_KINDS, Settings
from tests.conftest import wait_until
from tests.integration.kafka_io import produce_raw

pytestmark = pytest.mark.integration

USCC = "914403001922038216"
T = "2024-03-01T08:00:00+08:00"
TEMPLATES = {
    "registry": {"name": "东莞某制造有限公司", "industry": "C39", "town": "长安镇", "registered_capital_cny": 1e6,
                 "established_on": "2015-01-01", "status": "active"},
    "utility": {"utility": "electricity", "unit": "kWh", "meter_id": "M1",
                "readings": [{"start": T, "end": "2024-03-01T09:00:00+08:00", "amount": 12.5}]},
    "tax": {"period": "2024-02", "declared_sales_cny": 1e5, "tax_paid_cny": 1.3e4},
    "social": {"period": "2024-02", "insured_headcount": 25, "contributions_cny": 2.5e4},
    "complaint": {"complaint_id": "C1", "category": "price", "channel": "web", "text": "电话13800138000"},
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def event(kind: str) -> dict:
    return {"kind": kind, "event_id": "x", "uscc": USCC, "source": "fuzz", "event_time": T, "schema_version": 1,
            **copy.deepcopy(TEMPLATES[kind])}


@st.composite
def messages(draw) -> tuple[str, bytes]:
    """A (topic kind, value) pair: a valid event bent in one way, or bytes that are not one."""
    kind = draw(st.sampled_from(INPUT_KINDS))
    obj = event(kind)
    how = draw(st.sampled_from(["drop", "replace", "bytes", "truncate", "array", "uscc", "nested", "valid"]))
    if how == "drop":
        del obj[draw(st.sampled_from(sorted(obj)))]
    elif how == "replace":
        obj[draw(st.sampled_from(sorted(obj)))] = draw(JSON_VALUES)
    elif how == "nested" and kind == "utility":
        obj["readings"][0][draw(st.sampled_from(["start", "end", "amount", "estimated"]))] = draw(JSON_VALUES)
    elif how == "uscc":
        i = draw(st.integers(0, 17))
        obj["uscc"] = USCC[:i] + draw(st.sampled_from("0123456789ABCXYZIO")) + USCC[i + 1:]
    elif how == "bytes":
        return kind, draw(st.binary(max_size=200))
    if how == "array":
        return kind, json.dumps([obj]).encode()
    raw = json.dumps(obj, ensure_ascii=draw(st.booleans())).encode()
    if how == "truncate":
        return kind, raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return kind, raw


def collect(n: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(messages())
    def gather(message):
        out.append(message)

    gather()
    return out


def unique_ids(batch: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Give every message that parses to an object with a string event_id its own id."""
    unique = []
    for i, (kind, raw) in enumerate(batch):
        try:
            obj = json.loads(raw)
        except ValueError:
            unique.append((kind, raw))
            continue
        if isinstance(obj, dict) and isinstance(obj.get("event_id"), str) and obj["event_id"]:
            obj["event_id"] = f"fz{i}"
            raw = json.dumps(obj).encode()
        unique.append((kind, raw))
    return unique


def test_two_thousand_malformed_messages_never_kill_the_worker_and_all_are_accounted_for(start_worker, broker):
    batch = unique_ids(collect(2500))
    verdicts = [decode_event(raw, topic_kind=kind) for kind, raw in batch]
    malformed = sum(isinstance(v, Rejection) for v in verdicts)
    assert malformed >= 2000, f"only {malformed} of the generated messages are malformed"
    worker = start_worker()
    topics = Settings(broker_url=broker.url)
    produce_raw(broker.bootstrap, [(topics.topic(kind), USCC.encode(), raw) for kind, raw in batch])

    def accounted():
        return (worker.scalar("SELECT count() FROM events FINAL") or 0) + \
               (worker.scalar("SELECT count() FROM deadletters FINAL") or 0)

    wait_until(lambda: accounted() == len(batch), timeout=180, what=f"{len(batch)} messages stored or dead-lettered")
    assert worker.proc.poll() is None, "the worker died"
    assert worker.scalar("SELECT count() FROM deadletters FINAL") == malformed
    assert worker.scalar("SELECT count() FROM events FINAL") == len(batch) - malformed
