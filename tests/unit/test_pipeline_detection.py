"""Detection inside the batch processor: alerts are a function of the data only.

A small simulated city goes through ``BatchProcessor`` the way a worker sees it: messages
spread over partitions by USCC, consumed in batches.  However the batches are cut and
however the partitions interleave, the alert messages are the same (SPEC §4).
"""

from __future__ import annotations

import random
import zlib
from datetime import date
from functools import lru_cache

import orjson

from detectors.citywide import CityCohorts
from producers.simulator import LEGACY, AnomalyRates, SimulationConfig, UploadMix, generate
from streams.pipeline import BatchProcessor, DictStates, Message

KINDS = ("registry", "utility", "tax", "social", "complaint")
KIND_BY_TOPIC = {f"enterprise.{k}": k for k in KINDS}
PARTITIONS = 3


@lru_cache(maxsize=1)
def city_messages() -> tuple[Message, ...]:
    """~50 enterprises for 7 months, with a high anomaly rate so that every run alerts; 40% of
    the meters upload a week of readings at once (data 8 days old when it arrives), and every
    delivery is within the lateness (``detectors.days.DEFAULT_LATENESS``, 9 days)."""
    rates = AnomalyRates(**{name: 0.08 for name in AnomalyRates.__dataclass_fields__})
    config = SimulationConfig(enterprises=50, days=210, seed=11, start=date(2024, 1, 1), rates=rates,
                              electricity_interval="day", malformed_share=0.0,
                              **{**LEGACY, "late_share": 0.0, "uploads": UploadMix(daily=0.6, weekly=0.4, monthly=0.0)})
    out = []
    offsets = {}
    for obj in generate(config):
        if not isinstance(obj, dict):
            continue
        partition = zlib.crc32(obj["uscc"].encode()) % PARTITIONS
        topic = f"enterprise.{obj['kind']}"
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
        out.append(Message(topic, partition, offset, obj["uscc"].encode(), orjson.dumps(obj), 1.7e9))
    return tuple(out)


def run(batches, restart_every: int = 0) -> tuple[list[tuple], list[dict], list[dict]]:
    """(sorted alert messages with revisions, alert rows, risk records).  ``batches`` are
    ``(messages, behind)`` pairs: ``behind(partition)`` names the kinds still unread.
    ``restart_every``: a new processor (a restarted worker) every so many batches, on the
    stored state, its city-wide cohorts read back from the messages published so far (what
    a worker reads from ``monitor.cohorts``)."""
    processor, states = BatchProcessor(KIND_BY_TOPIC, cohorts=CityCohorts(publish=True)), DictStates()
    alerts, rows, risk = [], [], []
    for n, (batch, behind) in enumerate(batches):
        if restart_every and n % restart_every == restart_every - 1:
            cohorts = CityCohorts(publish=True)
            for key, body in processor.cohorts.outbox:
                cohorts.receive(key, orjson.loads(orjson.dumps(body)))
            cohorts.outbox = list(processor.cohorts.outbox)
            processor = BatchProcessor(KIND_BY_TOPIC, cohorts=cohorts)
        result = processor.process(batch, states, behind)
        states.update(result)
        alerts += [(p.uscc, p.revision, orjson.dumps(p.body, option=orjson.OPT_SORT_KEYS)) for p in result.alerts]
        rows += result.rows.get("alerts", [])
        risk += [p.body for p in result.risk]
    return sorted(alerts), rows, risk


@lru_cache(maxsize=1)
def reference():
    return run(in_order(city_messages(), 2000))


def in_order(messages, size):
    """Consecutive slices of the delivery order, each consumed as soon as it was produced
    (live: no topic has unread messages when a batch ends)."""
    return [(list(messages[i:i + size]), lambda p: ()) for i in range(0, len(messages), size)]


def interleaved(messages, seed):
    """The same order within each topic-partition, but the topic-partitions drained at random
    relative speeds and cut into batches of random sizes: what a consumer catching up a
    backlog sees (a month of tax returns may arrive with a few days of meter uploads)."""
    g = random.Random(seed)
    queues: dict[tuple[str, int], list[Message]] = {}
    for m in messages:
        queues.setdefault((m.topic, m.partition), []).append(m)
    batches, batch = [], []
    while any(queues.values()):
        tp = g.choice([tp for tp, q in queues.items() if q])
        take = g.randint(1, 600)
        batch += queues[tp][:take]
        del queues[tp][:take]
        if len(batch) >= g.randint(50, 3000) or not any(queues.values()):
            lagging = {(p, KIND_BY_TOPIC[topic]) for (topic, p), q in queues.items() if q}
            batches.append((batch, lambda p, lagging=lagging: {k for q, k in lagging if q == p}))
            batch = []
    return batches


def test_the_city_raises_alerts_of_several_rules():
    alerts = [orjson.loads(body) for _, _, body in reference()[0]]
    assert len({a["rule"] for a in alerts}) >= 4
    assert {a["status"] for a in alerts} <= {"open", "resolved"}


def test_alerts_do_not_depend_on_batch_boundaries_or_partition_interleaving():
    messages, (alerts, _, _) = city_messages(), reference()
    assert alerts
    assert run(in_order(messages, 97))[0] == alerts
    assert run(interleaved(messages, seed=1))[0] == alerts


def test_a_restarted_worker_reads_the_city_cohorts_back_and_raises_the_same_alerts():
    assert run(in_order(city_messages(), 500), restart_every=3)[0] == reference()[0]


def test_revisions_grow_per_alert_and_alert_rows_carry_them():
    alerts, rows, _ = reference()
    revisions: dict[str, int] = {}
    for uscc, revision, body in alerts:  # sorted by uscc, then revision
        alert_id = orjson.loads(body)["alert_id"]
        assert revision > revisions.get(alert_id, 0)
        revisions[alert_id] = revision
    assert {r["alert_id"] for r in rows} == set(revisions)
    assert all(isinstance(r["evidence"], str) and r["explanation_zh"] for r in rows)


def test_risk_records_follow_the_contract():
    records = reference()[2]
    assert records
    assert set(records[0]) == {"uscc", "score", "level", "rules", "updated_at", "schema_version"}
    assert all(0 <= r["score"] <= 100 for r in records)
