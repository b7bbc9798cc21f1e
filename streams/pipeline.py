"""One batch of messages in, rows for ClickHouse, dead letters and new state out.

This is the worker's hot path, kept free of Faust so it can be tested with a list in and
a result out.  The Faust agent (``streams.app``) only feeds it batches and acts on the
result: it writes the rows, produces the dead letters and stores the state, and only
then lets the offsets be committed.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Protocol
from zoneinfo import ZoneInfo

import orjson

from detectors.days import DEFAULT_LATENESS, EventClock
from detectors.thresholds import DEFAULT, Thresholds
from streams import contracts
from streams.contracts import Rejection
from streams.topics import DEADLETTER_MAX_BYTES
from detectors.citywide import CityCohorts
from detectors.partition import STATE_PROTOCOL, PartitionClock, PartitionDriver, Published, Tracked, load_state


@dataclass(frozen=True)
class Message:
    """What the pipeline needs of a Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds since the epoch (the record's Kafka timestamp)
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class BatchResult:
    """Everything one batch produces."""

    rows: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    deadletters: list[tuple[Message, Rejection]] = field(default_factory=list)
    # (partition, uscc) -> (index of the last message that touched it, pickled Tracked)
    states: dict[tuple[int, str], tuple[int, bytes]] = field(default_factory=dict)
    clocks: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # partition -> (index, pickled clock)
    alerts: list[Published] = field(default_factory=list)
    risk: list[Published] = field(default_factory=list)
    open_alerts: dict[int, Counter] = field(default_factory=dict)  # partition -> open alerts by rule
    consumed: Counter = field(default_factory=Counter)  # topic kind -> messages
    accepted: Counter = field(default_factory=Counter)  # kind -> valid events
    readings: int = 0
    too_late: int = 0
    duplicates: int = 0


class StateView(Protocol):
    """What the processor reads of the worker's state (a Faust table, or a dict in tests)."""

    def get(self, partition: int, uscc: str) -> bytes | None: ...
    def members(self, partition: int) -> Iterable[str]: ...
    def clock(self, partition: int) -> bytes | None: ...


class DictStates:
    """A ``StateView`` in a dict, updated from results (tests, benchmarks, evaluation)."""

    def __init__(self):
        self.enterprises: dict[tuple[int, str], bytes] = {}
        self.clocks: dict[int, bytes] = {}

    def get(self, partition: int, uscc: str) -> bytes | None:
        return self.enterprises.get((partition, uscc))

    def members(self, partition: int) -> list[str]:
        return [uscc for p, uscc in self.enterprises if p == partition]

    def clock(self, partition: int) -> bytes | None:
        return self.clocks.get(partition)

    def update(self, result: "BatchResult") -> None:
        for key, (_, blob) in result.states.items():
            self.enterprises[key] = blob
        for partition, (_, blob) in result.clocks.items():
            self.clocks[partition] = blob




def deadletter_record(message: Message, rejection: Rejection, limit: int = DEADLETTER_MAX_BYTES
                      ) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter of ``message`` as ``(key, value, headers)``, at most ``limit`` bytes
    in all so that the broker takes it (an oversize input message can be far larger).

    The value is the original bytes, cut to fit when they do not; a cut one carries
    ``entwatch.truncated`` (the original size).  Every dead letter carries
    ``entwatch.sha256`` (hex digest of the original bytes); the original can be read again
    from ``entwatch.topic`` / ``entwatch.partition`` / ``entwatch.offset``.  A key or
    original headers too large for the bound are cut or left out (``entwatch.headers_dropped``).

    >>> big = Message("enterprise.utility", 0, 7, b"k", b"x" * 5000, 0.0)
    >>> key, value, headers = deadletter_record(big, Rejection("decode", "oversize", "5000 bytes"), 2048)
    >>> len(value) < 2048, dict(headers)["entwatch.truncated"]
    (True, b'5000')
    """
    key, value = message.key, message.value
    headers = deadletter_headers(message, rejection)
    if value is not None:
        headers.append(("entwatch.sha256", hashlib.sha256(value).hexdigest().encode()))
    size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)
    if size <= limit:
        return key, value, headers
    if sum(len(k) + len(v) for k, v in message.headers) > limit // 4:
        headers = [("entwatch.headers_dropped", str(len(message.headers)).encode()),
                   *headers[len(message.headers):]]
    if key is not None and len(key) > limit // 4:
        key = key[:limit // 4]
    if value is not None:
        headers.append(("entwatch.truncated", str(len(value)).encode()))
        room = limit - len(key or b"") - sum(len(k) + len(v) for k, v in headers)
        value = value[:max(0, room)]
    return key, value, headers


def deadletter_headers(message: Message, rejection: Rejection) -> list[tuple[str, bytes]]:
    """The original headers plus where the message came from and why it was rejected."""
    return [
        *message.headers,
        ("entwatch.stage", rejection.stage.encode()),
        ("entwatch.reason", rejection.reason.encode()),
        ("entwatch.detail", rejection.detail.encode()),
        ("entwatch.topic", message.topic.encode()),
        ("entwatch.partition", str(message.partition).encode()),
        ("entwatch.offset", str(message.offset).encode()),
    ]


class BatchProcessor:
    """Decode, validate, aggregate and judge batches of messages from the input topics.

    Detection runs per partition (``detectors.partition``): each partition has its own
    event-time clock, and the peer cohorts are the city's (``cohorts``, a
    ``detectors.citywide.CityCohorts`` shared by every partition: in a worker, fed by the
    other workers through ``monitor.cohorts``), so the alerts depend neither on how
    partitions interleave, on where batches end, nor on how many partitions there are."""

    def __init__(self, kind_by_topic: dict[str, str], tz: str = "Asia/Shanghai",
                 max_message_bytes: int = 4 * 1024 * 1024, thresholds: Thresholds = DEFAULT,
                 lateness: timedelta = DEFAULT_LATENESS, cohorts: CityCohorts | None = None):
        self.kind_by_topic = kind_by_topic
        self.tz = ZoneInfo(tz)
        self.max_message_bytes = max_message_bytes
        self.thresholds = thresholds
        self.lateness = lateness
        self.cohorts = cohorts if cohorts is not None else CityCohorts(
            idle_lag=lateness, tz=self.tz, min_members=thresholds.cohort_min_members)
        self.drivers: dict[int, PartitionDriver] = {}

    def process(self, messages: Iterable[Message], states: StateView,
                behind: Callable[[int], Iterable[str]] = lambda partition: (),
                owned: Iterable[int] | None = None, final: Callable[[int], bool] | bool = False,
                settled: Callable[[int], bool] = lambda partition: True, through: date | None = None) -> BatchResult:
        """Process ``messages`` in order against the stored ``states``.

        ``behind(partition)`` names the input kinds whose topic still has unconsumed
        messages on that partition after this batch (consumer lag): the clock does not
        pass the latest event time seen of such a kind, so a backlog read at uneven speed
        per topic is judged as if it had arrived in step.  ``owned``: the partitions this
        process judges (default: every one it has seen), which may close days now that the
        city allows it even without a message of their own.  ``final(partition)``: that
        partition's input has ended (or has been idle): it follows the city's readings all
        the way.  ``settled(partition)``: its input is known to be all read when ``behind``
        names nothing (in a worker: idle for a while), so that a partition without events
        so far is empty and the city need not wait for it.  ``through`` (with ``final``):
        also close every day up to that one, whatever the readings cover (the end of a file)."""
        result = BatchResult()
        by_partition: dict[int, list[tuple[int, contracts.Event]]] = defaultdict(list)
        for index, message in enumerate(messages):
            kind = self.kind_by_topic.get(message.topic)
            result.consumed[kind or "unknown"] += 1
            event = contracts.decode_event(message.value, topic_kind=kind, max_bytes=self.max_message_bytes)
            if not isinstance(event, Rejection) and message.key != event.uscc.encode():  # SPEC §2: key = USCC
                event = Rejection("validate", "wrong_key", "the message key is not the event's uscc" if message.key
                                  else "the message has no key (it must be the event's uscc)")
            if isinstance(event, Rejection):
                result.deadletters.append((message, event))
                result.rows["deadletters"].append(self._deadletter_row(message, event))
                continue
            result.accepted[event.kind] += 1
            by_partition[message.partition].append((index, event))
            result.rows["events"].append(self._event_row(event, message.value))
            self._add_rows(event, result.rows)
        parts = set(by_partition) | set(self.drivers if owned is None else owned)
        is_final = final if callable(final) else (lambda partition: final)
        self._judge(sorted(parts), by_partition, states, behind, is_final, settled, result, through)
        if result.alerts:
            result.rows["alerts"] = [alert_row(p) for p in result.alerts]
        if result.risk:
            result.rows["risk"] = [risk_row(p) for p in result.risk]
        return result

    def _judge(self, parts: list[int], by_partition, states: StateView, behind, final, settled,
               result: BatchResult, through: date | None = None) -> None:
        """Every partition folds its events and reports to the city; then they close days
        in turn (each at most one day past the slowest) until none can close another; the
        records, clocks and daily totals they changed become state and rows."""
        work = {}
        for partition in parts:
            blob = states.clock(partition)
            clock: PartitionClock = load_state(blob) if blob else PartitionClock(EventClock(self.lateness, self.tz))
            driver = self.drivers.get(partition)
            if driver is None:
                driver = self.drivers[partition] = PartitionDriver(self.thresholds, self.tz, self.cohorts, partition)

            def load(uscc: str, partition=partition) -> Tracked | None:
                blob = states.get(partition, uscc)
                return None if blob is None else Tracked.load(uscc, blob, self.thresholds)

            out = driver.judged(clock, load)
            lag = set(behind(partition))
            driver.fold(clock, by_partition.get(partition, []), out)
            driver.report(clock, lag, settled(partition))
            work[partition] = (driver, clock, out, lag, bool(by_partition.get(partition)))
        closed = set()
        progress = True
        while progress:
            progress = False
            for partition, (driver, clock, out, lag, _) in work.items():
                while driver.close(clock, lambda partition=partition: states.members(partition), out, lag,
                                   final(partition), through):
                    progress = True
                    closed.add(partition)
        for partition, (driver, clock, judged, _, had_events) in work.items():
            driver.finish(clock, judged)
            if not had_events and partition not in closed and not judged.alerts:
                continue
            result.alerts += judged.alerts
            result.risk += judged.risk
            result.readings += judged.readings
            result.too_late += judged.too_late
            result.duplicates += judged.duplicates
            if judged.open_alerts is not None:
                result.open_alerts[partition] = judged.open_alerts
            result.rows["utility_daily"] += [
                {"uscc": uscc, "utility": utility, "day": day, "amount": total.amount, "readings": total.readings,
                 "estimated": total.estimated, "version": total.readings}
                for uscc, utility, day, total in judged.daily]
            for uscc, index in judged.last.items():
                result.states[(partition, uscc)] = (index, judged.records[uscc].dump())
            result.clocks[partition] = (judged.index, pickle.dumps(clock, STATE_PROTOCOL))
        result.alerts.sort(key=lambda p: p.index)
        result.risk.sort(key=lambda p: p.index)

    @staticmethod
    def _add_rows(event, rows: dict[str, list[dict]]) -> None:
        """The rows of the event's own table (tax, social, registry, complaint)."""
        if event.kind in ("tax", "social"):
            rows[f"{event.kind}_monthly"].append(_monthly_row(event))
        elif event.kind == "registry":
            rows["enterprises"].append({
                "uscc": event.uscc, "name": event.name, "industry": event.industry, "town": event.town,
                "registered_capital_cny": event.registered_capital_cny, "established_on": event.established_on,
                "status": event.status, "key_enterprise": int(event.key_enterprise), "event_time": event.event_time,
            })
        elif event.kind == "complaint":
            rows["complaints"].append({
                "uscc": event.uscc, "complaint_id": event.complaint_id, "event_id": event.event_id,
                "event_time": event.event_time, "category": event.category, "channel": event.channel,
                "text": event.text,
            })

    @staticmethod
    def _event_row(event: contracts.Event, raw: bytes) -> dict:
        # The payload is the validated event re-serialised (known fields, masked text), never the raw bytes.
        return {
            "kind": event.kind, "uscc": event.uscc, "event_id": event.event_id, "source": event.source,
            "event_time": event.event_time, "payload": contracts.event_to_json(event).decode(),
        }

    @staticmethod
    def _deadletter_row(message: Message, rejection: Rejection) -> dict:
        return {
            "topic": message.topic, "partition": message.partition, "offset": message.offset,
            "stage": rejection.stage, "reason": rejection.reason, "detail": rejection.detail,
            "received_at": datetime.fromtimestamp(message.timestamp, timezone.utc),
        }


