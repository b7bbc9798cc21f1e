"""JSON Schemas (draft 2020-12) of every message on every topic, generated from the models.

``entwatch schemas --out DIR`` writes one file per message, named with its major version
(``alert.v1.json``); ``deploy/schemas/`` holds the committed ones, and tests check that
they are what the models generate (no drift) and that they stay backward compatible with
the versions released to subscribers (``deploy/schemas/released/``, ``streams.compat``).

The structure of each schema comes from the pydantic models (``streams.contracts`` for the
five input kinds, ``streams.messages`` for what entwatch publishes); the prose a subscriber
reads about an input field lives in ``INPUT_FIELDS`` below, and a field without it stops
the generator (so a new field cannot go out undocumented).

>>> by_name = {c.name: c for c in CONTRACTS}
>>> s = by_name["tax"].schema()
>>> s["$id"], s["properties"]["declared_sales_cny"]["x-unit"]
('https://entwatch.cn/schemas/tax.v1.json', 'CNY')
>>> sorted(by_name)
['alert', 'case', 'cloudevents-headers', 'complaint', 'deadletter-headers', 'registry', 'risk', 'social', 'tax', 'utility']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from detectors.alerts import SCHEMA_VERSION as OUTPUT_VERSION
from streams import cloudevents, compat, contracts, messages
from streams.cloudevents import schema_id
from streams.errors import UserError

DIALECT = "https://json-schema.org/draft/2020-12/schema"
RELEASED = "released"  # the sub-directory holding the schemas as last released to subscribers

_TIME = ("RFC 3339 date and time with a UTC offset, e.g. 2024-03-01T08:00:00+08:00 "
         "(a time without an offset is rejected).")
INPUT_FIELDS: dict[str, dict] = {  # field -> description, examples, x-unit; "kind.field" for one kind only
    "kind": {"description": "The kind of event; it must match the topic (enterprise.<kind>)."},
    "event_id": {"description": "The sender's id of the event: the idempotency key (the same event_id twice "
                                "counts once). 1-64 characters.", "examples": ["ev-20240302-000123"]},
    "uscc": {"description": messages.USCC_DESCRIPTION + " The check digit must be valid: "
                                                        "check = (31 - sum(value x weight) mod 31) mod 31 "
                                                        "with weights 1,3,9,27,19,26,16,17,20,29,25,13,8,24,10,30,28.",
             "pattern": messages.USCC_PATTERN, "examples": ["914403001922038216"]},
    "source": {"description": "The sending system, 1-64 characters.", "examples": ["dg-tax", "grid"]},
    "event_time": {"description": "When the fact was recorded at the source. " + _TIME + " At most 1 day "
                                  "in the future (by the worker's clock) or the event is dead-lettered.",
                   "examples": ["2024-02-10T09:00:00+08:00"]},
    "schema_version": {"description": "Version of the input contract. Any other value is dead-lettered "
                                      "(unsupported_schema_version)."},
    "name": {"description": "Registered name of the enterprise (1-200 characters).",
             "examples": ["东莞市明腾塑料制品有限公司"]},
    "industry": {"description": "GB/T 4754-2017 industry code: the section letter, optionally followed by the "
                                "2-digit division.", "examples": ["C39", "F"]},
    "town": {"description": "Town or subdistrict (镇街) where the enterprise is registered.", "examples": ["虎门镇"]},
    "registered_capital_cny": {"description": "Registered capital in yuan (CNY), 0 to 1e15.", "x-unit": "CNY",
                               "examples": [5000000.0]},
    "established_on": {"description": "Date of establishment, YYYY-MM-DD, from 1800-01-01 to 2105-12-31.", "examples": ["2015-06-01"]},
    "status": {"description": "Registration status; only active enterprises can be dormant_entity alerts."},
    "key_enterprise": {"description": "A key enterprise of the city (重点企业); false when absent."},
    "utility": {"description": "What the meter measures: electricity in kWh, water or gas in m3."},
    "unit": {"description": "The unit of every reading's amount: kWh for electricity, m3 for water and gas "
                            "(another pairing is rejected)."},
    "meter_id": {"description": "The meter's id at the utility company (1-64 characters).",
                 "examples": ["E-0441-7731"]},
    "readings": {"description": "The upload's readings, 1-10,000 of them: meter systems upload in batches."},
    "period": {"description": "The month the return is about, YYYY-MM. Returns arrive late (the month after); "
                              "the same period again with a later event_time corrects it.",
               "examples": ["2024-01"]},
    "declared_sales_cny": {"description": "Declared sales for the month in yuan (CNY), 0 to 1e15. Sales and "
                                          "tax both 0 make a zero return.", "x-unit": "CNY", "examples": [1250000.0]},
    "tax_paid_cny": {"description": "Tax paid for the month in yuan (CNY), 0 to 1e15.", "x-unit": "CNY",
                     "examples": [16250.0]},
    "insured_headcount": {"description": "People insured by the enterprise that month (an integer, 0 to 4294967295).",
                          "x-unit": "people", "examples": [120]},
    "contributions_cny": {"description": "Social-insurance contributions for the month in yuan (CNY), 0 to 1e15.",
                          "x-unit": "CNY", "examples": [98000.0]},
    "complaint_id": {"description": "The complaint's id at the 12315 platform (1-64 characters).",
                     "examples": ["12315-2024-0000123"]},
    "category": {"description": "What the complaint is about."},
    "channel": {"description": "How the complaint was received."},
    "text": {"description": "The complaint as written, at most 5,000 characters. Mobile numbers and resident "
                            "ID numbers in it are masked before anything is stored or published.",
             "examples": ["买到的电饭煲使用一周后无法加热，商家拒绝退换。"]},
}
READING = {
    "type": "object",
    "description": "One metered amount over [start, end): end after start, at most 31 days apart.",
    "properties": {
        "start": {"type": "string", "format": "date-time", "description": "Start of the metered span. " + _TIME,
                  "examples": ["2024-03-01T00:00:00+08:00"]},
        "end": {"type": "string", "format": "date-time", "description": "End of the span (excluded), after start, "
                                                                       "at most 31 days later. " + _TIME,
                "examples": ["2024-03-01T01:00:00+08:00"]},
        "amount": {"type": "number", "minimum": 0, "maximum": contracts.MAX_AMOUNT,
                   "x-unit": "the upload's unit (kWh or m3)",
                   "description": f"Consumption over the span in the upload's unit; a finite number from 0 to "
                                  f"{contracts.MAX_AMOUNT:g}.",
                   "examples": [12.5]},
        "estimated": {"type": "boolean", "default": False, "description": "An estimated, not a read, amount."},
    },
    "required": ["start", "end", "amount"],
}
_HEADERS_NOTE = ("Kafka header values are bytes; here they are described as the UTF-8 text they hold. "
                 "Other headers may be present and must be ignored.")

_UPLOAD = {"start": "2024-03-01T00:00:00+08:00", "end": "2024-03-01T01:00:00+08:00", "amount": 12.5,
           "estimated": False}
_COMMON = {"uscc": "914403001922038216", "event_time": "2024-03-02T01:00:00+08:00", "schema_version": 1}
INPUT_EXAMPLES = {
    "registry": {"kind": "registry", "event_id": "reg-914403001922038216-1", "source": "dg-amr", **_COMMON,
                 "name": "东莞市明腾塑料制品有限公司", "industry": "C29", "town": "虎门镇",
                 "registered_capital_cny": 5000000.0, "established_on": "2015-06-01", "status": "active",
                 "key_enterprise": False},
    "utility": {"kind": "utility", "event_id": "el-E-0441-7731-20240301", "source": "grid", **_COMMON,
                "utility": "electricity", "unit": "kWh", "meter_id": "E-0441-7731", "readings": [_UPLOAD]},
    "tax": {"kind": "tax", "event_id": "tax-2024-02-914403001922038216", "source": "dg-tax", **_COMMON,
            "period": "2024-02", "declared_sales_cny": 1250000.0, "tax_paid_cny": 16250.0},
    "social": {"kind": "social", "event_id": "soc-2024-02-914403001922038216", "source": "dg-hrss", **_COMMON,
               "period": "2024-02", "insured_headcount": 120, "contributions_cny": 98000.0},
    "complaint": {"kind": "complaint", "event_id": "c-12315-2024-0000123", "source": "12315", **_COMMON,
                  "complaint_id": "12315-2024-0000123", "category": "product_quality", "channel": "12315_hotline",
                  "text": "买到的电饭煲使用一周后无法加热，商家拒绝退换。"},
}
_INPUT_TITLES = {"registry": "Enterprise master data", "utility": "Meter upload", "tax": "Monthly tax return",
                 "social": "Monthly social insurance", "complaint": "Consumer complaint"}
_NOT_IN_SCHEMA = ("Rules a schema cannot say are checked too: the USCC's check digit, an event_time at most "
                  "1 day ahead, readings' end after start and at most 31 days apart, and what storage holds: "
                  "times from 1970-01-02T00:00:00Z to before 2105-12-31T00:00:00Z, dates and periods from 1970 "
                  "to 2105. Unknown extra fields are ignored. A message that breaks any rule goes to "
                  "monitor.deadletter with the reason.")


@dataclass(frozen=True)
class Contract:
    """One message's schema: its file name and how to build it."""

    name: str
    version: int
    title: str
    description: str
    build: Callable[[], dict]

    @property
    def filename(self) -> str:
        return f"{self.name}.v{self.version}.json"

    def schema(self) -> dict:
        """The complete schema document."""
        body = self.build()
        body.pop("title", None)
        body.pop("description", None)
        return {"$schema": DIALECT, "$id": schema_id(self.name, self.version), "title": self.title,
                "description": self.description, **body}

    def text(self) -> str:
        """The schema as committed: indented JSON, UTF-8, one final newline."""
        return json.dumps(self.schema(), indent=2, ensure_ascii=False) + "\n"


