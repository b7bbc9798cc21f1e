"""Checking messages against the committed JSON Schemas (deploy/schemas), for the tests."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parents[1] / "deploy" / "schemas"


@lru_cache(maxsize=None)
def validator(filename: str) -> Draft202012Validator:
    """A validator for one committed schema, checking formats (date, date-time) too."""
    schema = json.loads((SCHEMAS / filename).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(filename: str, instance) -> list[str]:
    """Why ``instance`` does not match the schema (empty: it does)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(message)'}: {e.message}"
            for e in validator(filename).iter_errors(instance)]


def header_text(headers) -> dict[str, str]:
    """Kafka headers (name, bytes) as the UTF-8 text the header schemas describe (last wins)."""
    return {name: value.decode() for name, value in headers or ()}
