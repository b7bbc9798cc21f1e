"""Poison messages through a real worker (Tansu broker, ``entwatch worker``, clickhouse-server
18.16 and chDB): values storage cannot hold, unknown fields, personal data where it does
not belong, a key that is not the USCC, a message of 8.9 MB.  Each is dead-lettered with
its reason while every other message of the same batch is stored, and no personal data
reaches storage, the dead-letter details or the output topics."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

import pytest
from kafka import KafkaProducer

from streams.masking import mask_pii
from streams.pipeline import DEADLETTER_MAX_BYTES
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.uscc import make_uscc
from tests.conftest import wait_until
from tests.integration.kafka_io import read_topic

pytestmark = pytest.mark.integration

USCC = make_uscc("91441900MA5D0P01N")
OTHER = make_uscc("91441900MA5D0P02N")
PHONE = "13800138000"
COMPLAINTS = [  # personal data as people write it (tests/unit/test_pii_corpus.py has the full corpus)
    f"投诉人手机号{PHONE}，请回电",
    "电话＋８６ １３９－１２３４－５６７８，产品质量差",
    "座机（0769）22123456，邮箱zhangsan@163.com",
    "身份证440301 19900101 1234，要求退款",
    "卡号6222 0212 3456 7890 128被多扣款",
    "老身份证440301900101123，广州020-87654321",
    "QQ邮箱12345678@qq.com，手机 186 2000 1234",
    "身份证４４０３０１１９９００１０１１２３４，已经三次投诉",
]
# What must not be found anywhere it is stored or published (digits and letters only, after NFKC).
SECRETS = ["13800138000", "13912345678", "22123456", "zhangsan", "440301199001011234", "6222021234567890128",
           "440301900101123", "87654321", "12345678qq", "18620001234", "legal_rep"]


def plain(text: str) -> str:
    """``text`` as digits and letters only (NFKC, separators gone), to look for a secret in."""
    return re.sub(r"[^0-9a-z_]", "", unicodedata.normalize("NFKC", text).lower())


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in plain(text)]


def event(kind: str, event_id: str, when: str, uscc: str = USCC, **fields) -> dict:
    return {"kind": kind, "event_id": event_id, "uscc": uscc, "source": "poison-test", "event_time": when,
            "schema_version": 1, **fields}


def upload(event_id: str, day: int, **changes) -> dict:
    readings = [{"start": f"2024-03-{day:02d}T{h:02d}:00:00+08:00", "end": f"2024-03-{day:02d}T{h + 1:02d}:00:00+08:00",
                 "amount": 10.0} for h in range(23)]
    return event("utility", event_id, f"2024-03-{day:02d}T23:30:00+08:00", **{
        "utility": "electricity", "unit": "kWh", "meter_id": "M1", "readings": readings, **changes})


TAX = dict(period="2024-02", declared_sales_cny=1e5, tax_paid_cny=1.3e4)
SOCIAL = dict(period="2024-02", insured_headcount=25, contributions_cny=2.5e4)
REGISTRY = dict(name=f"张三五金店（{PHONE}）", industry="F51", town="长安镇", registered_capital_cny=1e5,
                established_on="2015-06-01", status="active")
COMPLAINT = dict(category="product_quality", channel="12315_hotline")

VALID = [  # (topic kind, key, body)
    ("registry", USCC, event("registry", "reg-1", "2024-02-28T09:00:00+08:00", **REGISTRY)),
    ("tax", USCC, event("tax", "tax-1", "2024-03-01T09:00:00+08:00", legal_rep_id="440301199001011234",
                        legal_rep_phone=PHONE, **TAX)),
    ("social", USCC, event("social", "soc-1", "2024-03-01T09:00:00+08:00", **SOCIAL)),
    *[("complaint", USCC, event("complaint", f"cmp-{i}", f"2024-03-02T{9 + i:02d}:00:00+08:00", complaint_id=f"c-{i}",
                                text=text, **COMPLAINT)) for i, text in enumerate(COMPLAINTS)],
    *[("utility", USCC, upload(f"el-{day}", day)) for day in range(1, 13)],  # the clock closes the complaints day
]
POISON = [  # (topic kind, key, body, reason)
    ("social", USCC, event("social", "soc-huge", "2024-03-01T09:00:00+08:00", **{**SOCIAL, "insured_headcount": 2**40}),
     "invalid_insured_headcount"),
    ("tax", USCC, event("tax", "tax-1900", "1900-01-01T09:00:00+08:00", **TAX), "invalid_event_time"),
    ("registry", USCC, event("registry", "reg-1900", "2024-02-28T09:00:00+08:00",
                             **{**REGISTRY, "established_on": "1799-12-31"}), "invalid_established_on"),
    ("utility", USCC, upload("el-1969", 1, readings=[{"start": "1969-12-31T00:00:00Z", "end": "1970-01-01T00:00:00Z",
                                                      "amount": 1.0}]), "invalid_readings"),
    ("complaint", USCC, event(PHONE, "cmp-kind", "2024-03-02T09:00:00+08:00", complaint_id="c-k", text="x",
                              **COMPLAINT), "unknown_kind"),
    ("complaint", USCC, event("complaint", "cmp-cat", "2024-03-02T09:00:00+08:00", complaint_id="c-c", text="x",
                              **{**COMPLAINT, "category": PHONE}), "invalid_category"),
    ("complaint", USCC, event("complaint", "cmp-id", "2024-03-02T09:00:00+08:00", complaint_id=f"{PHONE}-" * 8,
                              text="x", **COMPLAINT), "invalid_complaint_id"),
    ("tax", OTHER, event("tax", "tax-other-key", "2024-03-01T09:00:00+08:00", **TAX), "wrong_key"),
    ("tax", None, event("tax", "tax-no-key", "2024-03-01T09:00:00+08:00", **TAX), "wrong_key"),
]


def produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    """Send ``(topic, key, value)`` as they are, up to 16 MiB a message (Tansu takes them)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             max_request_size=16 * 1024 * 1024)
    for topic, key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def send_all(broker, settings: Settings, extra: list[tuple[str, bytes | None, bytes]] = ()) -> None:
    """Every message on the broker before the worker starts: its first fetches hold them all."""
    ensure_topics(settings)
    messages = [(settings.topic(kind), key and key.encode(), json.dumps(body, ensure_ascii=False).encode())
                for kind, key, body, *_ in POISON + VALID]
    produce(broker.bootstrap, messages + list(extra))


