"""Output contract v1 (SPEC §5): the messages entwatch publishes, as pydantic models.

The worker builds its messages as plain dicts (``detectors/alerts.py``,
``detectors/risk.py``, ``streams/pipeline.py``); these models say what they are, field by
field, for the systems that subscribe.  The JSON Schemas in ``deploy/schemas/`` are
generated from them (``entwatch schemas``), and tests check every message a real worker
publishes against those schemas.

>>> Alert.model_validate(ALERT_EXAMPLE).status
'open'
>>> Risk.model_validate(RISK_EXAMPLE).level
'high'
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Union

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from detectors.alerts import SCHEMA_VERSION
from detectors.findings import RULES, SEVERITIES
from streams import cloudevents
from streams.contracts import KINDS

USCC_PATTERN = r"^[0-9A-HJ-NP-RTUW-Y]{18}$"  # the GB 32100-2015 character set; the check digit is not a pattern
USCC_DESCRIPTION = (
    "Unified Social Credit Code of the enterprise (统一社会信用代码, GB 32100-2015): 18 characters "
    "from 0-9 and A-Y without I, O, S, V, Z; the last is a check digit. Also the Kafka message key.")
ALERT_STATUSES = ("open", "resolved", "withdrawn")
RISK_LEVELS = ("none", "low", "medium", "high")
# acknowledge, assign, note, due, resolve; then mute and unmute (a rule muted for the enterprise after an
# explained outcome, a decision kept in the console's case store, never in detection)
CASE_ACTIONS = (*cloudevents.CASE_TYPES, *(a for a in ("mute", "unmute") if a not in cloudevents.CASE_TYPES))
CASE_OUTCOMES = ("confirmed", "explained", "false_alarm")
CASE_STATES = ("new", "acknowledged", "resolved")
DEADLETTER_STAGES = ("decode", "validate", "sink")
DEADLETTER_HEADERS_VERSION = 1
CLOUDEVENTS_HEADERS_VERSION = 1

EXPLANATION_EXAMPLE = {  # detectors/explain.py's own example
    "zh": "2024-05-06 至 2024-05-08 连续 3 个工作日日均用电量 120 kWh，仅为自身近期正常水平 2,400 kWh 的 5%"
          "（低于 30% 即疑似停产）。",
    "en": "Electricity use averaged 120 kWh a day on 3 working days from 2024-05-06 to 2024-05-08, 5% of its "
          "own recent normal level of 2,400 kWh (below 30% suggests a halt).",
}
Uscc = Annotated[str, Field(pattern=USCC_PATTERN, description=USCC_DESCRIPTION, examples=["914403001922038216"])]


def _unit(unit: str) -> dict:
    return {"x-unit": unit}


class _Message(BaseModel):
    # Subscribers ignore fields they do not know: a later minor change may add some.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Evidence(_Message):
    """One fact behind an alert: a value of a metric over a period, with its baseline."""

    source: Literal[KINDS] = Field(description="The input kind the value comes from.")
    metric: str = Field(
        description="What was measured; the name ends in its unit where it has one (kWh, m3, cny, per_day), "
                    "e.g. electricity_kWh_per_day, declared_sales_cny, insured_headcount, complaints_7d, "
                    "or names a date such as last_day_with_consumption.",
        examples=["electricity_kWh_per_day", "declared_sales_cny", "insured_headcount"])
    period: str = Field(
        description="The data period of the value: a day (2024-05-06), a month (2024-05), or a range of "
                    "either as start/end (2024-05-06/2024-05-08), in the city's local time (Asia/Shanghai).",
        examples=["2024-05-06/2024-05-08", "2024-05"])
    value: Union[float, str, None] = Field(
        description="The observed value in the metric's unit; a date or month (text) for the last_* "
                    "metrics; null when there is none (e.g. no sales ever declared).",
        examples=[120.0, "2024-01", None])
    baseline: Union[float, None] = Field(
        description="What the value was compared with, in the same unit (the enterprise's seasonal "
                    "expectation, last year's month, the peer cohort's level); null when the rule has none.",
        examples=[2400.0, None])


class Explanation(_Message):
    """The alert in one or two sentences a person understands without the code."""

    zh: str = Field(description="In Chinese (zh-CN), the default language of the monitoring centre.",
                    examples=[EXPLANATION_EXAMPLE["zh"]])
    en: str = Field(description="The same in English.", examples=[EXPLANATION_EXAMPLE["en"]])


class Alert(_Message):
    """An alert on ``monitor.alerts`` (key: the USCC): one message each time an alert opens,
    changes (severity rises, its window grows) or ends (resolved, or withdrawn when later
    data showed the condition never held).  The latest message of an ``alert_id`` is its
    current state."""

    alert_id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="Deterministic id of the alert: 32 hex digits of BLAKE2b-128 over uscc|rule|window_start. "
                    "Reprocessing the same data gives the same id; every message about the alert carries it.",
        examples=["5976473f7e8f7a6520e95e7f84f73e3b"])
    uscc: Uscc
    enterprise_name: str = Field(
        description="Registered name from the latest registry event; empty when none was received yet.",
        examples=["东莞市明腾塑料制品有限公司"])
    industry: str = Field(
        pattern=r"^([A-T](\d{2})?)?$",
        description="GB/T 4754-2017 industry code (section letter, optionally the 2-digit division); "
                    "empty when unknown.", examples=["C39"])
    town: str = Field(description="Town or subdistrict (镇街) of the enterprise; empty when unknown.",
                      examples=["虎门镇"])
    rule: Literal[RULES] = Field(
        description="The rule family that raised the alert (SPEC §4, docs/DETECTION.md). New rules may be "
                    "added: treat an unknown value as a rule you do not act on.")
    severity: Literal[SEVERITIES] = Field(
        description="info < warning < critical. It rises while the alert is open and never falls.")
    status: Literal[ALERT_STATUSES] = Field(
        description="open: the condition holds; resolved: it cleared (final); withdrawn: later data "
                    "showed it never held (final; drop the alert).")
    window_start: date = Field(
        description="First local day (Asia/Shanghai) of the data period the alert is about. Never moves "
                    "while the alert lasts.", examples=["2024-05-06"])
    window_end: date = Field(
        description="Last local day of the data period; grows while the condition lasts.",
        examples=["2024-05-08"])
    detected_at: AwareDatetime = Field(
        description="Event time (not wall-clock time) at which the alert was first detected: the stream's "
                    "watermark when the day that showed it closed. RFC 3339, UTC. The same on every message "
                    "of the alert.", examples=["2024-05-10T16:00:00Z"])
    score: float = Field(ge=0, le=1, description="How far past its threshold the condition is, 0 to 1.",
                         examples=[0.93])
    observed: float = Field(
        description="The value the rule judged. Its unit depends on the rule: utility_drop, utility_spike: "
                    "kWh (electricity) or m3 (water, gas) per day; tax_sales_drop: declared sales in CNY for "
                    "the month; sales_energy_mismatch: declared sales in CNY per kWh (or CNY when there was "
                    "next to no electricity); headcount_drop: insured people; complaint_burst: complaints in "
                    "7 days; tax_zero_streak: consecutive months of zero returns; dormant_entity: days "
                    "without any activity.", examples=[120.0])
    expected: float = Field(
        description="What was expected instead, in the same unit as observed (the enterprise's own normal "
                    "level, last year's month, the peer cohort's level; 0 for the streak and dormancy rules).",
        examples=[2400.0])
    evidence: list[Evidence] = Field(description="The facts behind the alert, most telling first.")
    explanation: Explanation = Field(description="The alert in words, in Chinese and English: what was "
                                                             "observed, what was expected, for which period.")
    schema_version: Literal[SCHEMA_VERSION] = Field(description="Version of this contract (the major version).")


class Risk(_Message):
    """An enterprise's risk score on ``monitor.risk`` (key: the USCC; compacted, so the topic
    keeps the latest score of every enterprise)."""

    uscc: Uscc
    score: float = Field(
        ge=0, le=100, json_schema_extra=_unit("points"),
        description="Risk score 0-100 from the enterprise's findings (weight by rule and severity; a "
                    "resolved finding's weight halves every 30 days of event time). 60 or more puts the "
                    "enterprise on the supervision list.", examples=[67.5])
    level: Literal[RISK_LEVELS] = Field(
        description="none (0), low (< 30), medium (< 60), high (>= 60: on the supervision list).")
    rules: list[Literal[RULES]] = Field(
        description="The rules contributing to the score, the largest contribution first.",
        examples=[["utility_drop", "tax_zero_streak"]])
    updated_at: AwareDatetime = Field(
        description="Event time at which the score was computed (RFC 3339, UTC); decay is relative to it.",
        examples=["2024-06-01T16:00:00Z"])
    schema_version: Literal[SCHEMA_VERSION] = Field(description="Version of this contract (the major version).")


class CaseEvent(_Message):
    """One action of the monitoring centre on an alert's case, on ``monitor.cases`` (key: the
    enterprise's USCC), published by the console through its outbox: at least once, with a
    stable ``event_id`` (a subscriber drops one it has seen)."""

    schema_version: Literal[cloudevents.CASE_VERSION] = Field(description="Version of this contract.")
    event_id: str = Field(min_length=1, max_length=64,
                          description="Id of this case event: the same on a re-send; de-duplicate on it.",
                          examples=["0f8fad5b-d9cb-469f-a165-70867728950e"])
    case_id: str = Field(min_length=1, max_length=64, description="The case: one per alert.",
                         examples=["5976473f7e8f7a6520e95e7f84f73e3b"])
    alert_id: str = Field(min_length=1, max_length=64, description="The alert the case is about (monitor.alerts).",
                          examples=["5976473f7e8f7a6520e95e7f84f73e3b"])
    uscc: Uscc
    rule: Literal[RULES] | None = Field(description="The alert's rule (null if unknown to the console).")
    version: int = Field(ge=1, description="The case's version after this action: 1, 2, 3, … per case.",
                         examples=[3])
    action: Literal[CASE_ACTIONS] = Field(
        description="acknowledge, assign (to a town office or a person), note, due (a due date set), resolve; "
                    "on a case resolved as explained: mute (its rule for this enterprise, until muted_until) and "
                    "unmute (the mute lifted before its end).")
    actor: str = Field(min_length=1, max_length=64, description="The user who acted (the console's user name).",
                       examples=["zhang.wei"])
    at: AwareDatetime = Field(description="When the action was taken (wall clock of the console, RFC 3339).",
                              examples=["2024-06-01T08:30:00+00:00"])
    state: Literal[CASE_STATES] = Field(description="The case's state after the action.")
    assignee: str | None = Field(description="Who the case is assigned to, if anyone.", examples=["虎门镇市场监管分局"])
    outcome: Literal[CASE_OUTCOMES] | None = Field(
        description="With resolve: confirmed (a violation), explained (e.g. a seasonal stop or relocation), "
                    "false_alarm.")
    due_on: date | None = Field(description="The due date, if one is set (YYYY-MM-DD).", examples=["2024-06-15"])
    note: str | None = Field(max_length=2000, description="The note of a note action, personal data masked as in "
                             "complaint text.",
                             examples=["已电话联系企业"])
    muted_until: date | None = Field(
        None, description="With mute: the last local day (Asia/Shanghai) on which the console hides this rule's "
                          "alerts for this enterprise; null with unmute.  Absent from the other actions.",
        examples=["2025-03-31"])


class DeadLetterHeaders(_Message):
    """The Kafka headers of a ``monitor.deadletter`` message, as UTF-8 text.  The message's
    key and value are the rejected message's own, byte for byte, and its original headers
    come first; these headers say where it came from and why it was rejected."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    stage: Literal[DEADLETTER_STAGES] = Field(
        alias="entwatch.stage",
        description="decode: the bytes are not a JSON object; validate: the object breaks the input contract "
                    "(SPEC §2); sink: storage refused a row made from a valid event (the value is then that row "
                    "as JSON, and entwatch.table names its table).")
    reason: str = Field(
        alias="entwatch.reason", pattern=r"^[a-z0-9_]{1,64}$",
        description="Reason code, from a small fixed set also used as a metric label: oversize, invalid_json, "
                    "not_an_object, unknown_kind, wrong_topic, wrong_key (the message key is not the event's uscc, or "
                    "missing), unsupported_schema_version, "
                    "future_event_time, missing_<field>, invalid_<field>, unstorable.",
        examples=["invalid_json", "invalid_uscc", "missing_period"])
    detail: str = Field(alias="entwatch.detail", max_length=300,
                        description="What is wrong, for a person (at most 300 characters).",
                        examples=["readings.3.amount: must be a finite number >= 0"])
    topic: str | None = Field(None, alias="entwatch.topic",
                              description="The topic the rejected message was read from (decode, validate).",
                              examples=["enterprise.utility"])
    partition: str | None = Field(None, alias="entwatch.partition", pattern=r"^\d+$",
                                  description="Its partition, a decimal number (decode, validate).", examples=["3"])
    offset: str | None = Field(None, alias="entwatch.offset", pattern=r"^\d+$",
                               description="Its offset in that partition, a decimal number (decode, validate).",
                               examples=["1044"])
    table: str | None = Field(None, alias="entwatch.table",
                              description="The storage table that refused the row (sink).", examples=["events"])
    sha256: str | None = Field(None, alias="entwatch.sha256", pattern=r"^[0-9a-f]{64}$",
                               description="SHA-256 (hex) of the full original value (of the refused row's JSON "
                                           "for sink), also when the value here was cut.",
                               examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
    truncated: str | None = Field(None, alias="entwatch.truncated", pattern=r"^\d+$",
                                  description="Present when the value was cut to fit the broker: the original size in "
                                              "bytes. Read the original from topic/partition/offset.",
                                  examples=["8912345"])
    headers_dropped: str | None = Field(None, alias="entwatch.headers_dropped", pattern=r"^\d+$",
                                        description="Present when the original headers were too large to keep: how "
                                                    "many were left out.", examples=["3"])


class CloudEventHeaders(_Message):
    """The CloudEvents 1.0 attributes of a message entwatch publishes (Kafka protocol binding,
    binary mode: the value is the plain body, the attributes are headers, as UTF-8 text)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    specversion: Literal[cloudevents.SPECVERSION] = Field(alias="ce_specversion",
                                                          description="CloudEvents version.")
    id: str = Field(alias="ce_id", min_length=1,
                    description="Stable id: <alert_id>-<revision> (alerts), <uscc>-<revision> (risk), "
                                "<topic>-<partition>-<offset> of the rejected message (dead letters). A message "
                                "delivered twice carries the same id: de-duplicate on it.",
                    examples=["5976473f7e8f7a6520e95e7f84f73e3b-7"])
    source: str = Field(alias="ce_source", min_length=1, description="The entwatch deployment: /<ENTWATCH_APP_ID>.",
                        examples=["/entwatch"])
    type: Literal[cloudevents.TYPES] = Field(alias="ce_type", description="What happened; route on it.")
    time: AwareDatetime = Field(
        alias="ce_time", description="Event time the message is about (an alert's detected_at, a risk "
                                     "record's updated_at, a dead letter's Kafka timestamp), RFC 3339.",
        examples=["2024-05-10T16:00:00Z"])
    subject: str = Field(alias="ce_subject", min_length=1,
                         description="The USCC (alerts, risk) or the rejected message's topic (dead letters).",
                         examples=["914403001922038216"])
    content_type: Literal[cloudevents.CONTENT_TYPE, cloudevents.DEADLETTER_CONTENT_TYPE] = Field(
        alias="content-type", description="Media type of the value: JSON, or the rejected bytes as they came.")
    dataschema: str | None = Field(
        None, alias="ce_dataschema", pattern=r"^https://",
        description="$id of the JSON Schema of the value (deploy/schemas/<name>.v<N>.json); absent on dead "
                    "letters.", examples=["https://entwatch.cn/schemas/alert.v1.json"])
    sequence: str | None = Field(
        None, alias="ce_sequence", pattern=rf"^\d{{{cloudevents.SEQUENCE_DIGITS}}}$",
        description="CloudEvents sequence extension: the enterprise's message revision, zero-padded to 20 "
                    "digits. Of two messages about the same alert, the larger sequence is the later state.",
        examples=["00000000000000000007"])


ALERT_EXAMPLE = {
    "alert_id": "5976473f7e8f7a6520e95e7f84f73e3b", "uscc": "914403001922038216",
    "enterprise_name": "东莞市明腾塑料制品有限公司", "industry": "C29", "town": "虎门镇",
    "rule": "utility_drop", "severity": "warning", "status": "open",
    "window_start": "2024-05-06", "window_end": "2024-05-08", "detected_at": "2024-05-10T16:00:00Z",
    "score": 0.93, "observed": 120.0, "expected": 2400.0,
    "evidence": [{"source": "utility", "metric": "electricity_kWh_per_day", "period": "2024-05-06/2024-05-08",
                  "value": 120.0, "baseline": 2400.0}],
    "explanation": EXPLANATION_EXAMPLE,
    "schema_version": SCHEMA_VERSION,
}
RISK_EXAMPLE = {"uscc": "914403001922038216", "score": 67.5, "level": "high", "rules": ["utility_drop"],
                "updated_at": "2024-06-01T16:00:00Z", "schema_version": SCHEMA_VERSION}
CASE_EXAMPLE = {"schema_version": 1, "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                "case_id": "5976473f7e8f7a6520e95e7f84f73e3b", "alert_id": "5976473f7e8f7a6520e95e7f84f73e3b",
                "uscc": "914403001922038216", "rule": "utility_drop", "version": 4, "action": "resolve",
                "actor": "zhang.wei", "at": "2024-06-01T08:30:00+00:00", "state": "resolved",
                "assignee": "虎门镇市场监管分局", "outcome": "explained", "due_on": "2024-06-15", "note": None}
DEADLETTER_EXAMPLE = {"entwatch.stage": "validate", "entwatch.reason": "invalid_uscc",
                      "entwatch.detail": "uscc: check digit mismatch: expected 6, got 7", "entwatch.topic": "enterprise.tax",
                      "entwatch.partition": "2", "entwatch.offset": "41",
                      "entwatch.sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
CLOUDEVENTS_EXAMPLE = {"ce_specversion": "1.0", "ce_id": "5976473f7e8f7a6520e95e7f84f73e3b-7",
                       "ce_source": "/entwatch", "ce_type": "cn.entwatch.alert.opened",
                       "ce_time": "2024-05-10T16:00:00Z", "ce_subject": "914403001922038216",
                       "content-type": "application/json",
                       "ce_dataschema": "https://entwatch.cn/schemas/alert.v1.json",
                       "ce_sequence": "00000000000000000007"}
