"""Backward compatibility of the committed schemas with the released ones, and a test of that test."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from streams.compat import breaking_changes
from tests.schema_check import SCHEMAS

RELEASED = SCHEMAS / "released"


def assert_compatible(current: Path, released: Path) -> None:
    """Every released schema is still in ``current``, and the current one breaks nothing."""
    names = sorted(p.name for p in released.glob("*.json"))
    assert names, f"no released schemas in {released}"
    for name in names:
        assert (current / name).exists(), f"{name} was released: it stays in {current}"
        old = json.loads((released / name).read_text(encoding="utf-8"))
        new = json.loads((current / name).read_text(encoding="utf-8"))
        assert breaking_changes(old, new) == [], f"{name} breaks its released version"


def test_every_schema_is_backward_compatible_with_its_released_version():
    assert_compatible(SCHEMAS, RELEASED)


def broken_copies() -> dict[str, tuple[str, str]]:
    """Deliberately broken edits of the alert schema: (what the check must say, of which field)."""
    def remove(s): del s["properties"]["town"]
    def retype(s): s["properties"]["score"] = {"type": "string"}
    def require(s): s["properties"]["case_id"] = {"type": "string"}; s["required"].append("case_id")
    def shrink(s): s["properties"]["status"]["enum"].remove("withdrawn")
    def nested(s): s["$defs"]["Evidence"]["properties"]["baseline"] = {"type": "number"}
    def optional(s): s["required"].remove("explanation")
    return {"removed field": (remove, "town"), "retyped": (retype, "score"), "new required field": (require, "case_id"),
            "enum lost 'withdrawn'": (shrink, "status"), "retyped from null or number": (nested, "evidence[].baseline"),
            "no longer required": (optional, "explanation")}


@pytest.mark.parametrize("what", broken_copies())
def test_the_check_finds_each_kind_of_break(what):
    edit, field = broken_copies()[what]
    schema = json.loads((SCHEMAS / "alert.v1.json").read_text(encoding="utf-8"))
    broken = copy.deepcopy(schema)
    edit(broken)
    found = breaking_changes(schema, broken)
    assert any(line.startswith(f"{field}: ") and what in line for line in found), found


@pytest.mark.parametrize("what", broken_copies())
def test_the_compatibility_test_fails_on_a_broken_copy(tmp_path, what):
    current = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, current, ignore=shutil.ignore_patterns("released"))
    path = current / "alert.v1.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    broken_copies()[what][0](schema)
    path.write_text(json.dumps(schema), encoding="utf-8")
    with pytest.raises(AssertionError, match="alert.v1.json breaks its released version"):
        assert_compatible(current, RELEASED)


def test_the_compatibility_test_fails_when_a_released_version_is_gone(tmp_path):
    current = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, current, ignore=shutil.ignore_patterns("released", "risk.v1.json"))
    with pytest.raises(AssertionError, match="risk.v1.json was released"):
        assert_compatible(current, RELEASED)


def test_compatible_changes_pass():
    schema = json.loads((SCHEMAS / "alert.v1.json").read_text(encoding="utf-8"))
    grown = copy.deepcopy(schema)
    grown["properties"]["rule"]["enum"].append("new_rule")
    grown["properties"]["case_id"] = {"type": "string", "description": "an optional new field"}
    grown["properties"]["observed"]["description"] = "reworded"
    assert breaking_changes(schema, grown) == []