def test_poison_messages_are_dead_lettered_with_their_reason_and_no_personal_data_is_stored_or_published(
        start_worker, broker):
    settings = Settings(broker_url=broker.url)
    send_all(broker, settings)
    worker = start_worker()

    count = lambda table: worker.scalar(f"SELECT count() FROM {table} FINAL")  # noqa: E731
    wait_until(lambda: count("events") == len(VALID) and count("deadletters") == len(POISON), timeout=120,
               what=f"{len(VALID)} events and {len(POISON)} dead letters stored")
    assert worker.proc.poll() is None, "the worker died"

    stored = worker.query("SELECT reason, detail FROM deadletters FINAL")
    assert sorted(r["reason"] for r in stored) == sorted(p[3] for p in POISON)
    assert [r["detail"] for r in stored if leaked(r["detail"])] == []
    letters = read_topic(broker.bootstrap, settings.topic("deadletter"), len(POISON))
    assert sorted(dict(r.headers)["entwatch.reason"].decode() for r in letters) == sorted(p[3] for p in POISON)
    for letter in letters:  # the original bytes (SPEC §2), headers without the values
        assert letter.value in {json.dumps(p[2], ensure_ascii=False).encode() for p in POISON}
        assert not leaked(" ".join(v.decode() for _, v in letter.headers))

    payloads = worker.query("SELECT kind, event_id, payload FROM events FINAL")
    assert sorted(r["event_id"] for r in payloads) == sorted(v[2]["event_id"] for v in VALID)
    assert [(r["event_id"], leaked(r["payload"])) for r in payloads if leaked(r["payload"])] == []
    tax = next(json.loads(r["payload"]) for r in payloads if r["event_id"] == "tax-1")
    assert tax == {k: v for k, v in VALID[1][2].items() if not k.startswith("legal_rep")}
    texts = worker.query("SELECT complaint_id, text FROM complaints FINAL ORDER BY complaint_id")
    assert [r["text"] for r in texts] == [mask_pii(t) for t in COMPLAINTS]
    assert worker.query("SELECT name FROM enterprises FINAL") == [{"name": "张三五金店（138****8000）"}]
    assert worker.scalar("SELECT max(insured_headcount) FROM social_monthly FINAL") == 25
    assert worker.scalar("SELECT toYear(min(event_time)) FROM tax_monthly FINAL") == 2024

    # Eight complaints in a day open a complaint burst: the alert names the enterprise, masked.
    alerts = read_topic(broker.bootstrap, settings.topic("alerts"), 1)
    risk = read_topic(broker.bootstrap, settings.topic("risk"), 1)
    assert [json.loads(a.value)["rule"] for a in alerts] == ["complaint_burst"]
    assert json.loads(alerts[0].value)["enterprise_name"] == "张三五金店（138****8000）"
    assert risk and [r.value for r in alerts + risk if leaked(r.value.decode())] == []
    metrics = worker.metrics()
    assert 'entwatch_events_deadlettered_total{kind="tax",reason="wrong_key"} 2.0' in metrics
    assert 'entwatch_events_deadlettered_total{kind="social",reason="invalid_insured_headcount"} 1.0' in metrics


