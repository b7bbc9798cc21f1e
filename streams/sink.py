"""The ClickHouse sink of the worker: a batch's rows, table by table, from one thread.

A failing ClickHouse holds the batch (and so the offsets) back instead of dropping it:
back-pressure, not loss.  Two exceptions to "retry until it succeeds":

- **Rows storage cannot hold.** A table batch that fails the same way ``attempts`` times
  with an error the data causes (a type, parse or overflow error: ``fault_of``) is split
  in halves, and the halves again, until the failing rows are alone; those are returned
  to the caller as ``Unstorable`` (the worker dead-letters them, ``set_aside``) and every
  other row is stored.  Connection errors, timeouts and anything not known to come from
  the data are retried with back-off forever, as before.
- **A hanging ClickHouse.** An insert that has not returned after ``time_limit`` seconds
  counts as a failure (once per ``time_limit``) while the sink goes on waiting for it, and
  ``stalled_seconds`` says how long the sink has had work without storing anything
  (``streams.health`` turns that into ``/ready`` 503 and a gauge).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from streams import metrics
from streams.cloudevents import sink_deadletter_headers
from streams.storage import TABLES, Storage
from streams.topics import DEADLETTER_MAX_BYTES

log = logging.getLogger("entwatch.worker")

SINK_ORDER = ("events", "enterprises", "utility_daily", "tax_monthly", "social_monthly", "complaints", "deadletters",
              "alerts", "risk")
TABLE_KINDS = {"utility_daily": "utility", "tax_monthly": "tax", "social_monthly": "social",
               "enterprises": "registry", "complaints": "complaint"}  # events rows name their own kind

# ClickHouse error codes a row's values cause: the same rows fail the same way every time.
DATA_ERRORS = {
    6: "CANNOT_PARSE_TEXT", 7: "INCORRECT_NUMBER_OF_COLUMNS", 25: "CANNOT_PARSE_ESCAPE_SEQUENCE",
    26: "CANNOT_PARSE_QUOTED_STRING", 27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME", 53: "TYPE_MISMATCH", 69: "ARGUMENT_OUT_OF_BOUND", 70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER", 117: "INCORRECT_DATA", 128: "TOO_LARGE_ARRAY_SIZE", 130: "CANNOT_READ_ARRAY_FROM_TEXT",
    131: "TOO_LARGE_STRING_SIZE", 321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN", 376: "CANNOT_PARSE_UUID", 407: "DECIMAL_OVERFLOW",
}
_CODE = re.compile(r"Code: (\d+)")
_COLUMN = re.compile(r"(?:Column |value of key )(\w+)")


@dataclass(frozen=True)
class Fault:
    """Why an insert failed, without any value from the rows: what ``detail`` may show.

    >>> from clickhouse_driver.errors import TypeMismatchError
    >>> fault = fault_of(TypeMismatchError("Column insured_headcount: argument out of range"), "social_monthly")
    >>> fault.from_data, fault.detail
    (True, 'ClickHouse 53 TYPE_MISMATCH, column insured_headcount')
    >>> fault_of(ConnectionRefusedError(111, "Connection refused"), "events")
    Fault(code=None, name='ConnectionRefusedError', column=None, from_data=False)
    """

    code: int | None
    name: str
    column: str | None = None
    from_data: bool = False

    @property
    def detail(self) -> str:
        code = f"ClickHouse {self.code} " if self.code is not None else ""
        return f"{code}{self.name}" + (f", column {self.column}" if self.column else "")


def fault_of(exc: BaseException, table: str) -> Fault:
    """Classify an insert's exception: from the data (split the batch) or not (retry).

    Only the error code, its name and a column of ``table`` are kept: error messages can
    quote the rows (chDB's parse errors do)."""
    code = getattr(exc, "code", None)
    if not isinstance(code, int):
        found = _CODE.search(str(exc)) if type(exc).__name__ == "ChdbError" else None
        code = int(found.group(1)) if found else None
    text = str(exc)
    columns = [c for c in _COLUMN.findall(text) if c in TABLES.get(table, ())]
    column = columns[0] if columns else None
    if isinstance(exc, orjson.JSONEncodeError):  # chDB's rows are JSON: a value JSON cannot carry
        return Fault(None, "JSON_ENCODE_ERROR", column, True)
    if code in DATA_ERRORS:
        return Fault(code, DATA_ERRORS[code], column, True)
    if code is not None:
        return Fault(code, type(exc).__name__)
    return Fault(None, type(exc).__name__)


@dataclass(frozen=True)
class Unstorable:
    """A row ClickHouse refused for its values, with why (a code, never the values)."""

    table: str
    row: dict[str, Any]
    fault: Fault

    @property
    def kind(self) -> str:
        """The input kind the row came from (for metrics), ``unknown`` for derived rows."""
        return str(self.row.get("kind")) if self.table == "events" else TABLE_KINDS.get(self.table, "unknown")

    @property
    def key(self) -> bytes | None:
        uscc = self.row.get("uscc")
        return uscc.encode() if isinstance(uscc, str) else None

    def value(self) -> bytes:
        """The row as JSON (dates and times ISO 8601; any integer, even one JSON parsers
        cannot hold in 64 bits)."""
        return _json(self.row)

    def headers(self) -> list[tuple[str, bytes]]:
        return [("entwatch.stage", b"sink"), ("entwatch.reason", b"unstorable"),
                ("entwatch.table", self.table.encode()), ("entwatch.detail", self.fault.detail.encode())]

    def record(self, limit: int = DEADLETTER_MAX_BYTES, ce_source: str | None = None
               ) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        """Its dead letter as ``(key, value, headers)``, the value at most ``limit`` bytes:
        a larger row has its longest strings cut (header ``entwatch.truncated``: the full
        size); ``entwatch.sha256`` is the digest of the full JSON.  With ``ce_source``, its
        CloudEvents headers follow (``streams.cloudevents.sink_deadletter_headers``).

        >>> big = Unstorable("events", {"uscc": "u", "payload": "x" * 5000}, Fault(53, "TYPE_MISMATCH", None, True))
        >>> key, value, headers = big.record(limit=1000)
        >>> len(value) <= 1000, dict(headers)["entwatch.truncated"]
        (True, b'5028')
        """
        value = self.value()
        digest = hashlib.sha256(value).hexdigest()
        headers = self.headers() + [("entwatch.sha256", digest.encode())]
        if len(value) > limit:
            headers.append(("entwatch.truncated", str(len(value)).encode()))
            value = _cut(self.row, limit)
        if ce_source is not None:
            headers += sink_deadletter_headers(self.table, self.row, digest, ce_source)
        return self.key, value, headers

    def deadletter_row(self, topic: str, partition: int, offset: int) -> dict[str, Any]:
        """Its ``deadletters`` row, keyed by where its dead letter was written."""
        return {"topic": topic, "partition": partition, "offset": offset, "stage": "sink", "reason": "unstorable",
                "detail": f"{self.table}: {self.fault.detail}", "received_at": datetime.now(timezone.utc)}


def _json(row: dict[str, Any]) -> bytes:
    return json.dumps(row, ensure_ascii=False, sort_keys=True,
                      default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)).encode()


