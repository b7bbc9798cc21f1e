r"""Parameters of the named queries (``streams.readapi``): parsed by type, then bound.

A client's value becomes a Python value of a checked type — a USCC with its check
character, one of a fixed list, a whole number in a range, a finite number, a day, an
aware time, a short text without control characters — or a ``ValueError`` that says what
to give.  Bound values reach ClickHouse as query parameters (chDB: ``parameter_text``) or
as literals from ``literal``, the one escape function (ClickHouse 18.16 has no query
parameters).

>>> Uscc().parse("914403001922038216")
'914403001922038216'
>>> Count(1, 1000).parse("20"), Number(0, 100).parse("60")
(20, 60.0)
>>> Day().parse("2024-02-30")
Traceback (most recent call last):
...
ValueError: give a day as YYYY-MM-DD between 1970-01-01 and 2149-06-06
>>> print(render("SELECT {town:String} AS town", {"town": "it's"}))
SELECT 'it\'s' AS town
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Mapping

from streams.uscc import CHARSET, uscc_problem


class ParamError(ValueError):
    """A parameter a named query does not accept; ``param`` names it (errors are data)."""

    def __init__(self, param: str, problem: str):
        super().__init__(f"{param}: {problem}")
        self.param = param


# ---------------------------------------------------------------- parameter types

@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values."""

    values: tuple[str, ...]
    clickhouse = "String"

    def parse(self, raw: Any) -> str:
        if raw not in self.values:
            raise ValueError(f"must be one of {', '.join(self.values)}")
        return raw


@dataclass(frozen=True)
class Uscc:
    """A Unified Social Credit Code with a correct check character."""

    clickhouse = "String"

    def parse(self, raw: Any) -> str:
        problem = uscc_problem(raw) if isinstance(raw, str) and len(raw) == 18 else "give an 18-character USCC"
        if problem:
            raise ValueError(problem)
        return raw


_USCC_SHAPE = re.compile(f"^[{CHARSET}]{{18}}$")


@dataclass(frozen=True)
class UsccBound:
    """One end of a range of USCCs: 18 characters of the USCC charset (no check character needed)."""

    clickhouse = "String"

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str) or not _USCC_SHAPE.match(raw):
            raise ValueError(f"give 18 characters of {CHARSET}")
        return raw


@dataclass(frozen=True)
class Text:
    """A short free text (a town, an industry): no control characters."""

    max_length: int = 64
    clickhouse = "String"

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str) or not 1 <= len(raw) <= self.max_length:
            raise ValueError(f"give a text of 1 to {self.max_length} characters")
        if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in raw):
            raise ValueError("control characters are not accepted")
        return raw


@dataclass(frozen=True)
class Day:
    """A calendar day, ``YYYY-MM-DD`` (what a ClickHouse ``Date`` holds)."""

    clickhouse = "Date"

    def parse(self, raw: Any) -> date:
        if isinstance(raw, datetime) or not isinstance(raw, (date, str)):
            raise ValueError("give a day as YYYY-MM-DD")
        try:
            day = raw if isinstance(raw, date) else date.fromisoformat(raw) if len(raw) == 10 else None
        except ValueError:
            day = None
        if day is None or not date(1970, 1, 1) <= day <= date(2149, 6, 6):
            raise ValueError("give a day as YYYY-MM-DD between 1970-01-01 and 2149-06-06")
        return day


@dataclass(frozen=True)
class Instant:
    """A moment with its UTC offset (RFC 3339); a time without an offset is refused."""

    clickhouse = "DateTime('UTC')"

    def parse(self, raw: Any) -> datetime:
        try:
            at = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise ValueError("give a time with its offset, e.g. 2024-03-01T08:00:00+08:00")
        at = at.astimezone(timezone.utc)
        if not datetime(1970, 1, 1, tzinfo=timezone.utc) <= at < datetime(2106, 1, 1, tzinfo=timezone.utc):
            raise ValueError("give a time between 1970 and 2105")
        return at.replace(microsecond=0)


@dataclass(frozen=True)
class Count:
    """A whole number in ``[low, high]``."""

    low: int
    high: int
    clickhouse = "UInt32"

    def parse(self, raw: Any) -> int:
        if isinstance(raw, str) and re.fullmatch(r"[0-9]{1,10}", raw):
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int) or not self.low <= raw <= self.high:
            raise ValueError(f"give a whole number from {self.low} to {self.high}")
        return raw


@dataclass(frozen=True)
class Number:
    """A finite number in ``[low, high]``."""

    low: float
    high: float
    clickhouse = "Float64"

    def parse(self, raw: Any) -> float:
        try:
            value = float(raw) if isinstance(raw, (int, float, str)) and not isinstance(raw, bool) else math.nan
        except ValueError:
            value = math.nan
        if isinstance(raw, str) and not re.fullmatch(r"-?[0-9]{1,15}(\.[0-9]{1,15})?", raw):
            value = math.nan
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise ValueError(f"give a number from {self.low:g} to {self.high:g}")
        return value


# ---------------------------------------------------------------- binding

def literal(value: Any) -> str:
    r"""``value`` as a ClickHouse literal: the one escape function (18.16 has no query parameters).

    Only the types the parameter types produce are accepted.

    >>> print(literal("O'Brien \\ 镇"), literal(7), literal(2.5), literal(date(2024, 3, 1)))
    'O\'Brien \\ 镇' 7 2.5 toDate('2024-03-01')
    >>> literal(datetime(2024, 3, 1, 8, tzinfo=timezone.utc))
    "toDateTime('2024-03-01 08:00:00', 'UTC')"
    >>> literal(True)
    Traceback (most recent call last):
    ...
    TypeError: no literal for bool
    """
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        for char, code in (("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            escaped = escaped.replace(char, code)
        return f"'{escaped}'"
    if isinstance(value, bool):
        raise TypeError("no literal for bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return f"toDateTime('{value.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}', 'UTC')"
    if isinstance(value, date) and not isinstance(value, datetime):
        return f"toDate('{value.isoformat()}')"
    raise TypeError(f"no literal for {type(value).__name__}")


def parameter_text(value: Any) -> str:
    r"""``value`` as ClickHouse reads a bound query parameter ``{name:Type}`` (chDB): text in
    the TSV escaping, so that a backslash stays a backslash.

    >>> print(parameter_text("a\\b"), parameter_text(datetime(2024, 3, 1, 8, tzinfo=timezone.utc)))
    a\\b 2024-03-01 08:00:00
    """
    if isinstance(value, str):
        for char, code in (("\\", "\\\\"), ("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            value = value.replace(char, code)
        return value
    if isinstance(value, datetime):
        return f"{value.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}"
    if isinstance(value, date):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")


def render(sql: str, values: Mapping[str, Any]) -> str:
    """``sql`` with each ``{name:Type}`` placeholder replaced by ``literal(values[name])``."""
    return PLACEHOLDER.sub(lambda m: literal(values[m.group(1)]), sql)
