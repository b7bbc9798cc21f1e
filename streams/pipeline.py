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
from datetime import date, datetime, timezone
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from streams import contracts
from streams.aggregates import EnterpriseState
from streams.contracts import Rejection

STATE_PROTOCOL = 5


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
    states: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # uscc -> (index of its last message, state)
    consumed: Counter = field(default_factory=Counter)  # topic kind -> messages
    accepted: Counter = field(default_factory=Counter)  # kind -> valid events
    readings: int = 0
    too_late: int = 0
    duplicates: int = 0


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
    """Decode, validate and aggregate batches of messages from the input topics."""

    def __init__(self, kind_by_topic: dict[str, str], tz: str = "Asia/Shanghai",
                 max_message_bytes: int = 4 * 1024 * 1024):
        self.kind_by_topic = kind_by_topic
        self.tz = ZoneInfo(tz)
        self.max_message_bytes = max_message_bytes

    def process(self, messages: Iterable[Message], load_state: Callable[[str], bytes | None]) -> BatchResult:
        """Process ``messages`` in order; ``load_state(uscc)`` returns the stored state or None."""
        result = BatchResult()
        by_uscc: dict[str, list[tuple[int, contracts.Event]]] = defaultdict(list)
        for index, message in enumerate(messages):
            kind = self.kind_by_topic.get(message.topic)
            result.consumed[kind or "unknown"] += 1
            event = contracts.decode_event(message.value, topic_kind=kind, max_bytes=self.max_message_bytes)
            if isinstance(event, Rejection):
                result.deadletters.append((message, event))
                result.rows["deadletters"].append(self._deadletter_row(message, event))
                continue
            result.accepted[event.kind] += 1
            by_uscc[event.uscc].append((index, event))
            result.rows["events"].append(self._event_row(event, message.value))
        for uscc, items in by_uscc.items():
            blob = load_state(uscc)
            state = pickle.loads(blob) if blob else EnterpriseState()
            if self._apply(uscc, state, items, result):
                result.states[uscc] = (items[-1][0], pickle.dumps(state, STATE_PROTOCOL))
        return result

    def _apply(self, uscc: str, state: EnterpriseState, items, result: BatchResult) -> bool:
        """Fold one enterprise's events into its state and add their rows; True if state changed."""
        changed = False
        touched: dict[tuple[str, date], None] = {}
        rows = result.rows
        for _, event in items:
            if event.kind == "utility":
                keys, too_late = state.apply_utility(event, self.tz)
                result.readings += len(event.readings)
                result.too_late += too_late
                if not keys and not too_late:
                    result.duplicates += 1
                touched.update(dict.fromkeys(keys))
                changed |= bool(keys)
            elif event.kind in ("tax", "social"):
                changed |= state.apply_monthly(event)
                rows[f"{event.kind}_monthly"].append(_monthly_row(event))
            elif event.kind == "registry":
                changed |= state.apply_registry(event)
                rows["enterprises"].append({
                    "uscc": uscc, "name": event.name, "industry": event.industry, "town": event.town,
                    "registered_capital_cny": event.registered_capital_cny, "established_on": event.established_on,
                    "status": event.status, "key_enterprise": int(event.key_enterprise), "event_time": event.event_time,
                })
            else:
                rows["complaints"].append({
                    "uscc": uscc, "complaint_id": event.complaint_id, "event_id": event.event_id,
                    "event_time": event.event_time, "category": event.category, "channel": event.channel,
                    "text": event.text,
                })
        for utility, day in touched:
            total = state.days[(utility, day)]
            rows["utility_daily"].append({
                "uscc": uscc, "utility": utility, "day": day, "amount": total.amount,
                "readings": total.readings, "estimated": total.estimated, "version": total.readings,
            })
        return changed

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