def _cut(row: dict[str, Any], limit: int) -> bytes:
    """``row`` as JSON in at most ``limit`` bytes: its longest string halved until it fits."""
    row = dict(row)
    value = _json(row)
    while len(value) > limit:
        longest = max((k for k, v in row.items() if isinstance(v, str) and v), key=lambda k: len(row[k]), default=None)
        if longest is None:
            return b"{}"
        row[longest] = row[longest][:len(row[longest]) // 2]
        value = _json(row)
    return value


class Sink:
    """Writes a batch's rows to storage from one thread; retries until it succeeds, except
    rows that fail for their values (returned by ``write``).

    ``attempts``: how many times a table batch must fail the same way, with an error its
    data causes, before it is split.  ``time_limit``: seconds after which an insert that
    has not returned counts as a failure (and again every ``time_limit``)."""

    def __init__(self, storage: Storage, max_backoff: float = 30.0, attempts: int = 3, time_limit: float = 15.0,
                 first_backoff: float = 0.5):
        self.storage = storage
        self.max_backoff = max_backoff
        self.first_backoff = first_backoff
        self.attempts = attempts
        self.time_limit = time_limit
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="entwatch-sink")
        self._working_since: float | None = None
        self._progress_at = time.monotonic()

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def stalled_seconds(self, now: float | None = None) -> float:
        """Seconds since the sink last stored something while it has work (0 when idle)."""
        if self._working_since is None:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self._progress_at)

    async def write(self, rows: dict[str, list[dict]]) -> list[Unstorable]:
        """Store ``rows`` (table -> rows) in ``SINK_ORDER``; return the rows storage refused."""
        self._working_since = self._progress_at = time.monotonic()
        refused: list[Unstorable] = []
        try:
            for table in SINK_ORDER:
                batch = rows.get(table)
                if batch:
                    bad = await self._store(table, batch)
                    refused += bad
                    metrics.SINK_BATCHES.labels(table).inc()
                    metrics.SINK_ROWS.labels(table).inc(len(batch) - len(bad))
        finally:
            self._working_since = None
        return refused

    async def _store(self, table: str, batch: list[dict]) -> list[Unstorable]:
        """Insert ``batch``; split it once it has failed ``attempts`` times in a row the same
        way, with a fault from the data."""
        backoff, streak, last = self.first_backoff, 0, None
        while True:
            fault = await self._attempt(table, batch)
            if fault is None:
                return []
            streak = streak + 1 if fault == last else 1
            last = fault
            if streak >= self.attempts:
                log.error("writing %d rows to %s failed %d times (%s): looking for the rows storage refuses",
                          len(batch), table, streak, fault.detail)
                return await self._split(table, batch, fault)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _split(self, table: str, rows: list[dict], fault: Fault) -> list[Unstorable]:
        """The rows of ``rows`` (which failed with ``fault``) that fail alone; stores the rest."""
        if len(rows) == 1:
            log.error("a row of %s cannot be stored (%s): dead-lettered", table, fault.detail)
            return [Unstorable(table, rows[0], fault)]
        middle = len(rows) // 2
        refused = []
        for half in (rows[:middle], rows[middle:]):
            half_fault = await self._attempt(table, half)
            if half_fault is not None:
                refused += await self._split(table, half, half_fault)
        return refused

    async def _attempt(self, table: str, rows: list[dict]) -> Fault | None:
        """Insert ``rows`` once it works or fails for the data: retries every other failure
        with back-off (None: stored)."""
        backoff = self.first_backoff
        while True:
            try:
                await self._insert(table, rows)
                self._progress_at = time.monotonic()
                return None
            except Exception as exc:
                fault = fault_of(exc, table)
                metrics.SINK_FAILURES.labels(table).inc()
                if fault.from_data:
                    return fault
                metrics.SINK_RETRIES.labels(table).inc()
                log.warning("writing %d rows to %s failed (%s); retrying in %.1f s", len(rows), table,
                            fault.detail, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _insert(self, table: str, rows: list[dict]) -> None:
        """One insert in the sink's thread; every ``time_limit`` it has not returned counts a
        failure.  The call is waited for, never abandoned: a second insert would only queue
        behind it in the one thread."""
        call = asyncio.ensure_future(self.call(self.storage.insert, table, rows))
        started = time.monotonic()
        while True:
            done, _ = await asyncio.wait({call}, timeout=self.time_limit)
            if done:
                return call.result()
            metrics.SINK_FAILURES.labels(table).inc()
            log.warning("writing %d rows to %s has not returned for %.0f s", len(rows), table,
                        time.monotonic() - started)


async def set_aside(refused: list[Unstorable], sink: Sink, topic, ce_source: str | None = None,
                    limit: int = DEADLETTER_MAX_BYTES) -> None:
    """Dead-letter rows storage refused: each on ``topic`` (a Faust topic) as JSON with
    ``entwatch.stage=sink`` and ``entwatch.reason=unstorable`` (``Unstorable.record``, at
    most ``limit`` bytes; CloudEvents headers of ``ce_source``), acknowledged; then a
    ``deadletters`` row pointing at its dead letter; then counted."""
    sent = []
    for r in refused:
        key, value, headers = r.record(limit, ce_source)
        sent.append(await topic.send(key=key, value=value, headers=headers))
    written = await asyncio.gather(*sent)
    rows = [r.deadletter_row(meta.topic, meta.partition, meta.offset) for r, meta in zip(refused, written)]
    for lost in await sink.write({"deadletters": rows}):
        log.error("the deadletters row of a refused %s row cannot be stored either (%s)", lost.row["detail"],
                  lost.fault.detail)
    for r in refused:
        metrics.DEADLETTERED.labels(r.kind, "unstorable").inc()
