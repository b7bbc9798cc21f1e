"""The committed JSON Schemas: what the models generate, valid, documented, with examples that hold."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from streams import messages, schemas
from streams.contracts import Rejection, validate_event
from streams.errors import UserError
from tests.schema_check import SCHEMAS, problems

BY_NAME = {c.name: c for c in schemas.CONTRACTS}


def test_the_committed_schemas_are_what_the_models_generate():
    assert schemas.drifted(SCHEMAS) == [], "run: entwatch schemas --out deploy/schemas"
    committed = {p.name for p in SCHEMAS.glob("*.json")}
    assert committed == {c.filename for c in schemas.CONTRACTS}


def test_the_check_reports_a_drifted_file_in_one_line(tmp_path):
    schemas.generate(tmp_path)
    (tmp_path / "risk.v1.json").write_text("{}\n")
    done = subprocess.run([sys.executable, "-m", "streams.cli", "schemas", "--out", str(tmp_path), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "risk.v1.json" in done.stderr and "entwatch schemas" in done.stderr


@pytest.mark.parametrize("contract", schemas.CONTRACTS, ids=lambda c: c.name)
def test_each_schema_is_valid_draft_2020_12_and_says_what_each_field_is(contract):
    schema = json.loads((SCHEMAS / contract.filename).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{contract.filename}") and schema["description"]
    nodes = [schema["properties"], *(d.get("properties", {}) for d in schema.get("$defs", {}).values())]
    undocumented = [name for props in nodes for name, prop in props.items() if not prop.get("description")]
    assert undocumented == []


@pytest.mark.parametrize("contract", schemas.CONTRACTS, ids=lambda c: c.name)
def test_each_schemas_example_is_valid_under_it(contract):
    schema = json.loads((SCHEMAS / contract.filename).read_text(encoding="utf-8"))
    assert schema["examples"]
    for example in schema["examples"]:
        assert problems(contract.filename, example) == []


@pytest.mark.parametrize("kind", schemas.INPUT_EXAMPLES)
def test_the_input_examples_are_accepted_by_the_worker(kind):
    event = validate_event(schemas.INPUT_EXAMPLES[kind], topic_kind=kind)
    assert not isinstance(event, Rejection), event


def test_the_output_examples_are_what_the_models_accept():
    assert messages.Alert.model_validate(messages.ALERT_EXAMPLE).rule == "utility_drop"
    assert messages.Risk.model_validate(messages.RISK_EXAMPLE).score == 67.5
    assert messages.DeadLetterHeaders.model_validate(messages.DEADLETTER_EXAMPLE).stage == "validate"
    assert messages.CloudEventHeaders.model_validate(messages.CLOUDEVENTS_EXAMPLE).type == "cn.entwatch.alert.opened"


def test_an_input_field_without_a_description_stops_the_generator(monkeypatch):
    monkeypatch.delitem(schemas.INPUT_FIELDS, "meter_id")
    with pytest.raises(UserError, match="meter_id"):
        BY_NAME["utility"].schema()


READING = {"start": "2024-03-01T00:00:00+08:00", "end": "2024-03-01T01:00:00+08:00", "amount": 12.5}
READINGS_CASES = [
    ([READING], True),
    ([{**READING, "estimated": True, "note": "extra fields are ignored"}], True),
    ([{**READING, "amount": 0}], True),
    ([], False),
    ([READING] * 10_001, False),
    ([{**READING, "amount": -1}], False),
    ([{**READING, "amount": 2e15}], False),  # more than storage holds
    ([{**READING, "amount": "12.5"}], False),
    ([{**READING, "estimated": "yes"}], False),
    ([{k: v for k, v in READING.items() if k != "end"}], False),
    ([{**READING, "start": "2024-03-01T00:00:00"}], False),  # no offset
    (["12.5"], False),
    ("12.5", False),
]


@pytest.mark.parametrize("readings,valid", READINGS_CASES, ids=range(len(READINGS_CASES)))
def test_the_readings_schema_agrees_with_the_workers_check(readings, valid):
    event = {**schemas.INPUT_EXAMPLES["utility"], "readings": readings}
    assert (problems("utility.v1.json", event) == []) is valid
    assert (not isinstance(validate_event(event), Rejection)) is valid


def test_the_generator_refuses_to_break_a_released_schema(tmp_path):
    schemas.generate(tmp_path)
    schemas.release(tmp_path)
    released = tmp_path / "released" / "risk.v1.json"
    old = json.loads(released.read_text())
    old["properties"]["region"] = {"type": "string", "description": "a field the models no longer have"}
    released.write_text(json.dumps(old))
    with pytest.raises(UserError, match="region: removed field"):
        schemas.generate(tmp_path)
