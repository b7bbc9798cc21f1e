"""What the worker's processor publishes for a simulated city (in process): every alert and risk
message is exactly what its model and committed schema say, with CloudEvents headers that
are valid, stable and typed by what happened.  (The same on a real worker and broker:
tests/integration/test_contracts_published.py.)"""

from __future__ import annotations

import json
from datetime import date

import orjson
import pytest

from producers.simulator import LEGACY, AnomalyRates, SimulationConfig, generate
from streams import cloudevents, messages
from streams.pipeline import replay_in_process
from tests.schema_check import SCHEMAS, problems


@pytest.fixture(scope="module")
def published() -> tuple[list, list]:
    rates = AnomalyRates(**{name: 0.08 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=30, days=200, seed=5, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day", **{**LEGACY, "late_share": 0.0})  # punctual
    lines = [orjson.dumps(o) if isinstance(o, dict) else o.encode() for o in generate(config)]
    results = list(replay_in_process(lines, 4))
    return [p for r in results for p in r.alerts], [p for r in results for p in r.risk]


def properties(filename: str) -> set[str]:
    return set(json.loads((SCHEMAS / filename).read_text(encoding="utf-8"))["properties"])


def test_every_alert_matches_its_schema_and_model_exactly(published):
    alerts, _ = published
    assert len({p.body["rule"] for p in alerts}) >= 4 and any(p.body["status"] == "resolved" for p in alerts)
    for p in alerts:
        assert problems("alert.v1.json", p.body) == [], p.body
        assert set(p.body) == properties("alert.v1.json")
        assert messages.Alert.model_validate(p.body).model_dump(mode="json") == p.body


def test_every_risk_record_matches_its_schema_and_model_exactly(published):
    _, risk = published
    assert {p.body["level"] for p in risk} >= {"low", "high"}
    for p in risk:
        assert problems("risk.v1.json", p.body) == [], p.body
        assert set(p.body) == properties("risk.v1.json")
        assert messages.Risk.model_validate(p.body).model_dump(mode="json") == p.body


def test_alert_headers_are_valid_cloudevents_typed_by_the_alerts_life(published):
    alerts, _ = published
    types: dict[str, list[str]] = {}
    for p in alerts:
        headers = {k: v.decode() for k, v in cloudevents.alert_headers(p, "/entwatch")}
        assert problems("cloudevents-headers.v1.json", headers) == [], headers
        assert headers["ce_dataschema"] == json.loads((SCHEMAS / "alert.v1.json").read_text())["$id"]
        assert headers["ce_subject"] == p.body["uscc"] and headers["ce_time"] == p.body["detected_at"]
        types.setdefault(p.body["alert_id"], []).append(headers["ce_type"].removeprefix("cn.entwatch.alert."))
    for life in types.values():
        assert life[0] == "opened" and set(life[1:-1]) <= {"updated"}
        assert life[-1] in ("opened", "updated", "resolved", "withdrawn")
    assert any(life[-1] == "resolved" for life in types.values())


def test_each_message_has_its_own_id_and_a_growing_sequence(published):
    alerts, risk = published
    ids = [dict(cloudevents.alert_headers(p, "/x"))["ce_id"] for p in alerts]
    ids += [dict(cloudevents.risk_headers(p, "/x"))["ce_id"] for p in risk]
    assert len(ids) == len(set(ids))
    last: dict[str, bytes] = {}
    for p in alerts:
        sequence = dict(cloudevents.alert_headers(p, "/x"))["ce_sequence"]
        assert sequence > last.get(p.body["alert_id"], b""), "a later message of an alert sorts later"
        last[p.body["alert_id"]] = sequence


def test_risk_headers_are_valid_cloudevents(published):
    _, risk = published
    for p in risk:
        headers = {k: v.decode() for k, v in cloudevents.risk_headers(p, "/entwatch")}
        assert problems("cloudevents-headers.v1.json", headers) == [], headers
        assert headers["ce_type"] == "cn.entwatch.risk.updated" and headers["ce_time"] == p.body["updated_at"]


def test_deadletter_headers_are_valid_cloudevents():
    headers = {k: v.decode() for k, v in cloudevents.deadletter_headers("enterprise.tax", 2, 41, 1714000000.5, "/e")}
    assert problems("cloudevents-headers.v1.json", headers) == []
    assert headers["ce_time"] == "2024-04-24T23:06:40.500000Z" and "ce_dataschema" not in headers
