"""CloudEvents headers (Kafka protocol binding, binary mode) on what entwatch publishes.

In binary mode the message value stays the plain JSON body of the contract and the event's
attributes travel as Kafka headers named ``ce_<attribute>``, plus ``content-type``.  A
generic consumer can then route or de-duplicate without parsing the body.

Every attribute is a function of the message alone, never of the wall clock, so a message
published again after a crash (at-least-once) carries the very same headers:

- ``ce_id``: ``<alert_id>-<revision>`` for an alert, ``<uscc>-<revision>`` for a risk
  record (the revision is the enterprise's message sequence, which only grows), and
  ``<topic>-<partition>-<offset>`` of the rejected message for a dead letter, and
  ``sink-<table>-<sha256 of the row>`` for a row storage refused (``stage=sink``);
- ``ce_time``: the event time the message is about (an alert's ``detected_at``, a risk
  record's ``updated_at``, a dead letter's Kafka timestamp, a refused row's own time);
- ``ce_sequence`` (the CloudEvents sequence extension): the revision, zero-padded to 20
  digits so that the strings sort like the numbers.

>>> from types import SimpleNamespace as Published   # the worker's Published: body, revision, opened
>>> body = {"alert_id": "5976473f7e8f7a6520e95e7f84f73e3b", "uscc": "914403001922038216",
...         "status": "open", "detected_at": "2024-05-10T00:00:00Z"}
>>> headers = dict(alert_headers(Published(body=body, revision=7, opened=True), "/entwatch"))
>>> headers["ce_type"], headers["ce_id"], headers["ce_sequence"]
(b'cn.entwatch.alert.opened', b'5976473f7e8f7a6520e95e7f84f73e3b-7', b'00000000000000000007')
>>> headers["ce_dataschema"]
b'https://entwatch.cn/schemas/alert.v1.json'
"""

from __future__ import annotations

from datetime import datetime, timezone

from detectors.alerts import SCHEMA_VERSION as OUTPUT_VERSION
from detectors.alerts import rfc3339

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
DEADLETTER_CONTENT_TYPE = "application/octet-stream"  # the rejected bytes as they came (maybe not JSON)
SCHEMA_BASE = "https://entwatch.cn/schemas/"  # + the file name under deploy/schemas/
TYPE_PREFIX = "cn.entwatch."
ALERT_TYPES = {  # the alert's ``status`` (and whether this message opens it) -> ce_type
    "opened": "cn.entwatch.alert.opened",
    "open": "cn.entwatch.alert.updated",
    "resolved": "cn.entwatch.alert.resolved",
    "withdrawn": "cn.entwatch.alert.withdrawn",
}
RISK_TYPE = "cn.entwatch.risk.updated"
DEADLETTER_TYPE = "cn.entwatch.deadletter"
CASE_TYPES = {  # a case action on monitor.cases -> ce_type
    "acknowledge": "cn.entwatch.case.acknowledged",
    "assign": "cn.entwatch.case.assigned",
    "note": "cn.entwatch.case.noted",
    "due": "cn.entwatch.case.due_changed",
    "resolve": "cn.entwatch.case.resolved",
    "mute": "cn.entwatch.case.muted",      # an explained case's rule muted for the enterprise
    "unmute": "cn.entwatch.case.unmuted",  # the mute lifted before its end
}
TYPES = (*ALERT_TYPES.values(), RISK_TYPE, DEADLETTER_TYPE, *CASE_TYPES.values())
CASE_VERSION = 1
SEQUENCE_DIGITS = 20


def schema_id(name: str, version: int) -> str:
    """The ``$id`` of a committed schema, which ``ce_dataschema`` carries.

    >>> schema_id("risk", 1)
    'https://entwatch.cn/schemas/risk.v1.json'
    """
    return f"{SCHEMA_BASE}{name}.v{version}.json"


def source(app_id: str) -> str:
    """``ce_source``: the entwatch deployment (its ``ENTWATCH_APP_ID``) as a URI reference."""
    return f"/{app_id}"


def alert_type(status: str, opened: bool) -> str:
    """``ce_type`` of an alert message: opened, updated, resolved or withdrawn."""
    return ALERT_TYPES["opened" if opened and status == "open" else status]


def alert_headers(published, ce_source: str) -> list[tuple[str, bytes]]:
    """Headers of a ``monitor.alerts`` message (the worker's ``Published``: ``body``,
    ``revision``, ``opened``)."""
    body = published.body
    return _headers(f"{body['alert_id']}-{published.revision}", ce_source,
                    alert_type(body["status"], published.opened), body["detected_at"], CONTENT_TYPE,
                    schema_id("alert", OUTPUT_VERSION), body["uscc"], published.revision)


def risk_headers(published, ce_source: str) -> list[tuple[str, bytes]]:
    """Headers of a ``monitor.risk`` message (the worker's ``Published``)."""
    body = published.body
    return _headers(f"{body['uscc']}-{published.revision}", ce_source, RISK_TYPE, body["updated_at"],
                    CONTENT_TYPE, schema_id("risk", OUTPUT_VERSION), body["uscc"], published.revision)