def _monthly_row(event) -> dict:
    period = date(int(event.period[:4]), int(event.period[5:7]), 1)
    row = {"uscc": event.uscc, "period": period, "event_id": event.event_id, "event_time": event.event_time}
    if event.kind == "tax":
        row.update(declared_sales_cny=event.declared_sales_cny, tax_paid_cny=event.tax_paid_cny)
    else:
        row.update(insured_headcount=event.insured_headcount, contributions_cny=event.contributions_cny)
    return row


FLUSH_PAST_READINGS = timedelta(days=62)  # how far past the meter readings a file's end closes days


def replay_in_process(raws: Iterable[bytes], partitions: int = 4, batch: int = 2000,
                      topic_prefix: str = "", lateness: timedelta = DEFAULT_LATENESS,
                      final: bool = True, flush: bool = False) -> Iterable[BatchResult]:
    """Run JSON messages (in delivery order) through the worker's processor in this process,
    keyed and partitioned as ``entwatch replay`` sends them (murmur2 of the USCC), consumed
    as produced; yields each batch's result.  What the evaluation and the tests use to see
    the alerts the worker raises, without a broker.  ``final``: at the end of the input,
    every partition follows the city's readings all the way (what a worker does once its
    input has been idle for ``ENTWATCH_COHORT_IDLE_SECONDS``), so that the alerts are the
    same for any number of partitions; the last batch's result carries it.  ``flush``: the
    input is a whole file; at its end every day before the latest event's is closed too,
    even past the meter readings (a return filed after the last upload is judged), but at
    most ``FLUSH_PAST_READINGS`` past them."""
    from kafka.partitioner.default import murmur2

    kinds = contracts.KINDS
    kind_by_topic = {f"{topic_prefix}enterprise.{k}": k for k in kinds}
    processor, states = BatchProcessor(kind_by_topic, lateness=lateness), DictStates()
    offsets: dict[tuple[str, int], int] = defaultdict(lambda: -1)
    pending: list[Message] = []
    latest: datetime | None = None  # the latest event_time of an accepted event
    for raw in raws:
        try:
            obj = orjson.loads(raw)
            kind, key = obj["kind"], obj["uscc"].encode()
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            continue  # replay does not send what does not name its kind and USCC
        if kind not in kinds:
            continue
        topic, partition = f"{topic_prefix}enterprise.{kind}", (murmur2(key) & 0x7FFFFFFF) % partitions
        offsets[(topic, partition)] += 1
        pending.append(Message(topic, partition, offsets[(topic, partition)], key, raw, 0.0))
        if len(pending) >= batch:
            result = processor.process(pending, states, owned=range(partitions))
            states.update(result)
            latest = _latest(latest, result)
            yield result
            pending = []
    if pending or final:
        result = processor.process(pending, states, owned=range(partitions), final=final)
        states.update(result)
        latest = _latest(latest, result)
        yield result
    covered = processor.cohorts.coverage()
    if flush and final and latest is not None and covered is not None:
        # returns are filed up to ~45 days after their month: a bogus far-future event time
        # must not make the end of a file close years of empty days
        through = min(latest.astimezone(processor.tz).date() - timedelta(days=1),
                      covered.astimezone(processor.tz).date() + FLUSH_PAST_READINGS)
        result = processor.process([], states, owned=range(partitions), final=True, through=through)
        states.update(result)
        yield result