@pytest.mark.parametrize("storage_url", ["chdb"], indirect=True)
def test_a_dead_letter_of_nine_megabytes_is_cut_to_fit_the_broker_and_the_worker_goes_on(start_worker, broker,
                                                                                           storage_url):
    """The upload of issue 11: 100,000 readings, 8.9 MB, over the worker's 4 MiB limit and
    over its producer's 8 MiB request size: its dead letter used to kill the worker."""
    settings = Settings(broker_url=broker.url)
    huge = json.dumps(upload("el-huge", 9, readings=[{"start": f"2024-03-09T00:00:{s % 60:02d}+08:00",
                                                      "end": "2024-03-10T00:00:00+08:00", "amount": 0.123456789}
                                                     for s in range(100_000)]), separators=(",", ":")).encode()
    assert 8_500_000 < len(huge) < 9_500_000
    send_all(broker, settings, extra=[(settings.topic("utility"), USCC.encode(), huge)])
    worker = start_worker()

    letters = read_topic(broker.bootstrap, settings.topic("deadletter"), len(POISON) + 1, timeout=120)
    oversize = [r for r in letters if dict(r.headers)["entwatch.reason"] == b"oversize"]
    assert len(oversize) == 1 and len(letters) == len(POISON) + 1
    headers = dict(oversize[0].headers)
    assert headers["entwatch.truncated"] == str(len(huge)).encode()
    assert headers["entwatch.sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert huge.startswith(oversize[0].value) and 900_000 < len(oversize[0].value) <= DEADLETTER_MAX_BYTES
    assert oversize[0].key == USCC.encode()

    wait_until(lambda: worker.scalar("SELECT count() FROM events FINAL") == len(VALID), timeout=120,
               what=f"the {len(VALID)} valid messages stored")
    assert worker.scalar("SELECT count() FROM deadletters FINAL") == len(POISON) + 1
    assert worker.proc.poll() is None, "the worker died"
    # and it goes on: a message sent afterwards is stored too
    produce(broker.bootstrap, [(settings.topic("tax"), USCC.encode(),
                                json.dumps(event("tax", "tax-after", "2024-03-09T09:00:00+08:00", **TAX)).encode())])
    wait_until(lambda: worker.scalar("SELECT count() FROM events FINAL") == len(VALID) + 1, timeout=60,
               what="the message sent after the huge one stored")
