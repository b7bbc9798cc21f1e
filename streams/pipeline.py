"""One batch of messages in, rows for ClickHouse, dead letters and new state out.

This is the worker's hot path, kept free of Faust so it can be tested with a list in and
a result out.  The Faust agent (``streams.app``) only feeds it batches and acts on the
result: it writes the rows, produces the dead letters and stores the state, and only
then lets the offsets be committed.
"""

from __future__ import annotations

import pickle
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Protocol
from zoneinfo import ZoneInfo

import orjson

from detectors.cohorts import Cohorts
from detectors.days import DEFAULT_LATENESS, EventClock
from detectors.thresholds import DEFAULT, Thresholds
from streams import contracts, monitor
from streams.contracts import Rejection
from streams.monitor import MAX_PENDING, STATE_PROTOCOL, PartitionClock, PartitionCohorts, Published, Tracked


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

    Detection runs per partition (``streams.monitor``): each partition has its own
    event-time clock and peer cohorts, so the alerts do not depend on how partitions
    interleave or on where batches end."""

    def __init__(self, kind_by_topic: dict[str, str], tz: str = "Asia/Shanghai",
                 max_message_bytes: int = 4 * 1024 * 1024, thresholds: Thresholds = DEFAULT,
                 lateness: timedelta = DEFAULT_LATENESS):
        self.kind_by_topic = kind_by_topic
        self.tz = ZoneInfo(tz)
        self.max_message_bytes = max_message_bytes
        self.thresholds = thresholds
        self.lateness = lateness
        self.cohorts: dict[int, PartitionCohorts] = {}  # per partition, in memory (rebuilt after a restart)

    def process(self, messages: Iterable[Message], states: StateView,
                behind: Callable[[int], Iterable[str]] = lambda partition: ()) -> BatchResult:
        """Process ``messages`` in order against the stored ``states``.

        ``behind(partition)`` names the input kinds whose topic still has unconsumed
        messages on that partition after this batch (consumer lag): the clock does not
        pass the latest event time seen of such a kind, so a backlog read at uneven speed
        per topic is judged as if it had arrived in step."""
        result = BatchResult()
        by_partition: dict[int, list[tuple[int, contracts.Event]]] = defaultdict(list)
        for index, message in enumerate(messages):
            kind = self.kind_by_topic.get(message.topic)
            result.consumed[kind or "unknown"] += 1
            event = contracts.decode_event(message.value, topic_kind=kind, max_bytes=self.max_message_bytes)
            if isinstance(event, Rejection):
                result.deadletters.append((message, event))
                result.rows["deadletters"].append(self._deadletter_row(message, event))
                continue
            result.accepted[event.kind] += 1
            by_partition[message.partition].append((index, event))
            result.rows["events"].append(self._event_row(event, message.value))
        for partition in sorted(by_partition):
            self._partition(partition, by_partition[partition], states, set(behind(partition)), result)
        if result.alerts:
            result.rows["alerts"] = [monitor.alert_row(p) for p in result.alerts]
        if result.risk:
            result.rows["risk"] = [monitor.risk_row(p) for p in result.risk]
        return result

    def _partition(self, partition: int, items, states: StateView, behind: set[str], result: BatchResult) -> None:
        """One partition's events: aggregate them in offset order, then move the clock and
        judge the days it closes."""
        blob = states.clock(partition)
        clock: PartitionClock = pickle.loads(blob) if blob else PartitionClock(EventClock(self.lateness, self.tz))
        cache: dict[str, Tracked] = {}
        last: dict[str, int] = {}
        touched: dict[str, dict[tuple[str, date], None]] = defaultdict(dict)

        def tracked(uscc: str) -> Tracked:
            tr = cache.get(uscc)
            if tr is None:
                blob = states.get(partition, uscc)
                tr = cache[uscc] = Tracked.load(uscc, blob, self.thresholds)
                if blob is None:
                    tr.state.judged_through = clock.clock.closed_through or date.min
            return tr

        cohorts = self.cohorts.get(partition)
        if cohorts is None:  # first batch of this partition in this process: rebuild its cohorts
            members = [tracked(uscc) for uscc in states.members(partition)]
            cohorts = self.cohorts[partition] = PartitionCohorts.rebuild(
                Cohorts(min_members=self.thresholds.cohort_min_members), clock.seq, members)

        for index, event in items:
            tr = tracked(event.uscc)
            last[event.uscc] = index
            clock.saw(event.kind, event.event_time)
            if self._aggregate(tr, event, touched[event.uscc], result) and event.kind != "utility":
                tr.hold(event, self.tz)  # judged once the clock has closed its day
                if len(tr.pending) > MAX_PENDING:  # no utility data moves this partition's clock
                    _, early = tr.pending.pop(0)
                    cohorts.record = tr
                    tr.publish(tr.feed(early, cohorts, self.tz), early.event_time, index, result.alerts, result.risk)
        index = items[-1][0]
        days = clock.advance(behind)
        if days:
            for uscc in states.members(partition):
                tracked(uscc)
            ordered = sorted(cache)
            for day in days:  # day-major: every enterprise's day before anyone's next day
                at = clock.closed_at(day)
                due = sorted(((e.event_time, uscc, e.kind, e.event_id), e) for uscc in ordered
                             for e in cache[uscc].due(day, self.tz))
                for (_, uscc, _, _), e in due:
                    tr = cohorts.record = cache[uscc]
                    tr.publish(tr.feed(e, cohorts, self.tz), at, index, result.alerts, result.risk)
                for uscc in ordered:
                    tr = cohorts.record = cache[uscc]
                    findings = tr.detectors.close_through(day, tr.state.days, cohorts)
                    tr.state.judged_through = day
                    tr.publish(findings, at, index, result.alerts, result.risk)
            last.update(dict.fromkeys(cache, index))
            result.open_alerts[partition] = Counter(rule for tr in cache.values() for rule in tr.open_rules())
        closed = clock.clock.closed_through
        if closed is not None:  # late events (their day already closed) are judged now, not at the next close
            late = sorted(((e.event_time, uscc, e.kind, e.event_id), e) for uscc in sorted(last)
                          for e in cache[uscc].due(closed, self.tz))
            for (_, uscc, _, _), e in late:
                tr = cohorts.record = cache[uscc]
                tr.publish(tr.feed(e, cohorts, self.tz), clock.closed_at(closed), index, result.alerts, result.risk)
        for uscc, keys in touched.items():
            state = cache[uscc].state
            for utility, day in keys:  # every day the batch touched, then the window moves on
                total = state.days[(utility, day)]
                result.rows["utility_daily"].append({
                    "uscc": uscc, "utility": utility, "day": day, "amount": total.amount,
                    "readings": total.readings, "estimated": total.estimated, "version": total.readings,
                })
            state.prune()
        for uscc, index in last.items():
            result.states[(partition, uscc)] = (index, cache[uscc].dump())
        cohorts.record = None
        clock.seq = cohorts.seq
        result.clocks[partition] = (items[-1][0], pickle.dumps(clock, STATE_PROTOCOL))

    def _aggregate(self, tr: Tracked, event, touched: dict, result: BatchResult) -> bool:
        """Fold one event into the enterprise's aggregates and add its rows; True if it
        changed something (a new utility upload, a new or corrected return, ...)."""
        uscc, state, rows = tr.uscc, tr.state, result.rows
        if event.kind == "utility":
            keys, too_late = state.apply_utility(event, self.tz)
            result.readings += len(event.readings)
            result.too_late += too_late
            if not keys and not too_late:
                result.duplicates += 1
            touched.update(dict.fromkeys(keys))
            return bool(keys)
        if event.kind in ("tax", "social"):
            rows[f"{event.kind}_monthly"].append(_monthly_row(event))
            return state.apply_monthly(event)
        if event.kind == "registry":
            rows["enterprises"].append({
                "uscc": uscc, "name": event.name, "industry": event.industry, "town": event.town,
                "registered_capital_cny": event.registered_capital_cny, "established_on": event.established_on,
                "status": event.status, "key_enterprise": int(event.key_enterprise), "event_time": event.event_time,
            })
            return state.apply_registry(event)
        rows["complaints"].append({
            "uscc": uscc, "complaint_id": event.complaint_id, "event_id": event.event_id,
            "event_time": event.event_time, "category": event.category, "channel": event.channel,
            "text": event.text,
        })
        return True

    @staticmethod
    def _event_row(event: contracts.Event, raw: bytes) -> dict:
        # The payload is the message as sent, except a complaint, whose text must be masked.
        payload = contracts.event_to_json(event) if event.kind == "complaint" else raw
        return {
            "kind": event.kind, "uscc": event.uscc, "event_id": event.event_id, "source": event.source,
            "event_time": event.event_time, "payload": payload.decode(),
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


def replay_in_process(raws: Iterable[bytes], partitions: int = 4, batch: int = 2000,
                      topic_prefix: str = "") -> Iterable[BatchResult]:
    """Run JSON messages (in delivery order) through the worker's processor in this process,
    keyed and partitioned as ``entwatch replay`` sends them (murmur2 of the USCC), consumed
    as produced; yields each batch's result.  What the evaluation and the tests use to see
    the alerts the worker raises, without a broker."""
    from kafka.partitioner.default import murmur2

    kinds = contracts.KINDS
    kind_by_topic = {f"{topic_prefix}enterprise.{k}": k for k in kinds}
    processor, states = BatchProcessor(kind_by_topic), DictStates()
    offsets: dict[tuple[str, int], int] = defaultdict(lambda: -1)
    pending: list[Message] = []
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
            result = processor.process(pending, states)
            states.update(result)
            yield result
            pending = []
    if pending:
        result = processor.process(pending, states)
        states.update(result)
        yield result