def _latest(latest: datetime | None, result: BatchResult) -> datetime | None:
    """The latest event time of ``latest`` and the events ``result`` accepted."""
    times = [row["event_time"] for row in result.rows.get("events", ())]
    return max([latest, *times] if latest is not None else times, default=None)


def alert_row(p: Published) -> dict:
    """The ``alerts`` table row of an alert message."""
    a = p.body
    return {
        "alert_id": a["alert_id"], "uscc": a["uscc"], "enterprise_name": a["enterprise_name"],
        "industry": a["industry"], "town": a["town"], "rule": a["rule"], "severity": a["severity"],
        "status": a["status"], "window_start": _date(a["window_start"]), "window_end": _date(a["window_end"]),
        "detected_at": _time(a["detected_at"]), "score": a["score"], "observed": a["observed"],
        "expected": a["expected"], "evidence": _json(a["evidence"]),
        "explanation_zh": a["explanation"].get("zh", ""), "explanation_en": a["explanation"].get("en", ""),
        "revision": p.revision,
    }


def risk_row(p: Published) -> dict:
    """The ``risk`` table row of a risk message."""
    r = p.body
    return {"uscc": r["uscc"], "score": r["score"], "level": r["level"], "rules": list(r["rules"]),
            "updated_at": _time(r["updated_at"]), "revision": p.revision}


def _date(text: str) -> date:
    return date.fromisoformat(text)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _json(value) -> str:
    return orjson.dumps(value).decode()
