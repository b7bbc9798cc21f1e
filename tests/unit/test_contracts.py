"""Input contract v1 (SPEC §2): one valid example per kind, one rejection per rule."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from streams.contracts import (Complaint, Registry, Rejection, Social, Tax, Utility, decode_event, event_to_json,
                               validate_event)

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
COMMON = {"event_id": "ev-1", "uscc": "914403001922038216", "source": "dept-system",
          "event_time": "2024-03-10T09:00:00+08:00", "schema_version": 1}
READING = {"start": "2024-03-09T00:00:00+08:00", "end": "2024-03-10T00:00:00+08:00",
           "amount": 1234.5, "estimated": False}
VALID = {
    "registry": {"kind": "registry", "name": "东莞示范制造有限公司", "industry": "C39", "town": "长安镇",
                 "registered_capital_cny": 5_000_000, "established_on": "2015-03-01", "status": "active",
                 "key_enterprise": True},
    "utility": {"kind": "utility", "utility": "electricity", "unit": "kWh", "meter_id": "m-1",
                "readings": [READING]},
    "tax": {"kind": "tax", "period": "2024-02", "declared_sales_cny": 120000.0, "tax_paid_cny": 3600.0},
    "social": {"kind": "social", "period": "2024-02", "insured_headcount": 57, "contributions_cny": 61000.0},
    "complaint": {"kind": "complaint", "complaint_id": "c-1", "category": "product_quality",
                  "channel": "12315_hotline", "text": "产品有质量问题"},
}


def event(kind_: str, /, **changes) -> dict:
    """A valid event of ``kind_`` with ``changes`` applied (a value of ... removes the field)."""
    obj = {**COMMON, **VALID[kind_], **changes}
    return {k: v for k, v in obj.items() if v is not ...}


def reading(**changes) -> dict:
    return {**READING, **changes}


def reason(obj, **kw) -> str:
    result = validate_event(obj, now=NOW, **kw)
    assert isinstance(result, Rejection), f"accepted: {result!r}"
    return result.reason


@pytest.mark.parametrize("kind, model", [("registry", Registry), ("utility", Utility), ("tax", Tax),
                                         ("social", Social), ("complaint", Complaint)],
                         ids=["registry", "utility", "tax", "social", "complaint"])
def test_a_valid_event_of_each_kind_decodes_to_its_model(kind, model):
    ev = decode_event(orjson.dumps(event(kind)), topic_kind=kind, now=NOW)
    assert type(ev) is model and ev.kind == kind and ev.uscc == COMMON["uscc"]


INVALID = [
    # the fields every event carries
    ("bad-check-digit", event("tax", uscc="914403001922038217"), "invalid_uscc"),
    ("uscc-17-chars", event("tax", uscc="91440300192203821"), "invalid_uscc"),
    ("uscc-missing", event("tax", uscc=...), "missing_uscc"),
    ("event-id-empty", event("tax", event_id=""), "invalid_event_id"),
    ("event-id-65-chars", event("tax", event_id="e" * 65), "invalid_event_id"),
    ("event-id-missing", event("tax", event_id=...), "missing_event_id"),
    ("source-empty", event("tax", source=""), "invalid_source"),
    ("source-65-chars", event("tax", source="s" * 65), "invalid_source"),
    ("event-time-naive", event("tax", event_time="2024-03-10T09:00:00"), "invalid_event_time"),
    ("event-time-date-only", event("tax", event_time="2024-03-10"), "invalid_event_time"),
    ("event-time-number", event("tax", event_time=1710032400), "invalid_event_time"),
    ("event-time-future", event("tax", event_time="2024-03-11T12:00:01Z"), "future_event_time"),
    ("schema-version-2", event("tax", schema_version=2), "unsupported_schema_version"),
    ("schema-version-string", event("tax", schema_version="1"), "unsupported_schema_version"),
    ("schema-version-missing", event("tax", schema_version=...), "missing_schema_version"),
    ("kind-unknown", event("tax", kind="invoice"), "unknown_kind"),
    ("kind-missing", event("tax", kind=...), "unknown_kind"),
    # utility
    ("water-in-kwh", event("utility", utility="water", unit="kWh"), "invalid_unit"),
    ("electricity-in-m3", event("utility", utility="electricity", unit="m3"), "invalid_unit"),
    ("utility-unknown", event("utility", utility="steam"), "invalid_utility"),
    ("no-readings", event("utility", readings=[]), "invalid_readings"),
    ("10001-readings", event("utility", readings=[READING] * 10_001), "invalid_readings"),
    ("end-equals-start", event("utility", readings=[reading(end=READING["start"])]), "invalid_readings"),
    ("span-over-31-days", event("utility", readings=[reading(start="2024-02-07T23:59:59+08:00")]),
     "invalid_readings"),
    ("negative-amount", event("utility", readings=[reading(amount=-0.1)]), "invalid_readings"),
    ("amount-nan-string", event("utility", readings=[reading(amount="NaN")]), "invalid_readings"),
    ("amount-infinity-string", event("utility", readings=[reading(amount="Infinity")]), "invalid_readings"),
    ("amount-infinity-float", event("utility", readings=[reading(amount=float("inf"))]), "invalid_readings"),
    ("amount-nan-float", event("utility", readings=[reading(amount=float("nan"))]), "invalid_readings"),
    ("reading-naive-start", event("utility", readings=[reading(start="2024-03-09T00:00:00")]),
     "invalid_readings"),
    # registry
    ("industry-lowercase", event("registry", industry="c39"), "invalid_industry"),
    ("industry-one-digit", event("registry", industry="C3"), "invalid_industry"),
    ("industry-no-such-section", event("registry", industry="Z99"), "invalid_industry"),
    ("status-unknown", event("registry", status="closed"), "invalid_status"),
    ("capital-negative", event("registry", registered_capital_cny=-1), "invalid_registered_capital_cny"),
    ("established-not-a-date", event("registry", established_on="2015-13-01"), "invalid_established_on"),
    # tax
    ("period-month-13", event("tax", period="2024-13"), "invalid_period"),
    ("period-one-digit-month", event("tax", period="2024-1"), "invalid_period"),
    ("period-missing", event("tax", period=...), "missing_period"),
    ("sales-negative", event("tax", declared_sales_cny=-5.0), "invalid_declared_sales_cny"),
    ("tax-nan-string", event("tax", tax_paid_cny="NaN"), "invalid_tax_paid_cny"),
    # social
    ("headcount-negative", event("social", insured_headcount=-1), "invalid_insured_headcount"),
    ("headcount-3.5", event("social", insured_headcount=3.5), "invalid_insured_headcount"),
    ("contributions-negative", event("social", contributions_cny=-1.0), "invalid_contributions_cny"),
    # complaint
    ("category-unknown", event("complaint", category="noise"), "invalid_category"),
    ("channel-unknown", event("complaint", channel="wechat"), "invalid_channel"),
    ("text-5001-chars", event("complaint", text="字" * 5001), "invalid_text"),
]


@pytest.mark.parametrize("obj, expected", [(o, r) for _, o, r in INVALID], ids=[i for i, _, _ in INVALID])
def test_an_event_breaking_a_rule_is_rejected_with_its_reason(obj, expected):
    assert reason(obj) == expected


@pytest.mark.parametrize("obj", [event("tax", event_time="2024-03-11T12:00:00Z"),
                                 event("tax", event_time="2024-03-11T20:00:00+08:00")],
                         ids=["utc", "cst"])
def test_an_event_time_exactly_one_day_ahead_is_accepted(obj):
    assert isinstance(validate_event(obj, now=NOW), Tax)


def test_a_future_event_time_is_rejected_at_the_validate_stage():
    assert validate_event(event("tax", event_time="2024-03-12T00:00:00Z"), now=NOW).stage == "validate"


@pytest.mark.parametrize("obj", [event("utility", readings=[READING] * 10_000),
                                 event("utility", readings=[reading(start="2024-02-08T00:00:00+08:00",
                                                                    end="2024-03-10T00:00:00+08:00")]),
                                 event("utility", utility="gas", unit="m3"),
                                 event("utility", readings=[reading(amount=0)])],
                         ids=["10000-readings", "31-day-span", "gas-in-m3", "zero-amount"])
def test_utility_uploads_at_the_limits_are_accepted(obj):
    assert isinstance(validate_event(obj, now=NOW), Utility)


@pytest.mark.parametrize("industry", ["C39", "C", "A01", "T"])
def test_industry_is_a_section_letter_with_an_optional_division(industry):
    assert validate_event(event("registry", industry=industry), now=NOW).industry == industry


def test_key_enterprise_defaults_to_false():
    assert validate_event(event("registry", key_enterprise=...), now=NOW).key_enterprise is False


@pytest.mark.parametrize("sales, paid, zero", [(0, 0, True), (0.0, 12.5, False), (100.0, 0, False)])
def test_a_tax_return_with_both_amounts_zero_is_a_zero_return(sales, paid, zero):
    ev = validate_event(event("tax", declared_sales_cny=sales, tax_paid_cny=paid), now=NOW)
    assert ev.is_zero_return is zero


def test_complaint_text_of_5000_chars_is_accepted():
    assert len(validate_event(event("complaint", text="字" * 5000), now=NOW).text) == 5000


def test_complaint_text_is_masked_in_the_model():
    ev = validate_event(event("complaint", text="我的手机13800138000，身份证44030119900101123X"), now=NOW)
    assert ev.text == "我的手机138****8000，身份证440301********123X"


def test_unknown_extra_fields_are_ignored():
    ev = validate_event(event("tax", department_note="补报", extra={"a": 1}), now=NOW)
    assert isinstance(ev, Tax) and not hasattr(ev, "department_note")


def test_an_event_on_another_kinds_topic_is_wrong_topic():
    assert reason(event("tax"), topic_kind="social") == "wrong_topic"


@pytest.mark.parametrize(
    "raw, expected",
    [(b"{not json", "invalid_json"),
     ('{"kind": "tax"}'.encode("utf-16"), "invalid_json"),
     (b'{"kind": "tax", "event_id": "\xff\xfe"}', "invalid_json"),
     (b'{"amount": NaN}', "invalid_json"),
     (b'{"amount": 1e400}', "invalid_json"),
     (b"", "invalid_json"),
     (None, "invalid_json"),
     (b"[1, 2]", "not_an_object"),
     (b'"tax"', "not_an_object")],
    ids=["garbage", "utf-16", "non-utf8-bytes", "nan-literal", "overflow-to-infinity", "empty", "tombstone",
         "array", "string"],
)
def test_bytes_that_are_not_a_json_object_are_rejected_at_the_decode_stage(raw, expected):
    result = decode_event(raw, now=NOW)
    assert (result.stage, result.reason) == ("decode", expected)


def test_a_message_over_max_bytes_is_oversize():
    raw = orjson.dumps(event("complaint", text="字" * 400))
    assert decode_event(raw, max_bytes=len(raw) - 1, now=NOW).reason == "oversize"
    assert isinstance(decode_event(raw, max_bytes=len(raw), now=NOW), Complaint)


@pytest.mark.parametrize("when", ["1710032400", "2024-03-10T09:00:00+0800"], ids=["unix-seconds", "offset-no-colon"])
def test_event_time_must_be_rfc3339_with_offset(when):
    assert reason(event("tax", event_time=when)) == "invalid_event_time"


@pytest.mark.parametrize("obj, expected", [
    (event("tax", declared_sales_cny=True), "invalid_declared_sales_cny"),
    (event("tax", declared_sales_cny="120000"), "invalid_declared_sales_cny"),
    (event("registry", key_enterprise="yes"), "invalid_key_enterprise"),
], ids=["bool-amount", "string-amount", "yes-as-bool"])
def test_values_of_the_wrong_json_type_are_rejected(obj, expected):
    assert reason(obj) == expected


def test_readings_with_times_seen_before_are_checked_as_fully_as_new_ones():
    """Parsed (start, end) pairs are cached by their text: a cached pair must not let a bad
    amount through, and a bad pair must be refused every time, not only the first."""
    backwards = reading(start="2024-03-10T00:00:00+08:00", end="2024-03-09T00:00:00+08:00")
    for _ in range(2):
        assert isinstance(validate_event(event("utility", readings=[reading()]), now=NOW), Utility)
        result = validate_event(event("utility", readings=[reading(), reading(amount=-1)]), now=NOW)
        assert isinstance(result, Rejection) and result.detail.startswith("readings.1.amount")
        result = validate_event(event("utility", readings=[backwards]), now=NOW)
        assert isinstance(result, Rejection) and "readings.0: end must be after start" in result.detail
        result = validate_event(event("utility", readings=[reading(start=["x"])]), now=NOW)
        assert isinstance(result, Rejection) and result.detail.startswith("readings.0.start")


# Input limits: what ClickHouse storage holds (docs/CONTRACT.md)
OUT_OF_RANGE = [
    ("headcount-2^32", event("social", insured_headcount=2**32), "invalid_insured_headcount"),
    ("headcount-2^40", event("social", insured_headcount=2**40), "invalid_insured_headcount"),
    ("event-time-1900", event("tax", event_time="1900-01-01T00:00:00+08:00"), "invalid_event_time"),
    ("event-time-1970-01-01", event("tax", event_time="1970-01-01T12:00:00Z"), "invalid_event_time"),
    ("event-time-year-1", event("tax", event_time="0001-01-01T00:00:00+08:00"), "invalid_event_time"),
    ("reading-start-1969", event("utility", readings=[reading(start="1969-12-31T23:00:00Z",
                                                              end="1970-01-03T00:00:00Z")]), "invalid_readings"),
    ("reading-end-2106", event("utility", readings=[reading(start="2105-12-30T00:00:00Z",
                                                            end="2106-01-01T00:00:00Z")]), "invalid_readings"),
    ("reading-amount-over-1e15", event("utility", readings=[reading(amount=1.5e15)]), "invalid_readings"),
    ("established-1799", event("registry", established_on="1799-12-31"), "invalid_established_on"),
    ("established-2106", event("registry", established_on="2106-01-01"), "invalid_established_on"),
    ("established-year-1", event("registry", established_on="0001-01-01"), "invalid_established_on"),
    ("established-a-number", event("registry", established_on=0), "invalid_established_on"),
    ("established-unix-seconds-text", event("registry", established_on="1420070400"), "invalid_established_on"),
    ("established-with-a-time", event("registry", established_on="2015-03-01T00:00:00"), "invalid_established_on"),
    ("period-1969", event("tax", period="1969-12"), "invalid_period"),
    ("period-2106", event("social", period="2106-01"), "invalid_period"),
    ("capital-over-1e15", event("registry", registered_capital_cny=1e16), "invalid_registered_capital_cny"),
    ("sales-10^30", event("tax", declared_sales_cny=10**30), "invalid_declared_sales_cny"),
    ("contributions-over-1e15", event("social", contributions_cny=2e15), "invalid_contributions_cny"),
]


@pytest.mark.parametrize("obj, expected", [(o, r) for _, o, r in OUT_OF_RANGE], ids=[i for i, _, _ in OUT_OF_RANGE])
def test_a_value_storage_cannot_hold_is_rejected_with_its_field(obj, expected):
    assert reason(obj) == expected


AT_THE_LIMITS = [
    ("headcount-uint32-max", event("social", insured_headcount=2**32 - 1)),
    ("event-time-1970-01-02", event("tax", event_time="1970-01-02T00:00:00Z")),
    ("reading-in-2105", event("utility", readings=[reading(start="2105-12-30T00:00:00Z",
                                                           end="2105-12-31T00:00:00Z")])),
    ("reading-amount-1e15", event("utility", readings=[reading(amount=1e15)])),
    ("established-1970-01-01", event("registry", established_on="1970-01-01")),
    ("established-1958-03-01", event("registry", established_on="1958-03-01")),  # older than a 18.16 Date
    ("established-1800-01-01", event("registry", established_on="1800-01-01")),
    ("established-2105-12-31", event("registry", established_on="2105-12-31")),
    ("period-1970-01", event("tax", period="1970-01")),
    ("period-2105-12", event("social", period="2105-12")),
    ("capital-1e15", event("registry", registered_capital_cny=1e15)),
]


@pytest.mark.parametrize("obj", [o for _, o in AT_THE_LIMITS], ids=[i for i, _ in AT_THE_LIMITS])
def test_values_at_the_storage_limits_are_accepted(obj):
    assert not isinstance(validate_event(obj, now=NOW), Rejection)


def test_an_out_of_range_detail_names_the_limit():
    result = validate_event(event("social", insured_headcount=2**40), now=NOW)
    assert result.detail == "insured_headcount: Input should be less than or equal to 4294967295"
    result = validate_event(event("tax", event_time="1900-01-01T00:00:00+08:00"), now=NOW)
    assert "1970-01-02T00:00:00Z" in result.detail and "1900" not in result.detail


# A rejection's detail names the field and the rule, never the value sent (it may be personal data).
PHONE = "13800138000"
POISONS = [PHONE, f"x{PHONE}x" * 20, {"n": PHONE}, [PHONE], f"{PHONE}-01-01T00:00:00Z"]
FIELDS = sorted({(kind, f) for kind, body in VALID.items() for f in {**COMMON, **body}})


@pytest.mark.parametrize("kind, field", FIELDS, ids=[f"{k}.{f}" for k, f in FIELDS])
def test_a_rejection_never_echoes_the_value_sent(kind, field):
    for poison in POISONS:
        result = validate_event(event(kind, **{field: poison}), now=NOW)
        if isinstance(result, Rejection):
            assert PHONE not in result.detail and "0013" not in result.detail, result
            assert field in result.detail or result.reason in ("unknown_kind", "unsupported_schema_version")


@pytest.mark.parametrize("item", [{"start": PHONE}, {"end": [PHONE]}, {"amount": PHONE}, {"estimated": PHONE},
                                  {"start": f"2024-03-09T00:00:00+{PHONE}"}], ids=["start", "end", "amount",
                                                                                  "estimated", "start-suffix"])
def test_a_reading_rejection_never_echoes_the_value_sent(item):
    result = validate_event(event("utility", readings=[reading(), reading(**item)]), now=NOW)
    assert isinstance(result, Rejection) and result.detail.startswith("readings.1")
    assert PHONE not in result.detail


@pytest.mark.parametrize("raw", [f'{{"kind": "{PHONE}"'.encode(), f'{{"a": {PHONE}x}}'.encode(),
                                 f'["{PHONE}"]'.encode(), f'"{PHONE}"'.encode(), PHONE.encode() + b"\xff"],
                         ids=["truncated", "bad-token", "array", "string", "bad-utf8"])
def test_a_decode_rejection_never_echoes_the_bytes_sent(raw):
    result = decode_event(raw, now=NOW)
    assert isinstance(result, Rejection) and PHONE not in result.detail


def test_a_bad_uscc_detail_names_the_rule_not_the_code():
    detail = validate_event(event("tax", uscc="914403001922038217"), now=NOW).detail
    assert detail == "uscc: check digit mismatch: the 18th character is not the check character of the first 17"
    assert validate_event(event("tax", uscc="9144030019220382I6"), now=NOW).detail.startswith("uscc: character 17 ")


# The stored payload: the validated event re-serialised, known fields only.
@pytest.mark.parametrize("kind", sorted(VALID))
def test_the_payload_is_the_event_again_with_known_fields_only(kind):
    ev = validate_event(event(kind, legal_rep_id="440301199001011234"), now=NOW)
    payload = orjson.loads(event_to_json(ev))
    assert "legal_rep_id" not in payload and set(payload) <= set(type(ev).model_fields)
    assert validate_event(payload, now=NOW) == ev


def test_unknown_fields_inside_readings_are_not_in_the_payload():
    ev = validate_event(event("utility", readings=[reading(reader_phone=PHONE)]), now=NOW)
    assert orjson.loads(event_to_json(ev))["readings"] == [READING]


def test_the_payload_of_a_complaint_and_a_registry_event_is_masked():
    complaint = validate_event(event("complaint", text=f"电话{PHONE}，邮箱wang@qq.com"), now=NOW)
    registry = validate_event(event("registry", name=f"张三五金店（{PHONE}）"), now=NOW)
    assert orjson.loads(event_to_json(complaint))["text"] == "电话138****8000，邮箱w***@qq.com"
    assert orjson.loads(event_to_json(registry))["name"] == "张三五金店（138****8000）"