def deadletter_headers(topic: str, partition: int, offset: int, timestamp: float,
                       ce_source: str) -> list[tuple[str, bytes]]:
    """CloudEvents headers of a ``monitor.deadletter`` message, for the rejected message at
    ``topic``/``partition``/``offset`` (``timestamp``: its Kafka timestamp, in seconds).
    Its data is the rejected bytes, so there is no ``ce_dataschema``: the dead-letter
    headers' own schema is ``deadletter-headers.v1.json``.

    >>> dict(deadletter_headers("enterprise.tax", 2, 41, 1714000000.0, "/entwatch"))["ce_id"]
    b'enterprise.tax-2-41'
    """
    when = rfc3339(datetime.fromtimestamp(timestamp, timezone.utc))
    return _headers(f"{topic}-{partition}-{offset}", ce_source, DEADLETTER_TYPE, when,
                    DEADLETTER_CONTENT_TYPE, None, topic, None)


def sink_deadletter_headers(table: str, row: dict, digest: str, ce_source: str) -> list[tuple[str, bytes]]:
    """CloudEvents headers of the dead letter of a row storage refused (``entwatch.stage=sink``):
    its data is the row as JSON, with no schema of its own (a storage row, not a contract
    message), so its content type stays the dead letters' ``application/octet-stream``.
    ``ce_time`` is the row's own time (its event, detection or update time, else its day).

    >>> from datetime import date
    >>> h = dict(sink_deadletter_headers("utility_daily", {"uscc": "914403001922038216", "day": date(2024, 5, 1)},
    ...                                  "ab" * 32, "/entwatch"))
    >>> h["ce_id"][:24], h["ce_time"], h["ce_subject"]
    (b'sink-utility_daily-ababa', b'2024-05-01T00:00:00Z', b'914403001922038216')
    """
    when = next((row[k] for k in ("event_time", "detected_at", "updated_at", "received_at")
                 if isinstance(row.get(k), datetime)), None)
    if when is None:
        day = row.get("day")
        when = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) if day is not None and hasattr(day, "year") \
            else datetime(1970, 1, 1, tzinfo=timezone.utc)
    subject = row.get("uscc") if isinstance(row.get("uscc"), str) else table
    return _headers(f"sink-{table}-{digest}", ce_source, DEADLETTER_TYPE, rfc3339(when),
                    DEADLETTER_CONTENT_TYPE, None, subject, None)


def case_headers(event: dict, ce_source: str) -> list[tuple[str, bytes]]:
    """Headers of a ``monitor.cases`` message (a case event of the console's outbox): its
    ``event_id`` is the stable ``ce_id`` (a re-send after a crash carries the same), the case
    version its sequence.

    >>> h = dict(case_headers({"event_id": "e-1", "action": "resolve", "at": "2024-06-01T08:00:00+00:00",
    ...                        "uscc": "914403001922038216", "version": 3}, "/entwatch"))
    >>> h["ce_type"], h["ce_sequence"][-2:]
    (b'cn.entwatch.case.resolved', b'03')
    """
    at = rfc3339(datetime.fromisoformat(event["at"]))
    return _headers(event["event_id"], ce_source, CASE_TYPES[event["action"]], at, CONTENT_TYPE,
                    schema_id("case", CASE_VERSION), event["uscc"], event["version"])


def with_deadletter_headers(headers: list[tuple[str, bytes]], topic: str, partition: int, offset: int,
                            timestamp: float, ce_source: str) -> list[tuple[str, bytes]]:
    """A dead letter's headers with its CloudEvents headers added; CloudEvents headers the
    rejected message itself carried are kept as ``original.<name>``, so each ``ce_`` header
    appears once.

    >>> [k for k, _ in with_deadletter_headers([("ce_id", b"x"), ("entwatch.reason", b"oversize")],
    ...                                        "enterprise.tax", 0, 7, 0.0, "/entwatch")][:3]
    ['original.ce_id', 'entwatch.reason', 'ce_specversion']
    """
    kept = [(f"original.{k}" if k.startswith("ce_") or k == "content-type" else k, v) for k, v in headers]
    return kept + deadletter_headers(topic, partition, offset, timestamp, ce_source)


def _headers(ce_id: str, ce_source: str, ce_type: str, ce_time: str, content_type: str,
             dataschema: str | None, subject: str, sequence: int | None) -> list[tuple[str, bytes]]:
    headers = [("ce_specversion", SPECVERSION), ("ce_id", ce_id), ("ce_source", ce_source),
               ("ce_type", ce_type), ("ce_time", ce_time), ("ce_subject", subject),
               ("content-type", content_type)]
    if dataschema is not None:
        headers.append(("ce_dataschema", dataschema))
    if sequence is not None:
        headers.append(("ce_sequence", f"{sequence:0{SEQUENCE_DIGITS}d}"))
    return [(name, value.encode()) for name, value in headers]