def _tidy(node):
    """Drop pydantic's generated titles ("Event Id") and flatten docstrings into one line."""
    if isinstance(node, dict):
        out = {k: _tidy(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
        if isinstance(out.get("description"), str):
            out["description"] = " ".join(out["description"].replace("``", "").split())
        return out
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    return node


def _model(model: type[BaseModel], example: dict, extra: dict | None = None) -> Callable[[], dict]:
    def build() -> dict:
        return {**_tidy(model.model_json_schema(mode="validation")), **(extra or {}), "examples": [example]}
    return build


def _headers(model: type[BaseModel], example: dict, extra: dict | None = None) -> Callable[[], dict]:
    """A schema of Kafka headers: an optional header is absent, never null."""
    def build() -> dict:
        schema = _model(model, example, extra)()
        for prop in schema["properties"].values():
            branches = prop.get("anyOf") or ()
            if len(branches) == 2 and {"type": "null"} in branches:
                prop.update(next(b for b in branches if b != {"type": "null"}))
                del prop["anyOf"]
                prop.pop("default", None)
        return schema
    return build


def _input(kind: str) -> Callable[[], dict]:
    def build() -> dict:
        schema = _tidy(contracts.MODELS[kind].model_json_schema(mode="validation"))
        for name, prop in schema["properties"].items():
            docs = INPUT_FIELDS.get(f"{kind}.{name}") or INPUT_FIELDS.get(name)
            if docs is None:
                raise UserError(f"the {kind} field {name!r} has no description: add it to "
                                "streams.schemas.INPUT_FIELDS")
            if name == "readings":
                prop.update({"type": "array", "minItems": 1, "maxItems": contracts.MAX_READINGS, "items": READING})
            prop.update(docs)
        schema["examples"] = [INPUT_EXAMPLES[kind]]
        return schema
    return build


def _input_contract(kind: str) -> Contract:
    topic = f"enterprise.{kind}"
    doc = " ".join(contracts.MODELS[kind].__doc__.replace("``", "").split())
    return Contract(kind, contracts.SCHEMA_VERSION, f"{_INPUT_TITLES[kind]} ({topic})",
                    f"{doc} What a department sends on {topic}: one JSON object (UTF-8) per Kafka message, "
                    f"message key = the enterprise's USCC (SPEC §2). {_NOT_IN_SCHEMA}", _input(kind))


_JSON_DATA = {"if": {"properties": {"content-type": {"const": "application/json"}}},  # alerts and risk
              "then": {"required": ["ce_dataschema", "ce_sequence"]}}
_SINK_STAGE = {"if": {"properties": {"entwatch.stage": {"enum": ["decode", "validate"]}}},
               "then": {"required": ["entwatch.topic", "entwatch.partition", "entwatch.offset"]}}

CONTRACTS: tuple[Contract, ...] = (
    *(_input_contract(kind) for kind in contracts.KINDS),
    Contract("alert", OUTPUT_VERSION, "Alert (monitor.alerts)",
             "An alert on monitor.alerts (SPEC §5), key = the enterprise's USCC. One message each time an "
             "alert opens, changes (its severity rises, its window grows) or ends (resolved, or withdrawn "
             "when later data showed the condition never held); the latest message of an alert_id is its "
             "current state. Delivery is at least once: see docs/SUBSCRIBING.md.",
             _model(messages.Alert, messages.ALERT_EXAMPLE)),
    Contract("risk", OUTPUT_VERSION, "Risk score (monitor.risk)",
             "An enterprise's risk score on monitor.risk (SPEC §4-5), key = its USCC. The topic is compacted: "
             "it keeps the latest score of every enterprise. Published when findings change the score or "
             "decay moves it by a point.", _model(messages.Risk, messages.RISK_EXAMPLE)),
    Contract("case", cloudevents.CASE_VERSION, "Case event (monitor.cases)",
             "One action of the monitoring centre on an alert's case (SPEC §9), key = the enterprise's USCC, "
             "published by the console through a transactional outbox: at least once, in order per case "
             "(version), with a stable event_id to de-duplicate on.", _model(messages.CaseEvent, messages.CASE_EXAMPLE)),
    Contract("deadletter-headers", messages.DEADLETTER_HEADERS_VERSION, "Dead-letter headers (monitor.deadletter)",
             "The Kafka headers of a message on monitor.deadletter: where a rejected message came from and why. "
             "Its key and value are the rejected message's own, byte for byte (so it can be fixed and sent "
             "again; the value may hold unmasked personal data: restrict the topic), after its original "
             "headers. " + _HEADERS_NOTE,
             _headers(messages.DeadLetterHeaders, messages.DEADLETTER_EXAMPLE, _SINK_STAGE)),
    Contract("cloudevents-headers", messages.CLOUDEVENTS_HEADERS_VERSION, "CloudEvents headers",
             "CloudEvents 1.0 attributes on the messages entwatch publishes on monitor.alerts and monitor.risk "
             "(Kafka protocol binding, binary mode: the value is the plain JSON body, the attributes are "
             "ce_* headers plus content-type), so generic consumers can route and de-duplicate without "
             "parsing the body. Every attribute is a function of the message, so a redelivered message "
             "carries the same headers. " + _HEADERS_NOTE,
             _headers(messages.CloudEventHeaders, messages.CLOUDEVENTS_EXAMPLE, _JSON_DATA)),
)


def generate(out: Path) -> list[Path]:
    """Write every contract's schema into ``out``; refuse a change that breaks a released one."""
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    for contract in CONTRACTS:
        released = out / RELEASED / contract.filename
        if released.exists():
            problems += [f"{contract.filename}: {p}" for p in compat.breaking_changes(
                json.loads(released.read_text()), contract.schema())]
    if problems:
        raise UserError("these changes would break subscribers of a released schema: " + "; ".join(problems)
                        + ". Make them compatible, or raise schema_version (docs/SUBSCRIBING.md)")
    written = []
    for contract in CONTRACTS:
        path = out / contract.filename
        path.write_text(contract.text(), encoding="utf-8")
        written.append(path)
    return written


def drifted(directory: Path) -> list[str]:
    """The committed schema files in ``directory`` that differ from what the models generate."""
    return [c.filename for c in CONTRACTS
            if not (directory / c.filename).exists() or (directory / c.filename).read_text(encoding="utf-8") != c.text()]


def release(directory: Path) -> list[Path]:
    """Copy the current schemas to ``directory/released``: what subscribers have from now on."""
    target = directory / RELEASED
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for contract in CONTRACTS:
        path = target / contract.filename
        path.write_text((directory / contract.filename).read_text(encoding="utf-8"), encoding="utf-8")
        copied.append(path)
    return copied


def add_arguments(p) -> None:
    p.add_argument("--out", default="deploy/schemas", help="directory of the schema files (default deploy/schemas)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 2 if the files in --out differ from what the models generate")
    p.add_argument("--release", action="store_true",
                   help="after writing, copy them to --out/released: the versions later changes must stay "
                        "compatible with")


def command(args) -> int:
    """``entwatch schemas``: write (or check) the JSON Schemas of every message."""
    out = Path(args.out)
    if args.check:
        stale = drifted(out)
        if stale:
            raise UserError(f"{', '.join(stale)} differ from the models: run entwatch schemas --out {out}")
        print(f"{len(CONTRACTS)} schemas in {out} match the models")
        return 0
    for path in generate(out):
        print(path)
    if args.release:
        for path in release(out):
            print(path)
    return 0
