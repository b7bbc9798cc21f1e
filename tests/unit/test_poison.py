"""Poison messages in one batch (no broker): a message keyed by another enterprise, an
event with unknown fields, a dead letter too large for the broker — each is handled and
the rest of the batch goes on."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from streams.pipeline import DEADLETTER_MAX_BYTES, BatchProcessor, DictStates, Message, deadletter_record
from streams.contracts import Rejection

USCC = "914403001922038216"
OTHER = "91440300MA5D12345W"
KIND_BY_TOPIC = {f"enterprise.{k}": k for k in ("registry", "utility", "tax", "social", "complaint")}


def tax(offset: int, key: bytes | None = USCC.encode(), **extra) -> Message:
    body = {"kind": "tax", "event_id": f"t-{offset}", "uscc": USCC, "source": "tax-bureau",
            "event_time": "2024-03-10T09:00:00+08:00", "schema_version": 1, "period": "2024-02",
            "declared_sales_cny": 100.0, "tax_paid_cny": 3.0, **extra}
    return Message("enterprise.tax", 0, offset, key, orjson.dumps(body), 1710032400.0)


def process(*messages: Message):
    return BatchProcessor(KIND_BY_TOPIC).process(list(messages), DictStates())


def test_a_message_keyed_by_another_enterprise_is_dead_lettered_as_wrong_key():
    result = process(tax(1), tax(2, key=OTHER.encode()), tax(3))
    assert [(m.offset, r.reason, r.detail) for m, r in result.deadletters] == [
        (2, "wrong_key", "the message key is not the event's uscc")]
    assert [r["event_id"] for r in result.rows["events"]] == ["t-1", "t-3"]
    assert result.rows["deadletters"][0]["reason"] == "wrong_key"


def test_a_message_without_a_key_is_dead_lettered_as_wrong_key():
    (message, rejection), = process(tax(1, key=None)).deadletters
    assert (rejection.stage, rejection.reason) == ("validate", "wrong_key")
    assert "no key" in rejection.detail


def test_an_invalid_message_keeps_its_own_reason_whatever_its_key():
    bad = Message("enterprise.tax", 0, 1, b"k", b"[]", 0.0)
    assert [r.reason for _, r in process(bad).deadletters] == ["not_an_object"]


def test_the_stored_payload_is_the_validated_event_without_unknown_fields():
    result = process(tax(1, legal_rep_id="440301199001011234", note="补报"))
    payload = orjson.loads(result.rows["events"][0]["payload"])
    assert "legal_rep_id" not in payload and "note" not in payload
    assert payload["declared_sales_cny"] == 100.0 and payload["uscc"] == USCC


def letter(size: int, headers=(), key: bytes | None = b"k") -> Message:
    return Message("enterprise.utility", 2, 9, key, b"{" + b"x" * (size - 1), 0.0, tuple(headers))


OVERSIZE = Rejection("decode", "oversize", "9000000 bytes exceeds the limit of 4194304")


def size_of(key, value, headers) -> int:
    return len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)


def test_a_dead_letter_that_fits_keeps_its_bytes_and_carries_their_digest():
    message = letter(500_000, headers=[("traceparent", b"00-abc")])  # oversize for a small input limit: still fits
    key, value, headers = deadletter_record(message, OVERSIZE)
    assert (key, value) == (b"k", message.value)
    assert headers[0] == ("traceparent", b"00-abc")
    assert dict(headers)["entwatch.sha256"] == hashlib.sha256(message.value).hexdigest().encode()
    assert "entwatch.truncated" not in dict(headers)


@pytest.mark.parametrize("limit", [DEADLETTER_MAX_BYTES, 20_000])
def test_a_dead_letter_too_large_for_the_broker_is_cut_with_its_size_and_digest(limit):
    message = letter(9_000_000)
    key, value, headers = deadletter_record(message, OVERSIZE, limit)
    assert limit - 1000 < size_of(key, value, headers) <= limit
    assert message.value.startswith(value)
    assert dict(headers)["entwatch.truncated"] == b"9000000"
    assert dict(headers)["entwatch.sha256"] == hashlib.sha256(message.value).hexdigest().encode()
    assert dict(headers)["entwatch.reason"] == b"oversize" and dict(headers)["entwatch.offset"] == b"9"


def test_huge_original_headers_and_key_are_cut_too():
    message = letter(10, headers=[("h", b"y" * 800_000)], key=b"K" * 900_000)
    key, value, headers = deadletter_record(message, OVERSIZE)
    assert size_of(key, value, headers) <= DEADLETTER_MAX_BYTES
    assert dict(headers)["entwatch.headers_dropped"] == b"1" and "h" not in dict(headers)
    assert key == b"K" * len(key)


def test_a_tombstone_dead_letter_stays_a_tombstone():
    message = Message("enterprise.tax", 0, 1, b"k", None, 0.0)
    key, value, headers = deadletter_record(message, Rejection("decode", "invalid_json", "empty"), 4096)
    assert (key, value) == (b"k", None) and "entwatch.sha256" not in dict(headers)
